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
// Only one thread runs the loop; stop()/stop_and_drain() may be called
// from any thread.
#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <memory>
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

private:
    struct ControlConnection {
        int fd = -1;
        uint32_t uid = 0;
        int32_t pid = 0;
        bool may_bind_privileged = false;
    };

    Host(HostConfig config, Options options);

    void log(LogLevel level, const std::string& message) const;
    void accept_control();
    void handle_control(ControlConnection& connection);
    void close_control(int fd);
    Reply dispatch(ControlConnection& connection, const Request& request, int passed_fd, std::string& text,
                   int& fd_out);
    Reply create_socket(ControlConnection& connection, const Request& request, int& fd_out);
    Reply create_tcp_socket(ControlConnection& connection, const Request& request, int& fd_out);
    // A new socketpair for a socket: the host end (non-blocking, named for
    // exec'd programs) and the app end, or -errno.
    int open_pair(int domain, int type, int& host_end, int& app_end);
    // Registers a host socket under its app end's inode.
    void register_socket(std::unique_ptr<HostSocket> socket, int app_end);
    int adopt_connection(tcp::SocketId id, int domain, uint32_t uid, int32_t pid) override;
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
    int control_fd_ = -1;
    std::unordered_map<int, ControlConnection> connections_;       // by fd
    std::unordered_map<int, std::unique_ptr<HostSocket>> sockets_;  // by host end fd
    std::unordered_map<int, uint32_t> registered_events_;          // host end fd → epoll mask
    std::unordered_map<ino_t, int> by_app_inode_;                   // app end inode → host end fd
    std::unordered_map<int, ino_t> app_inode_of_;                   // host end fd → app end inode
    UnixLiveness liveness_;  // is an app end's inode still open (app_end_alive)
    uint64_t next_serial_ = 1;
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
