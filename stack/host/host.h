#pragma once
// The host: one per device. Owns the device and the Stack, bridges every
// app socket (HostSocket) to a stack socket, serves the control RPC on the
// abstract unix socket "\0ustack-ctl/<device>", and runs the event loop:
// epoll over the device fd, a timerfd armed at stack.poll_at(), the
// control socket and its connections, and the host end of every socket.
//
// Runs as the daemon `ustackd` (exits after `idle_exit` without sockets
// or TIME_WAIT entries, unless persistent) or as a thread inside the
// program (USTACK_MODE=inproc; stop_and_drain() at exit sends what the
// program wrote last).
//
// One thread at a time works the loop, under loop_mutex_: the host
// thread, or (inproc) an app thread in one of the caller_* calls below
// (host_caller.cpp). stop()/stop_and_drain() may be called from any thread.
#include <sys/epoll.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "netdev/netdev.h"
#include "stack/core/expected.h"
#include "stack/core/random.h"
#include "stack/host/host_config.h"
#include "stack/host/host_socket.h"
#include "stack/host/protocol.h"
#include "stack/host/tcp_host_socket.h"
#include "stack/host/unix_liveness.h"
#include "stack/stack.h"
#include "stack/tcp/tcp_transport.h"

namespace ustack::host {

// CLOCK_MONOTONIC in microseconds.
Instant monotonic_now();

class Host final : private TcpConnectionFactory {
public:
    struct Options {
        bool persistent = false;  // never exit when idle (ustackctl up, inproc)
        bool inproc = false;      // for status output
    };

    // Binds the control socket first (the abstract name is the lock: a
    // second host for the device fails here with EADDRINUSE and the message
    // "a ustack host for DEV is already running"), then opens the device.
    // The error names the problem (device, address, permissions).
    static Expected<std::unique_ptr<Host>, std::pair<int, std::string>> create(const HostConfig& config,
                                                                              Options options);
    ~Host() override;

    Host(const Host&) = delete;
    Host& operator=(const Host&) = delete;

    // Runs until stop(), a Down request, or (daemon) the idle timeout.
    void run();
    void stop();
    // Reads what the apps wrote, sends it, lets ARP and the device settle
    // (at most `linger`), then stops. For the inproc host at program exit.
    void stop_and_drain(Duration linger = Duration::from_millis(300));

    Stack& stack() { return *stack_; }
    tcp::TcpEngine& tcp() { return tcp_->engine(); }
    const HostConfig& config() const { return config_; }
    size_t socket_count() const { return sockets_.size(); }

    // How much work the loop does per event (`ustackctl stats`): a walk is
    // one pass over the sockets that changed; a visit is one socket's
    // on_stack_event() in it. Idle sockets are never visited, so visits
    // per walk stay O(1) however many connections are open.
    struct WalkCounters {
        uint64_t walks = 0;
        uint64_t socket_visits = 0;
    };
    const WalkCounters& walk_counters() const { return walk_counters_; }

    // ---- Inproc: the app's own thread works the loop (host_caller.cpp) ----
    //
    // A socket call that would block on the app end otherwise sleeps until
    // the host thread has been woken by the device, run the stack and
    // written into the pair, which then wakes the app: two thread wake-ups
    // per request/response more than the kernel's (each ~15 µs on a
    // virtual machine), the largest part of rr's and crr's price. Linux
    // runs the receive path in the caller's context when it can
    // (sk_busy_loop); so does an inproc host: the calling thread waits on
    // the host's own epoll set and runs the same loop passes itself, while
    // the host thread is kept out of that set (it waits on an outer epoll
    // set holding only the inner one, whose entry the caller disables for
    // as long as it waits). Daemon mode never gets here: the app is
    // another process.

    enum class CallerWait : uint8_t {
        ready,        // ready() returned true
        timed_out,    // the deadline passed first
        interrupted,  // a signal (EINTR): the caller decides between EINTR and a restart
        not_served,   // not here (not inproc, not our socket, another thread already waits,
                      // stopping): block on the app end as before
    };
    // Works the loop on the calling thread until ready() (called under the
    // loop's lock, first before any wait, then whenever a pass looked at
    // the socket of `app_fd` or wake_caller() was called) returns true.
    // With `read_into` (a TCP recv, not a peek): once the app end is found
    // empty, the buffer is lent to the socket (TcpHostSocket::LentBuffer)
    // and the wait ends `ready` with read_into->got > 0 when the engine's
    // next bytes were copied straight into it; ready() is not called
    // after that (it would read the pair into the same buffer).
    CallerWait caller_wait(int app_fd, const std::function<bool()>& ready, std::optional<Instant> deadline,
                           TcpHostSocket::LentBuffer* read_into = nullptr);
    // A TCP send on the calling thread: the bytes go straight into the
    // engine and out to the device, when nothing the app wrote earlier
    // waits in the pair. Returns the bytes taken (the rest, if any, goes
    // through the pair as before), or nullopt when none were (not inproc,
    // not a connected TCP socket, the engine's buffer full, an error the
    // pair path must report).
    std::optional<size_t> caller_send(int app_fd, const iovec* iov, size_t iovcnt);
    // A change of the app end the loop cannot see (the app's own
    // shutdown(), from another thread than the one waiting): wakes the
    // waiting caller, which looks again.
    // force: from a forked child, whose copy of the flag says nothing
    // about the parent's waiting thread (the eventfd is shared).
    void wake_caller(bool force = false);
    // Closes fd, now or soon on the host thread (inproc): for fds whose
    // close has no effect anyone could see (see retired_fds_).
    void retire_fd(int fd);
    // Closes the spare socketpairs and retired fds now (the program ran
    // out of fds); whether there were any.
    bool release_reserved_fds();
    // pthread_atfork, from the shim: a child keeps no spare pair (one the
    // parent hands out later would have an app end in the child).
    void before_fork();
    void after_fork(bool in_child);
    // A socketpair for a socket: the host end (non-blocking, named for
    // exec'd programs), the app end and its inode. `in_epoll`: the host
    // end is in the inner set already, watched for EPOLLIN (the host
    // thread registers spares as it makes them: an EPOLL_CTL_ADD was
    // ~3 % of crr's app thread over AF_PACKET, bench/ANALYSIS.md).
    struct PairEnds {
        int host_end = -1;
        int app_end = -1;
        ino_t app_inode = 0;
        bool in_epoll = false;
    };
    // A control call made on the calling thread (what the control socket
    // carries otherwise: the same serve_call, then the same pass). app_fd
    // is the caller's own fd (not closed); a socket's new app end comes
    // back in fd_out, owned by the caller.
    // nullopt: not inproc, or the host is stopping (use the control socket).
    // `adopt`: the pair a Socket call uses (caller_adopt).
    std::optional<Reply> caller_call(Request request, int app_fd, std::string* text, int* fd_out,
                                     const PairEnds* adopt = nullptr);

    // Socket-first (the shim's pair-backed candidates): an IPv4 TCP socket
    // the program creates takes a spare pair at socket(), its fd the app
    // end from the start, so that a bind, connect or listen on ustack's
    // side makes no kernel socket only to throw it away (socket, dup3,
    // close and the host thread's close of it: ~5 % of crr's app thread).
    // A spare pair, the caller's from now on (nullopt: none left).
    std::optional<PairEnds> take_spare_for_socket();
    // The host socket for such a pair: `request` is the Socket call a swap
    // makes (bind, connect or listen), `app_fd` the program's fd, which is
    // the app end. On an error the pair stays the caller's, unchanged.
    std::optional<Reply> caller_adopt(const Request& request, int app_fd, const PairEnds& pair);
    // The host end of a pair that will never get its host socket: out of
    // the inner set, closed off the app's thread. Call it before the app
    // end's last copy goes (its hang-up would be an event for nobody).
    void release_spare_host_end(const PairEnds& pair);
    // close() of a ustack fd on the calling thread: `close_fd` closes it;
    // if that was the last copy, the hang-up is handled on this thread
    // (the FIN leaves now) instead of waking the host thread for it.
    int caller_close(int app_fd, const std::function<int()>& close_fd);
    // An app thread about to block outside the loop (the program's poll,
    // select or epoll_wait; a blocking call on an app end that no caller
    // pass serves): the host thread must watch the inner set meanwhile.
    // Lock-free on the way in unless the host thread is out (then a
    // try-lock); safe in a signal handler. Pair every begin with an end.
    void outside_wait_begin();
    void outside_wait_end() { outside_waiters_.fetch_sub(1); }
    // Whether some host end waits for room in its pair (the app has not
    // read what the host wrote): a read the app makes outside the loop
    // then gives the host work, and the host thread must see it.
    bool host_ends_wait_for_room() const { return host_ends_waiting_for_room_.load(std::memory_order_relaxed) > 0; }

    // An app thread holds the program's asynchronous signals back while it
    // holds the loop's lock (host_caller.cpp says why): two sigprocmask
    // per call, ~2 % of crr's app thread. A signal can only do harm there
    // through a handler; with none installed its default action ends,
    // stops or ignores, as it would anywhere. So the shim, which sees
    // every handler libc installs (sigaction, signal, sigset ...), says:
    //   - signal_handlers_scanned(found): what the process's dispositions
    //     were when it looked (once, when the inproc host starts). Until
    //     then, and for good once `found`, signals are held as before.
    //   - signal_handler_installing(): before each handler is installed.
    //     Sticky; returns once no thread holds the lock with signals
    //     unheld (never waits for a caller's sleep, which holds neither).
    // Needs ForkWiped (a child's count of such threads starts at zero);
    // without it signals are always held.
    static void signal_handlers_scanned(bool found);
    static void signal_handler_installing();

private:
    struct ControlConnection {
        int fd = -1;
        uint32_t uid = 0;
        int32_t pid = 0;
        bool may_bind_privileged = false;
    };

    Host(HostConfig config, Options options);

    // What an event of the inner epoll set is about: data.u64 is
    // tag << 32 | fd.
    static constexpr uint64_t tag_device = 1;
    static constexpr uint64_t tag_timer = 2;
    static constexpr uint64_t tag_wake = 3;
    static constexpr uint64_t tag_control = 4;
    static constexpr uint64_t tag_connection = 5;
    static constexpr uint64_t tag_socket = 6;
    static constexpr uint64_t tag_caller_kick = 7;
    static constexpr uint64_t tag_watchdog = 8;  // outer set only
    static constexpr uint64_t tag_spares = 9;    // outer set only
    static constexpr uint64_t tag_lookout = 10;  // outer set only

    void log(LogLevel level, const std::string& message) const;
    // One epoll event of the inner set: what the loop does about it.
    // read_device is set when the device must be read (readable, timer).
    void handle_event(const epoll_event& event, Instant now, bool& read_device);
    // The host thread waits on outer_epoll_fd_ (inproc): enables or
    // disables its one entry, the inner set. Under loop_mutex_.
    void set_host_thread_watch(bool enabled);
    // The end of an app thread's turn at the loop (under loop_mutex_):
    // the host thread stays out while the program keeps coming back (see
    // host_caller.cpp, "the host thread comes back lazily"); the lookout
    // timer brings it back once the program stopped, and at once if a
    // thread waits outside the loop.
    void end_app_turn();
    // The host thread, on the lookout timer (takes loop_mutex_ if free).
    void lookout_tick();
    void arm_lookout(bool on);
    // The host thread, woken while a caller waits: takes the loop back if
    // the program stops or the caller stopped working it. Returns whether.
    bool supersede_stuck_caller();
    // After a pass made on an app thread that is not the waiting caller
    // (caller_send): wakes the caller if the pass touched its socket.
    void wake_caller_if_touched();
    void accept_control();
    void handle_control(ControlConnection& connection);
    void close_control(int fd);
    Reply dispatch(ControlConnection& connection, const Request& request, int passed_fd, std::string& text,
                   int& fd_out);
    // One call, whichever way it came (control socket or caller_call):
    // version check, dispatch, the reply's text bounded.
    Reply serve_call(ControlConnection& connection, Request& request, int passed_fd, std::string& text, int& fd_out);
    Reply create_socket(ControlConnection& connection, const Request& request, int& fd_out);
    Reply create_tcp_socket(ControlConnection& connection, const Request& request, int& fd_out);
    // A named socketpair for a new socket (a spare one when there is one),
    // or -errno.
    int open_pair(int domain, int type, PairEnds& pair);
    int make_pair(int domain, int type, PairEnds& pair);
    // A pair that will serve no socket after all leaves the inner set
    // explicitly (a forked child may hold a copy of its host end: a close
    // alone would leave it registered).
    void forget_pair_registration(const PairEnds& pair);
    // Registers a host socket under its app end's inode.
    void register_socket(std::unique_ptr<HostSocket> socket, const PairEnds& pair);
    int adopt_connection(tcp::SocketId id, int domain, uint32_t uid, int32_t pid, AcceptTicket ticket) override;
    Reply tcp_call(TcpHostSocket& socket, const Request& request, int passed_fd, std::string& text);
    HostSocket* socket_for_fd(int passed_fd);
    void add_socket(std::unique_ptr<HostSocket> socket);
    void sync_events(HostSocket& socket);
    // read_device: epoll reported the device readable or the timer fired.
    void after_activity(Instant now, bool read_device);
    // One pass over the sockets that may have changed: those the engine
    // lists (TcpEngine::take_ready), those with an fd event or an RPC
    // since the last pass, and every UDP socket (cheap: a readable check).
    void walk_changed(Instant now);
    // The socket behind host end `fd` must be looked at in the next walk.
    void mark_changed(int fd) { changed_.insert(fd); }
    void reap_finished();
    void arm_timer();
    bool idle() const;
    bool app_end_alive(int host_fd);
    void check_half_closed(Instant now);
    void check_half_closed_if_due(Instant now);
    std::string status_text() const;
    std::string stats_text() const;
    std::string sockets_text() const;
    Reply sysctl(const std::string& argument, std::string& text);

    // Whether reading the device right after sending finds the peer's
    // answer often enough to pay for the reads that find nothing (see
    // after_activity). A score of hits minus misses; below zero one read
    // in 16 still tries, so a change of traffic is noticed.
    struct EagerReadScore {
        int score = 0;
        uint32_t skipped = 0;
        bool worthwhile() { return score >= 0 || ++skipped % 16 == 0; }
        void record(bool hit) { score = std::clamp(score + (hit ? 1 : -1), -16, 16); }
    };

    HostConfig config_;
    Options options_;
    int32_t pid_;  // the host never forks: asked once (it names every socketpair)
    std::unique_ptr<SeededRandom> random_;
    std::unique_ptr<netdev::NetDev> device_;
    std::unique_ptr<Stack> stack_;
    std::unique_ptr<tcp::TcpTransport> tcp_;  // attached to stack_; destroyed first
    int epoll_fd_ = -1;
    int timer_fd_ = -1;
    EagerReadScore eager_reads_;
    uint64_t tx_seen_ = 0;  // device tx_frames when after_activity() last looked
    int64_t timer_armed_us_ = -1;  // what timer_fd_ is armed for (0: disarmed), -1: unknown
    int wake_fd_ = -1;  // eventfd: stop requests from other threads
    // Inproc: the host thread's epoll set, holding only epoll_fd_ (see
    // caller_wait); -1 in daemon mode (the host thread waits on epoll_fd_).
    int outer_epoll_fd_ = -1;
    int caller_kick_fd_ = -1;  // eventfd: wake_caller()
    // timerfd in the outer set, periodic while callers wait: the host
    // thread's look at whether the waiting caller still works the loop
    // (it may have gone to sleep before the wait began, with no timeout).
    int watchdog_fd_ = -1;
    bool watchdog_armed_ = false;
    // Held by whichever thread works the loop; released while waiting.
    std::mutex loop_mutex_;
    // Under loop_mutex_: an app thread waits in caller_wait (at most one),
    // the host end of its socket, and whether a pass looked at it since
    // the caller last checked.
    bool caller_waiting_ = false;
    int caller_watch_fd_ = -1;
    bool caller_watch_hit_ = false;
    bool caller_watch_gone_ = false;  // its socket was reaped (only at the exit drain)
    // A wait's number: the host thread bumps it when it takes the loop
    // back from a caller that stopped working it (supersede_stuck_caller).
    uint64_t caller_epoch_ = 0;
    uint64_t caller_passes_ = 0;         // passes made by callers
    uint64_t watchdog_seen_passes_ = 0;  // caller_passes_ at the host thread's last look
    static constexpr Duration caller_watchdog_interval = Duration::from_millis(100);
    void arm_watchdog(bool on);
    std::atomic<bool> caller_waiting_flag_{false};  // caller_waiting_, for wake_caller() without the lock
    // Whether the inner set's entry in the outer set is enabled (written
    // under loop_mutex_, read without it by outside_wait_begin).
    std::atomic<bool> host_watching_{true};
    std::atomic<int> outside_waiters_{0};  // threads between outside_wait_begin and _end
    std::atomic<bool> look_wanted_{false};  // an outside wait found the host thread out
    // timerfd in the outer set, periodic while the host thread stays out
    // lazily; the app turns ended by the last tick (under loop_mutex_).
    int lookout_fd_ = -1;
    bool lookout_armed_ = false;
    uint64_t app_turns_ = 0;
    uint64_t lookout_seen_turns_ = 0;
    uint64_t inner_passes_ = 0;  // caller passes over the inner set's events (caller_pass)
    uint64_t lookout_seen_passes_ = 0;
    static constexpr Duration lookout_interval = Duration::from_millis(2);
    // Who worked the loop (`ustackctl stats`): passes of the host thread,
    // its wake-ups that found a caller at work, and the callers' share.
    struct CallerCounters {
        uint64_t host_thread_passes = 0;
        uint64_t host_thread_yielded = 0;
        uint64_t waits = 0;
        uint64_t wait_passes = 0;
        uint64_t direct_reads = 0;
        uint64_t sends = 0;
        uint64_t sends_declined = 0;
        uint64_t superseded = 0;
        uint64_t turns_host_kept_out = 0;  // app turns that ended without re-enabling the host thread
        uint64_t lookout_returns = 0;      // the host thread came back on its lookout timer
    };
    CallerCounters caller_counters_;
    // The calling process as a control connection (caller_call): made on
    // first use; its pid is the host's own.
    std::optional<ControlConnection> caller_connection_;
    bool serving_caller_ = false;  // inside caller_call: a connect's filler waits for its end
    HostSocket* created_socket_ = nullptr;  // the last one register_socket() made (caller_call)
    const PairEnds* adopting_ = nullptr;    // under loop_mutex_, in caller_call: the pair a Socket call adopts
    // Host ends of spare pairs an event came for before any socket had
    // them (a program's sendfile into a fresh socket, say): silenced
    // (events 0), so that a level-triggered event does not spin the loop;
    // a socket that takes one later has it watched again.
    std::unordered_set<int> silenced_host_ends_;
    int closing_host_fd_ = -1;     // inside caller_close: the host end of the socket the app closed
    // Disables the host thread's watch unless a waiting caller already
    // did; returns whether this call did (then it must enable it again).
    bool lend_loop();
    // A pass over what became ready on the inner set, on this thread,
    // without waiting (what the host thread would do on being woken).
    // Returns whether anything was.
    bool pass_without_waiting();
    // One loop pass over events a caller took from the inner set; a stop
    // request is left for the host thread. Returns whether there was one.
    bool caller_pass(const epoll_event* events, int n);
    ControlConnection& caller_connection();
    int control_fd_ = -1;
    std::unordered_map<int, ControlConnection> connections_;       // by fd
    std::unordered_map<int, std::unique_ptr<HostSocket>> sockets_;  // by host end fd
    std::unordered_map<int, uint32_t> registered_events_;          // host end fd → epoll mask
    std::atomic<int> host_ends_waiting_for_room_{0};  // registered with EPOLLOUT (host_ends_wait_for_room)
    void count_room_wait(uint32_t was, uint32_t now);
    std::unordered_map<ino_t, int> by_app_inode_;                   // app end inode → host end fd
    std::unordered_map<int, ino_t> app_inode_of_;                   // host end fd → app end inode
    UnixLiveness liveness_;  // is an app end's inode still open (app_end_alive)
    std::atomic<uint64_t> next_serial_{1};  // also taken by the host thread's refills, without the loop lock
    // Inproc: IPv4 TCP socketpairs made ahead by the host thread (named,
    // the host end non-blocking, the app end's inode known), so that a
    // connect or accept on an app thread does not pay for socketpair,
    // ioctl, bind and fstat (~7 us of crr's ~120 here, bench/ANALYSIS.md).
    // Taking one below the low mark asks the host thread for more through
    // spares_fd_ (in its outer set): one wake-up per few connections.
    using SparePair = PairEnds;
    static constexpr size_t spare_pairs_target = 16;
    static constexpr size_t spare_pairs_low = 8;
    static constexpr size_t spares_backoff_after_shortage = 64;
    std::mutex spares_mutex_;
    std::mutex refill_mutex_;  // the host thread's, from making a pair to listing it; and fork's
    bool fork_skipped_spares_ = false;  // before_fork() found this thread holding spares_mutex_
    std::atomic<uint64_t> spare_pairs_made_{0};  // `ustackctl stats`
    std::atomic<uint64_t> spare_pairs_taken_{0};
    std::atomic<uint64_t> retired_fds_closed_{0};
    std::vector<SparePair> spare_pairs_;  // under spares_mutex_
    bool spares_refill_asked_ = false;    // under spares_mutex_
    size_t spares_backoff_ = 0;           // under spares_mutex_: takes that ask for no refill (fds were short)
    // RLIMIT_NOFILE's soft limit (read at start and by each refill): no
    // spare and no retired fd at or above three quarters of it.
    std::atomic<uint64_t> fd_limit_{UINT64_MAX};
    bool fd_in_reserve_range(int fd) const { return static_cast<uint64_t>(fd) < fd_limit_.load() / 4 * 3; }
    void read_fd_limit();
    int spares_fd_ = -1;                  // eventfd; -1 in daemon mode (no spares)
    bool take_spare_pair(int domain, int type, PairEnds& pair);
    // Fds whose close nobody can observe (a finished socket's host end
    // once its app end is gone, the unbound kernel socket a swap replaced):
    // the host thread closes them with its next refill, off the app's
    // thread (a TCP socket's close costs ~4 us here). Bounded: past
    // retired_fds_max they are closed at once.
    static constexpr size_t retired_fds_batch = 8;
    static constexpr size_t retired_fds_max = 64;
    std::vector<int> retired_fds_;  // under spares_mutex_
    void refill_spare_pairs();
    // Buffers the sockets move app bytes through (one thread at a time
    // works the loop, so one of each per host, not per thread).
    std::vector<uint8_t> tcp_scratch_ = std::vector<uint8_t>(256 * 1024);
    std::vector<uint8_t> udp_scratch_ = std::vector<uint8_t>(sizeof(DatagramHeader) + 65536);
    // Sockets created while the loop walks sockets_ (accepted connections)
    // join it afterwards.
    bool walking_sockets_ = false;
    std::vector<std::unique_ptr<HostSocket>> new_sockets_;
    // The O(changed) loop: host ends to visit in the next walk; host ends
    // visited since the last after_activity() ended (their epoll mask is
    // synced and the finished ones reaped then, the others untouched).
    std::unordered_set<int> changed_;
    std::unordered_set<int> visited_;
    std::vector<int> walk_scratch_;
    std::vector<tcp::SocketId> ready_scratch_;
    std::unordered_map<tcp::SocketId, int> by_engine_id_;  // TCP engine socket → host end fd
    std::unordered_set<int> udp_fds_;                      // UDP host ends (walked every time)
    WalkCounters walk_counters_;
    // Host ends shut both ways while the app still holds its end
    // (hangup_ambiguous): unwatched, checked every interval for the close.
    std::unordered_set<int> half_closed_;
    Instant last_half_closed_check_;
    static constexpr Duration half_closed_check_interval = Duration::from_millis(200);
    std::atomic<int> stop_requested_{0};  // 1 stop, 2 drain then stop
    Duration drain_linger_ = Duration::from_millis(300);
    bool stopping_ = false;
    std::optional<Instant> idle_since_;
    Instant started_at_;
    uint64_t rpc_calls_ = 0;
};

}  // namespace ustack::host
