// Inproc: the app's own thread works the host's loop (see host.h, "the
// app's own thread works the loop").
//
// Who waits where:
// - the host thread sleeps on outer_epoll_fd_: the inner set epoll_fd_
//   (device, timerfd, control, every host end), the stop eventfd and the
//   watchdog timerfd;
// - an app thread that would block disables the inner set's entry, sleeps
//   on the inner set itself and, when woken, runs the same loop pass the
//   host thread would (handle_event + after_activity) under loop_mutex_;
// - so at most one thread ever waits on the inner set: a frame, a timer
//   or a control request wakes exactly the thread that will handle it, and
//   the host thread is not woken by them while a caller waits (a level-
//   triggered set shared by two waiters wakes both: measured);
// - the host thread still wakes for a stop request, and every 100 ms
//   while callers wait, to take the loop back from one that stopped
//   working it (supersede_stuck_caller).
// When the caller is done, the host thread comes back lazily:
// - enabling the entry after every call, to disable it again at the next,
//   cost two epoll_ctl per call (six per connection in crr) and woke the
//   host thread for frames the next call would take anyway: crr ran
//   15-20 % faster with the entry left disabled between calls (A/B,
//   ANALYSIS.md round 7);
// - so a call's end leaves it disabled (end_app_turn) while the program
//   keeps coming back, and a periodic lookout timer in the outer set
//   (lookout_interval) wakes the host thread, which makes one pass and
//   enables the entry again once a whole interval went by without a call
//   (lookout_tick). Whatever became ready meanwhile wakes it then
//   (level-triggered): at worst one interval late, for a program that
//   blocks where the shim cannot see it;
// - where the shim does see a thread block outside the loop (the
//   program's poll, select and epoll_wait; a blocking call on an app end
//   that no caller pass serves), outside_wait_begin enables the entry
//   before it blocks, and a call that ends while such a thread waits
//   enables it at once.
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>

#include "stack/host/fork_wiped.h"
#include "stack/host/host.h"
#include "stack/host/tcp_host_socket.h"

namespace ustack::host {

namespace {
constexpr uint64_t tag_of(const epoll_event& event) { return event.data.u64 >> 32; }

// While an app thread holds the loop's lock it must not run a signal
// handler: one that calls exit() would wait forever for the host thread,
// which waits for the lock; one that does blocking I/O on another ustack
// socket would wait for a loop nobody can work; one that longjmps would
// leave the lock held. Asynchronous signals are held back for the call
// (delivered the moment it returns, microseconds later); a caller's wait
// sleeps with the program's own mask (epoll_pwait), so a signal still
// interrupts it as it would interrupt recv. Synchronous faults stay
// unblocked (blocking them would turn a crash into undefined behaviour).
//
// A process with no handler for any of them (the shim says so, see
// Host::signal_handlers_scanned) needs none of this: a signal's default
// action ends, stops or ignores wherever it lands. Such a turn only counts
// itself (ForkWiped::unmasked_turns), so that a handler's installation can
// wait until no thread holds the lock without holding signals: the count
// goes up before the state is read, the state is set before the count is
// read (sequentially consistent), so either the turn sees `some` and holds
// signals, or the installation sees the turn and waits for it.
enum class SignalHandlers : int { unknown, none, some };
std::atomic<SignalHandlers> program_signal_handlers{SignalHandlers::unknown};
thread_local int own_counted_turns = 0;

const sigset_t& async_signals() {
    static const sigset_t set = [] {
        sigset_t held;
        ::sigfillset(&held);
        for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT}) {
            ::sigdelset(&held, sig);
        }
        return held;
    }();
    return set;
}

class AsyncSignalsHeld {
public:
    AsyncSignalsHeld() { take(); }
    ~AsyncSignalsHeld() { give_back(); }
    AsyncSignalsHeld(const AsyncSignalsHeld&) = delete;
    AsyncSignalsHeld& operator=(const AsyncSignalsHeld&) = delete;
    // Around a caller's sleep, with the lock released: a turn that holds
    // no signals stops counting (an installation must not wait for the
    // sleep) and, before taking the lock again, takes them as the state
    // then says.
    void before_sleep() {
        if (mode_ == Mode::counted) {
            give_back();
        }
    }
    void after_sleep() {
        if (mode_ == Mode::none) {
            take();
        }
    }
    // The mask a caller's sleep takes: the program's own (nullptr: the
    // thread's mask is the program's already).
    const sigset_t* program_mask() const { return mode_ == Mode::held ? &program_mask_ : nullptr; }

private:
    enum class Mode : uint8_t { none, counted, held };
    void take() {
        if (ForkWiped* wiped = fork_wiped(); wiped != nullptr) {
            wiped->unmasked_turns.fetch_add(1);
            if (program_signal_handlers.load() == SignalHandlers::none) {
                ++own_counted_turns;
                mode_ = Mode::counted;
                return;
            }
            wiped->unmasked_turns.fetch_sub(1);
        }
        ::pthread_sigmask(SIG_BLOCK, &async_signals(), &program_mask_);
        mode_ = Mode::held;
    }
    void give_back() {
        if (mode_ == Mode::counted) {
            --own_counted_turns;
            fork_wiped()->unmasked_turns.fetch_sub(1);
        } else if (mode_ == Mode::held) {
            ::pthread_sigmask(SIG_SETMASK, &program_mask_, nullptr);
        }
        mode_ = Mode::none;
    }

    Mode mode_ = Mode::none;
    sigset_t program_mask_;
};

// A reader's buffer lent to its socket for one pass, withdrawn however the
// pass ends (an exception unwinds the reader's frame: nothing may keep
// pointing into it), unless the socket went away meanwhile.
class LendForOnePass {
public:
    LendForOnePass(TcpHostSocket* socket, TcpHostSocket::LentBuffer* buffer) : socket_(socket), buffer_(buffer) {
        if (socket_ != nullptr) {
            socket_->lend_read_buffer(buffer_);
        }
    }
    ~LendForOnePass() {
        if (socket_ != nullptr && !buffer_->socket_gone) {
            socket_->lend_read_buffer(nullptr);
        }
    }
    LendForOnePass(const LendForOnePass&) = delete;
    LendForOnePass& operator=(const LendForOnePass&) = delete;

private:
    TcpHostSocket* socket_;
    TcpHostSocket::LentBuffer* buffer_;
};
}  // namespace

void Host::signal_handlers_scanned(bool found) {
    if (fork_wiped() == nullptr) {
        return;  // no count of unheld turns: signals stay held
    }
    SignalHandlers expected = SignalHandlers::unknown;
    program_signal_handlers.compare_exchange_strong(expected, found ? SignalHandlers::some : SignalHandlers::none);
}

void Host::signal_handler_installing() {
    program_signal_handlers.store(SignalHandlers::some);
    if (ForkWiped* wiped = fork_wiped(); wiped != nullptr) {
        // Turns are microseconds long (their sleeps do not count). Waited
        // for even when `some` was set before: by another installation
        // that may still be waiting for them.
        for (int spins = 0; wiped->unmasked_turns.load() > own_counted_turns; ++spins) {
            if (spins < 1000) {
                ::sched_yield();
            } else {
                // A real-time installer must not starve the turn it waits for.
                const timespec pause{0, 50000};
                ::nanosleep(&pause, nullptr);
            }
        }
    }
}

bool Host::caller_pass(const epoll_event* events, int n) {
    ++inner_passes_;
    const Instant now = monotonic_now();
    bool read_device = n == 0;  // a timeout: look at everything, as the host thread does
    bool stop_seen = false;
    for (int i = 0; i < n; ++i) {
        if (tag_of(events[i]) == tag_wake) {
            // A stop request is the host thread's: left unread (the set
            // is level-triggered), it wakes that thread once we are done.
            stop_seen = true;
            continue;
        }
        handle_event(events[i], now, read_device);
    }
    check_half_closed_if_due(now);
    after_activity(monotonic_now(), read_device);
    return stop_seen;
}

bool Host::lend_loop() {
    if (caller_waiting_) {
        return false;  // that caller keeps the host thread out already
    }
    set_host_thread_watch(false);
    return true;
}

void Host::end_app_turn() {
    ++app_turns_;
    if (outside_waiters_.load() > 0 || look_wanted_.exchange(false) || stop_requested_.load() != 0) {
        set_host_thread_watch(true);
        return;
    }
    ++caller_counters_.turns_host_kept_out;
    if (!lookout_armed_) {
        arm_lookout(true);
    }
}

void Host::lookout_tick() {
    uint64_t expirations;
    (void)!::read(lookout_fd_, &expirations, sizeof expirations);
    // Never wait for the lock here: an app thread holding it is at work in
    // the loop (and waiting for it, then taking it from under the next
    // call, cost crr 12 % with a 1 ms lookout).
    std::unique_lock<std::mutex> lock(loop_mutex_, std::try_to_lock);
    if (!lock.owns_lock()) {
        return;
    }
    if (host_watching_.load()) {
        arm_lookout(false);
        return;
    }
    if (caller_waiting_) {
        // That caller works the loop (and the watchdog watches it); its
        // wait's end arms the lookout again.
        arm_lookout(false);
        return;
    }
    if (outside_waiters_.load() > 0 || look_wanted_.exchange(false) || app_turns_ == lookout_seen_turns_ ||
        stop_requested_.load() != 0) {
        ++caller_counters_.lookout_returns;
        set_host_thread_watch(true);  // whatever is ready wakes this thread now
        arm_lookout(false);
        return;
    }
    lookout_seen_turns_ = app_turns_;
    // The program keeps calling, but its calls may all be sends, which
    // look at the device and the engine only: the rest of the inner set
    // (hang-ups, control connections, other sockets' pairs) gets one pass
    // per interval in which no caller made one. If that pass found work,
    // the calls are not keeping up with the inner set (a program polling
    // with a zero timeout and reading with MSG_DONTWAIT, say): the host
    // thread comes back.
    if (inner_passes_ == lookout_seen_passes_ && pass_without_waiting()) {
        ++caller_counters_.lookout_returns;
        set_host_thread_watch(true);
        arm_lookout(false);
    }
    lookout_seen_passes_ = inner_passes_;
}

void Host::arm_lookout(bool on) {
    itimerspec spec{};
    if (on) {
        const int64_t us = lookout_interval.micros();
        spec.it_interval.tv_sec = us / 1000000;
        spec.it_interval.tv_nsec = (us % 1000000) * 1000;
        spec.it_value = spec.it_interval;
    }
    ::timerfd_settime(lookout_fd_, 0, &spec, nullptr);
    lookout_armed_ = on;
    lookout_seen_turns_ = app_turns_;
}

void Host::outside_wait_begin() {
    outside_waiters_.fetch_add(1);
    if (outer_epoll_fd_ < 0 || host_watching_.load()) {
        return;
    }
    // Sticky, for a short wait (host_must_look in the shim) that is over
    // before the lock's holder ends its turn: that turn's end, or the
    // next lookout tick, sees it.
    look_wanted_.store(true);
    // Whoever holds the loop now enables the entry when its turn ends
    // (end_app_turn sees this thread counted), or the next lookout tick
    // does: never wait for the lock here. Signals are held so that a
    // handler cannot leave the lock taken.
    const AsyncSignalsHeld signals_held;
    if (loop_mutex_.try_lock()) {
        if (!caller_waiting_) {
            set_host_thread_watch(true);
        }
        loop_mutex_.unlock();
    }
}

bool Host::pass_without_waiting() {
    epoll_event events[64];
    const int n = ::epoll_wait(epoll_fd_, events, 64, 0);
    if (n > 0) {
        (void)caller_pass(events, n);
    }
    return n > 0;
}

std::optional<Reply> Host::caller_call(Request request, int app_fd, std::string* text, int* fd_out,
                                       const PairEnds* adopt) {
    if (outer_epoll_fd_ < 0) {
        return std::nullopt;
    }
    const AsyncSignalsHeld signals_held;
    std::lock_guard<std::mutex> lock(loop_mutex_);
    if (stopping_ || stop_requested_.load() != 0) {
        return std::nullopt;  // the control socket says what happened
    }
    // A connect's SYN-ACK comes back inside our own write to the device:
    // with the host thread watching, it would be woken only to wait for
    // this lock (round 4 of bench/ANALYSIS.md measured that).
    const bool lent = lend_loop();
    std::string reply_text;
    int out = -1;
    serving_caller_ = true;
    created_socket_ = nullptr;
    adopting_ = adopt;  // under the lock: the host thread's calls (a child's, over the control socket) never see it
    Reply reply = serve_call(caller_connection(), request, app_fd, reply_text, out);
    adopting_ = nullptr;
    serving_caller_ = false;
    // The socket a Socket call made, known without an fstat; taken before
    // the pass, in which an accepted connection may be registered too.
    HostSocket* const created = created_socket_;
    after_activity(monotonic_now(), false);  // what the call queued leaves now (a SYN: its answer too)
    const bool connects = request.op == Op::Connect || (request.op == Op::Socket && request.action == SocketAction::Connect);
    if (connects && reply.error == 0 && reply.value == EINPROGRESS) {
        HostSocket* socket = request.op == Op::Socket ? created : socket_for_fd(app_fd);
        if (socket != nullptr && socket->type() == SOCK_STREAM) {
            auto& tcp = static_cast<TcpHostSocket&>(*socket);
            tcp.end_of_caller_call();
            if (tcp.connected()) {
                reply.flags |= reply_connected;
            }
        }
    }
    wake_caller_if_touched();
    if (lent) {
        end_app_turn();
    }
    if (text != nullptr) {
        *text = std::move(reply_text);
    }
    if (fd_out != nullptr) {
        *fd_out = out;
    } else if (out >= 0) {
        ::close(out);
    }
    return reply;
}

std::optional<Reply> Host::caller_adopt(const Request& request, int app_fd, const PairEnds& pair) {
    if (request.op != Op::Socket || request.type != SOCK_STREAM) {
        return std::nullopt;
    }
    PairEnds adopted = pair;
    adopted.app_end = app_fd;
    return caller_call(request, app_fd, nullptr, nullptr, &adopted);
}

int Host::caller_close(int app_fd, const std::function<int()>& close_fd) {
    if (outer_epoll_fd_ < 0) {
        return close_fd();
    }
    const AsyncSignalsHeld signals_held;
    std::lock_guard<std::mutex> lock(loop_mutex_);
    if (stopping_ || caller_waiting_ || stop_requested_.load() != 0) {
        return close_fd();  // a waiting caller takes the hang-up in its own pass
    }
    const bool lent = lend_loop();
    const HostSocket* socket = socket_for_fd(app_fd);
    closing_host_fd_ = socket != nullptr ? socket->host_fd() : -1;
    const int rc = close_fd();
    const int saved = errno;
    pass_without_waiting();  // the last copy's hang-up: FIN (or RST) now
    closing_host_fd_ = -1;
    if (lent) {
        end_app_turn();
    }
    errno = saved;
    return rc;
}

void Host::arm_watchdog(bool on) {
    itimerspec spec{};
    if (on) {
        const int64_t us = caller_watchdog_interval.micros();
        spec.it_interval.tv_sec = us / 1000000;
        spec.it_interval.tv_nsec = (us % 1000000) * 1000;
        spec.it_value = spec.it_interval;
    }
    ::timerfd_settime(watchdog_fd_, 0, &spec, nullptr);
    watchdog_armed_ = on;
}

void Host::set_host_thread_watch(bool enabled) {
    if (host_watching_.load() == enabled) {
        return;
    }
    host_watching_.store(enabled);
    epoll_event inner{};
    inner.events = enabled ? uint32_t{EPOLLIN} : 0u;  // 0: stays registered, wakes nobody
    inner.data.u64 = 0;
    ::epoll_ctl(outer_epoll_fd_, EPOLL_CTL_MOD, epoll_fd_, &inner);
}

Host::CallerWait Host::caller_wait(int app_fd, const std::function<bool()>& ready, std::optional<Instant> deadline,
                                   TcpHostSocket::LentBuffer* read_into) {
    if (outer_epoll_fd_ < 0) {
        return CallerWait::not_served;
    }
    AsyncSignalsHeld signals_held;
    std::unique_lock<std::mutex> lock(loop_mutex_);
    if (caller_waiting_ || stopping_ || stop_requested_.load() != 0) {
        return CallerWait::not_served;  // one caller at a time; the others block on their app end
    }
    HostSocket* socket = socket_for_fd(app_fd);
    if (socket == nullptr) {
        return CallerWait::not_served;
    }
    // Published before the first look, so that a wake_caller() racing with
    // it either finds the flag or happened before the look.
    caller_waiting_flag_.store(true);
    if (ready()) {
        caller_waiting_flag_.store(false);
        return CallerWait::ready;
    }
    ++caller_counters_.waits;
    const uint64_t epoch = ++caller_epoch_;
    caller_waiting_ = true;
    caller_watch_fd_ = socket->host_fd();
    caller_watch_hit_ = false;
    caller_watch_gone_ = false;
    set_host_thread_watch(false);
    if (!watchdog_armed_) {
        arm_watchdog(true);  // stays armed while waits follow each other (the host thread disarms it)
    }
    // The app end is empty now (ready() said so under the lock): the
    // engine's next bytes may go straight into the reader's buffer. It is
    // lent only for this thread's own passes, never across the wait: no
    // other thread ever writes into this thread's stack (a reader that a
    // signal handler longjmp'd away from its recv leaves nothing behind),
    // and another thread's pass puts the bytes into the pair and wakes us.
    TcpHostSocket* lender = nullptr;
    if (read_into != nullptr && socket->type() == SOCK_STREAM) {
        lender = static_cast<TcpHostSocket*>(socket);
        read_into->got = 0;
        read_into->socket_gone = false;
    }

    CallerWait outcome = CallerWait::not_served;
    bool superseded = false;
    epoll_event events[64];
    for (;;) {
        int timeout_ms = -1;
        if (deadline) {
            const int64_t left_us = (*deadline - monotonic_now()).micros();
            if (left_us <= 0) {
                outcome = CallerWait::timed_out;
                break;
            }
            timeout_ms = static_cast<int>((left_us + 999) / 1000);
        }
        if (!half_closed_.empty()) {
            // The host thread's periodic look at unwatched sockets (run()).
            const int check_ms = static_cast<int>(half_closed_check_interval.millis());
            timeout_ms = timeout_ms < 0 ? check_ms : std::min(timeout_ms, check_ms);
        }
        lock.unlock();
        signals_held.before_sleep();
        const int n = ::epoll_pwait(epoll_fd_, events, 64, timeout_ms, signals_held.program_mask());
        const int wait_error = errno;
        signals_held.after_sleep();
        lock.lock();
        if (caller_epoch_ != epoch) {
            superseded = true;  // the host thread took the loop back (watchdog, stop)
            break;
        }
        if (n < 0) {
            outcome = wait_error == EINTR ? CallerWait::interrupted : CallerWait::not_served;
            break;
        }
        if (caller_watch_hit_) {
            // Another thread's pass (caller_send, caller_call) touched the
            // socket while we slept, with nothing lent: what it put into
            // the pair comes before anything lent now.
            caller_watch_hit_ = false;
            if (ready()) {
                outcome = CallerWait::ready;
                break;
            }
        }
        ++caller_counters_.wait_passes;
        ++caller_passes_;
        bool stop_seen = false;
        {
            const LendForOnePass lend(caller_watch_gone_ ? nullptr : lender, read_into);
            stop_seen = caller_pass(events, n);
        }
        if (lender != nullptr && read_into->got > 0) {
            outcome = CallerWait::ready;  // before anything else: those bytes are the app's now
            break;
        }
        if (stop_seen) {
            break;  // not_served: the caller blocks on its app end while the host stops
        }
        if (caller_watch_hit_) {
            caller_watch_hit_ = false;
            if (ready()) {
                outcome = CallerWait::ready;
                break;
            }
        }
    }
    if (lender != nullptr && read_into->got > 0) {
        ++caller_counters_.direct_reads;
    }
    if (!superseded) {
        caller_waiting_ = false;
        caller_waiting_flag_.store(false);
        caller_watch_fd_ = -1;
        end_app_turn();
    }
    return outcome;
}

bool Host::supersede_stuck_caller() {
    // A caller keeps the host thread out only while it works the loop. One
    // that stopped (a signal handler that blocks or exits the program, a
    // longjmp out of its recv, an exception) would stop the whole stack:
    // the inner set stayed readable and no caller pass came since the last
    // look, or the program is stopping.
    const bool stopping = stop_requested_.load() != 0;
    struct pollfd inner {epoll_fd_, POLLIN, 0};
    const bool pending = ::poll(&inner, 1, 0) == 1;
    const bool stalled = pending && caller_passes_ == watchdog_seen_passes_;
    watchdog_seen_passes_ = caller_passes_;
    if (!stopping && !stalled) {
        return false;
    }
    ++caller_counters_.superseded;
    ++caller_epoch_;  // the caller, when it comes back, sees it and leaves the loop alone
    caller_waiting_ = false;
    caller_waiting_flag_.store(false);
    caller_watch_fd_ = -1;
    set_host_thread_watch(true);
    return true;
}

std::optional<size_t> Host::caller_send(int app_fd, const iovec* iov, size_t iovcnt) {
    if (outer_epoll_fd_ < 0) {
        return std::nullopt;
    }
    // The host thread at work (moving a stream, say): the pair, at once.
    const AsyncSignalsHeld signals_held;
    std::unique_lock<std::mutex> lock(loop_mutex_, std::try_to_lock);
    if (!lock.owns_lock() || stopping_ || stop_requested_.load() != 0) {
        return std::nullopt;
    }
    HostSocket* socket = socket_for_fd(app_fd);
    if (socket == nullptr || socket->type() != SOCK_STREAM ||
        !static_cast<TcpHostSocket&>(*socket).may_send_from_app_thread()) {
        ++caller_counters_.sends_declined;
        return std::nullopt;
    }
    const Instant now = monotonic_now();
    // The local peer's kernel answers inside our write (an ACK of a new
    // connection's first data, quick-ack mode): it would wake the host
    // thread for nothing on the core the peer needs (crr 7.9k -> 8.3k/s).
    const bool lent = lend_loop();
    const size_t taken = static_cast<TcpHostSocket&>(*socket).send_from_app_thread(now, iov, iovcnt);
    // The pass the host thread would make after reading the pair: the
    // segments leave now, on this thread.
    mark_changed(socket->host_fd());
    after_activity(now, false);
    wake_caller_if_touched();
    if (lent) {
        end_app_turn();
    }
    if (taken == 0) {
        ++caller_counters_.sends_declined;
        return std::nullopt;
    }
    ++caller_counters_.sends;
    return taken;
}

void Host::wake_caller_if_touched() {
    if (caller_waiting_ && caller_watch_hit_) {
        const uint64_t one = 1;
        (void)!::write(caller_kick_fd_, &one, sizeof one);
    }
}

void Host::wake_caller(bool force) {
    if (caller_kick_fd_ >= 0 && (force || caller_waiting_flag_.load())) {
        const uint64_t one = 1;
        (void)!::write(caller_kick_fd_, &one, sizeof one);
    }
}

}  // namespace ustack::host
