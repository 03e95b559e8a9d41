#include "stack/host/host.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <netinet/tcp.h>
#include <sstream>

#include "netdev/af_packet.h"
#include "netdev/mac.h"
#include "netdev/pcap_writer.h"
#include "netdev/tap.h"
#include "stack/host/udp_host_socket.h"
#include "stack/host/unix_liveness.h"

namespace ustack::host {

Instant monotonic_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return Instant::from_micros(static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000);
}

namespace {

using HostError = std::pair<int, std::string>;

Unexpected<HostError> host_fail(int error, std::string message) {
    return Unexpected<HostError>{HostError{error, std::move(message)}};
}

uint64_t random_seed() {
    uint64_t seed = 0;
    if (::getrandom(&seed, sizeof seed, 0) != sizeof seed) {
        seed = static_cast<uint64_t>(monotonic_now().micros()) ^ (static_cast<uint64_t>(::getpid()) << 32);
    }
    return seed;
}

// CAP_NET_BIND_SERVICE in the peer's effective set (/proc/PID/status), so
// that a program allowed to bind a port below 1024 in Linux may do so here.
bool may_bind_privileged(pid_t pid, uid_t uid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("CapEff:", 0) == 0) {
            const uint64_t caps = std::strtoull(line.c_str() + 7, nullptr, 16);
            return (caps & (uint64_t{1} << 10)) != 0;
        }
    }
    return uid == 0;
}

Endpoint endpoint_of(const Request& r) { return Endpoint{wire::Ipv4Address(ntohl(r.addr)), ntohs(r.port)}; }

void fill_endpoint(Reply& reply, const Endpoint& e) {
    reply.addr = htonl(e.addr.to_u32());
    reply.port = htons(e.port);
}

Reply error_reply(int error) {
    Reply reply;
    reply.error = error;
    return reply;
}

// Linux's TCP_* state numbers (include/net/tcp_states.h) for tcp_info.
uint8_t linux_state(tcp::TcpState state) {
    switch (state) {
    case tcp::TcpState::Established: return TCP_ESTABLISHED;
    case tcp::TcpState::SynSent: return TCP_SYN_SENT;
    case tcp::TcpState::SynReceived: return TCP_SYN_RECV;
    case tcp::TcpState::FinWait1: return TCP_FIN_WAIT1;
    case tcp::TcpState::FinWait2: return TCP_FIN_WAIT2;
    case tcp::TcpState::TimeWait: return TCP_TIME_WAIT;
    case tcp::TcpState::Closed: return TCP_CLOSE;
    case tcp::TcpState::CloseWait: return TCP_CLOSE_WAIT;
    case tcp::TcpState::LastAck: return TCP_LAST_ACK;
    case tcp::TcpState::Listen: return TCP_LISTEN;
    case tcp::TcpState::Closing: return TCP_CLOSING;
    }
    return TCP_CLOSE;
}

// struct tcp_info's basic fields (tcp_get_info), as bytes for the reply.
std::string tcp_info_bytes(const tcp::TcpInfo& i) {
    struct tcp_info out {};
    out.tcpi_state = linux_state(i.state);
    out.tcpi_ca_state = i.in_recovery ? 3 /* TCP_CA_Recovery */ : 0;
    out.tcpi_retransmits = static_cast<uint8_t>(std::min(i.retransmits, 255u));
    out.tcpi_probes = static_cast<uint8_t>(std::min(i.probes_out, 255u));
    out.tcpi_backoff = static_cast<uint8_t>(std::min(i.backoff, 255u));
    out.tcpi_options = (i.timestamps ? TCPI_OPT_TIMESTAMPS : 0) | (i.sack ? TCPI_OPT_SACK : 0) |
                       (i.window_scaling ? TCPI_OPT_WSCALE : 0);
    if (i.window_scaling) {
        out.tcpi_snd_wscale = i.snd_wscale & 0xf;
        out.tcpi_rcv_wscale = i.rcv_wscale & 0xf;
    }
    out.tcpi_rto = static_cast<uint32_t>(i.rto.micros());
    out.tcpi_snd_mss = i.snd_mss;
    out.tcpi_rcv_mss = i.adv_mss;
    const uint32_t mss = std::max<uint32_t>(i.snd_mss, 1);
    out.tcpi_unacked = (i.bytes_in_flight + mss - 1) / mss;
    out.tcpi_rtt = static_cast<uint32_t>(i.srtt.micros());
    out.tcpi_snd_ssthresh = i.ssthresh / mss;
    out.tcpi_snd_cwnd = i.cwnd / mss;
    out.tcpi_advmss = i.adv_mss;
    out.tcpi_rcv_space = i.rcv_wnd;
    return std::string(reinterpret_cast<const char*>(&out), sizeof out);
}

std::string tcp_endpoint_text(const tcp::Endpoint& e) {
    return (e.addr.is_unspecified() ? std::string("0.0.0.0") : e.addr.to_string()) + ":" +
           (e.port == 0 ? std::string("*") : std::to_string(e.port));
}

uint64_t make_tag(uint64_t kind, int fd) { return (kind << 32) | static_cast<uint32_t>(fd); }

}  // namespace

Host::Host(HostConfig config, Options options)
    : config_(std::move(config)), options_(options), pid_(static_cast<int32_t>(::getpid())) {}

Host::~Host() {
    new_sockets_.clear();
    sockets_.clear();
    if (stack_ && tcp_) {
        stack_->attach_tcp(nullptr);
    }
    tcp_.reset();
    for (auto& [fd, connection] : connections_) {
        ::close(fd);
    }
    for (const SparePair& p : spare_pairs_) {
        ::close(p.host_end);
        ::close(p.app_end);
    }
    for (const int fd : retired_fds_) {
        ::close(fd);
    }
    for (int fd : {epoll_fd_, outer_epoll_fd_, timer_fd_, wake_fd_, caller_kick_fd_, watchdog_fd_, lookout_fd_,
                   spares_fd_, control_fd_}) {
        if (fd >= 0) {
            ::close(fd);
        }
    }
}

Expected<std::unique_ptr<Host>, std::pair<int, std::string>> Host::create(const HostConfig& config, Options options) {
    if (!config.address) {
        return host_fail(EINVAL, "no address for the stack: give --addr A.B.C.D/LEN (or USTACK_ADDR)");
    }
    const auto kind = config.device_kind();
    if (!kind) {
        return host_fail(EINVAL, "--dev: '" + config.device + "' is not tap:NAME or packet:IFNAME");
    }
    std::unique_ptr<Host> host(new Host(config, options));

    // The control socket first: its abstract name is the per-device lock.
    host->control_fd_ = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (host->control_fd_ < 0) {
        return host_fail(errno, std::string("control socket: ") + std::strerror(errno));
    }
    sockaddr_un address;
    const socklen_t len = make_abstract_address(control_socket_name(config.device), address);
    if (::bind(host->control_fd_, reinterpret_cast<sockaddr*>(&address), len) < 0) {
        const int err = errno;
        if (err == EADDRINUSE) {
            return host_fail(EADDRINUSE, "a ustack host for " + config.device + " is already running");
        }
        return host_fail(err, "control socket @" + control_socket_name(config.device) + ": " + std::strerror(err));
    }
    if (::listen(host->control_fd_, 128) < 0) {
        return host_fail(errno, std::string("listen on the control socket: ") + std::strerror(errno));
    }

    host->random_ = std::make_unique<SeededRandom>(random_seed());
    if (kind->first == "tap") {
        netdev::TapOptions tap_options;
        tap_options.stack_address = config.address->address;
        tap_options.mac = netdev::random_local_mac(*host->random_);
        tap_options.offloads = config.offload;
        auto tap = netdev::TapDevice::open(kind->second, tap_options);
        if (!tap) {
            return host_fail(tap.error().error.value, "--dev " + config.device + ": " + tap.error().message);
        }
        host->device_ = std::move(*tap);
    } else {
        netdev::PacketOptions packet_options;
        packet_options.stack_address = config.address->address;
        packet_options.offloads = config.offload;
        auto packet = netdev::PacketDevice::open(kind->second, netdev::random_local_mac(*host->random_), packet_options);
        if (!packet) {
            return host_fail(packet.error().error.value, "--dev " + config.device + ": " + packet.error().message);
        }
        host->device_ = std::move(*packet);
    }
    if (config.pcap) {
        auto writer = netdev::PcapWriter::open(std::move(host->device_), *config.pcap);
        if (!writer) {
            return host_fail(writer.error().value, "--pcap " + *config.pcap + ": " + std::strerror(writer.error().value));
        }
        host->device_ = std::move(*writer);
    }

    StackConfig stack_config;
    stack_config.address = *config.address;
    stack_config.gateway = config.gateway;
    stack_config.tunables = config.tunables;
    if (auto problem = stack_config.validate()) {
        return host_fail(EINVAL, *problem);
    }
    host->stack_ = std::make_unique<Stack>(stack_config, *host->device_, *host->random_);
    host->tcp_ = std::make_unique<tcp::TcpTransport>(*host->stack_, tcp::TcpConfig{}, *host->random_);
    host->stack_->attach_tcp(host->tcp_.get());

    host->epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    host->timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    host->wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (host->epoll_fd_ < 0 || host->timer_fd_ < 0 || host->wake_fd_ < 0) {
        return host_fail(errno, std::string("epoll/timerfd/eventfd: ") + std::strerror(errno));
    }
    auto watch = [&](int fd, uint64_t tag) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = make_tag(tag, fd);
        return ::epoll_ctl(host->epoll_fd_, EPOLL_CTL_ADD, fd, &ev) == 0;
    };
    if ((host->device_->poll_fd() >= 0 && !watch(host->device_->poll_fd(), tag_device)) ||
        !watch(host->timer_fd_, tag_timer) || !watch(host->wake_fd_, tag_wake) ||
        !watch(host->control_fd_, tag_control)) {
        return host_fail(errno, std::string("epoll_ctl: ") + std::strerror(errno));
    }
    if (options.inproc) {
        // The host thread's own set: only the inner one (see caller_wait).
        host->outer_epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
        host->caller_kick_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        host->watchdog_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        host->lookout_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        host->spares_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        host->read_fd_limit();
        host->spare_pairs_.reserve(spare_pairs_target);
        host->retired_fds_.reserve(retired_fds_max);
        epoll_event spares{};
        spares.events = EPOLLIN;
        spares.data.u64 = make_tag(tag_spares, host->spares_fd_);
        epoll_event watchdog{};
        watchdog.events = EPOLLIN;
        watchdog.data.u64 = make_tag(tag_watchdog, host->watchdog_fd_);
        epoll_event lookout{};
        lookout.events = EPOLLIN;
        lookout.data.u64 = make_tag(tag_lookout, host->lookout_fd_);
        epoll_event inner{};
        inner.events = EPOLLIN;
        inner.data.u64 = 0;
        // Stop requests reach the host thread even while a caller keeps it
        // out of the inner set (it then takes the loop back).
        epoll_event stop{};
        stop.events = EPOLLIN;
        stop.data.u64 = make_tag(tag_wake, host->wake_fd_);
        if (host->outer_epoll_fd_ < 0 || host->caller_kick_fd_ < 0 || !watch(host->caller_kick_fd_, tag_caller_kick) ||
            ::epoll_ctl(host->outer_epoll_fd_, EPOLL_CTL_ADD, host->epoll_fd_, &inner) < 0 ||
            ::epoll_ctl(host->outer_epoll_fd_, EPOLL_CTL_ADD, host->wake_fd_, &stop) < 0 || host->watchdog_fd_ < 0 ||
            ::epoll_ctl(host->outer_epoll_fd_, EPOLL_CTL_ADD, host->watchdog_fd_, &watchdog) < 0 ||
            host->lookout_fd_ < 0 || ::epoll_ctl(host->outer_epoll_fd_, EPOLL_CTL_ADD, host->lookout_fd_, &lookout) < 0 ||
            host->spares_fd_ < 0 || ::epoll_ctl(host->outer_epoll_fd_, EPOLL_CTL_ADD, host->spares_fd_, &spares) < 0) {
            return host_fail(errno, std::string("epoll (inproc): ") + std::strerror(errno));
        }
    }
    host->started_at_ = monotonic_now();
    host->stack_->announce(host->started_at_);
    host->log(LogLevel::Info, "serving " + config.device + " as " + config.address->to_string());
    return host;
}

void Host::log(LogLevel level, const std::string& message) const {
    if (level > config_.log) {
        return;
    }
    std::fprintf(stderr, "ustack host[%d] %s: %s\n", static_cast<int>(::getpid()),
                 std::string(log_level_name(level)).c_str(), message.c_str());
}

void Host::stop() {
    int expected = 0;
    stop_requested_.compare_exchange_strong(expected, 1);
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

void Host::stop_and_drain(Duration linger) {
    drain_linger_ = linger;
    stop_requested_.store(2);
    const uint64_t one = 1;
    (void)!::write(wake_fd_, &one, sizeof one);
}

bool Host::idle() const {
    // TIME_WAIT entries and orphans still closing keep the host: a
    // restarted server must find them (DESIGN.md).
    return sockets_.empty() && new_sockets_.empty() && tcp_->engine().socket_count() == 0 &&
           tcp_->engine().time_wait_count() == 0 && tcp_->engine().fin_wait2_count() == 0;
}

void Host::run() {
    epoll_event events[64];
    // Busy poll (config_.busy_poll): until this instant the loop asks
    // epoll without sleeping, so the next request or answer is taken
    // without waiting for the scheduler to wake this thread.
    std::optional<Instant> spin_until;
    // Inproc: this thread sleeps on the outer set: the inner set (which
    // an app thread disables while it works the loop itself, caller_wait),
    // the stop eventfd and the watchdog timer; daemon: straight on the
    // inner set.
    const int wait_fd = outer_epoll_fd_ >= 0 ? outer_epoll_fd_ : epoll_fd_;
    while (!stopping_) {
        // The timerfd wakes us for stack timers; the idle check needs a
        // timeout of its own.
        int timeout_ms = -1;
        if (!options_.persistent && idle_since_) {
            const Duration left = (*idle_since_ + config_.idle_exit) - monotonic_now();
            timeout_ms = static_cast<int>(std::max<int64_t>(0, (left.micros() + 999) / 1000));
        }
        if (!half_closed_.empty()) {
            const int check_ms = static_cast<int>(half_closed_check_interval.millis());
            timeout_ms = timeout_ms < 0 ? check_ms : std::min(timeout_ms, check_ms);
        }
        const bool spinning = spin_until && monotonic_now() < *spin_until;
        int n = ::epoll_wait(wait_fd, events, 64, spinning ? 0 : timeout_ms);
        if (n < 0 && errno != EINTR) {
            log(LogLevel::Error, std::string("epoll_wait: ") + std::strerror(errno));
            break;
        }
        if (spinning && n == 0) {
            continue;  // nothing yet: stack timers and stop requests are events too
        }
        if (wait_fd != epoll_fd_) {
            // Spare socketpairs are made without the loop lock, so that an
            // app thread at work is not held up by them.
            int others = n;
            for (int i = 0; i < n; ++i) {
                if ((events[i].data.u64 >> 32) == tag_spares) {
                    refill_spare_pairs();
                    --others;
                } else if ((events[i].data.u64 >> 32) == tag_lookout) {
                    lookout_tick();
                    --others;
                }
            }
            if (n > 0 && others == 0) {
                continue;
            }
        }
        std::unique_lock<std::mutex> lock(loop_mutex_);
        if (wait_fd != epoll_fd_) {
            for (int i = 0; i < n; ++i) {
                if ((events[i].data.u64 >> 32) == tag_watchdog) {
                    uint64_t expirations;
                    (void)!::read(watchdog_fd_, &expirations, sizeof expirations);
                    if (!caller_waiting_) {
                        arm_watchdog(false);  // no caller at work: nothing to watch
                    }
                }
            }
            if (stop_requested_.load() != 0 && !caller_waiting_) {
                set_host_thread_watch(true);  // the drain below waits on the inner set's events
            }
            if (caller_waiting_ && !supersede_stuck_caller()) {
                ++caller_counters_.host_thread_yielded;
                continue;  // an app thread works the loop until it re-enables us
            }
            // What the outer set announced (the inner set, or a stop request).
            n = ::epoll_wait(epoll_fd_, events, 64, 0);
        }
        Instant now = monotonic_now();
        // The device is read when epoll says it is readable, or when the
        // timer fired (a device that delays frames, the impaired link,
        // has no fd readiness: its next_arrival() is in poll_at()).
        bool read_device = n == 0;  // a timeout: look at everything
        if (n > 0 && config_.busy_poll > Duration::zero()) {
            spin_until = now + config_.busy_poll;
        }
        ++caller_counters_.host_thread_passes;
        for (int i = 0; i < std::max(n, 0); ++i) {
            handle_event(events[i], now, read_device);
        }
        now = monotonic_now();
        check_half_closed_if_due(now);
        after_activity(now, read_device);
        if (outer_epoll_fd_ >= 0 && !caller_waiting_ && (outside_waiters_.load() > 0 || look_wanted_.exchange(false))) {
            set_host_thread_watch(true);  // one came while we held the loop (outside_wait_begin)
        }

        const int stop = stop_requested_.load();
        if (stop == 1) {
            break;
        }
        if (stop == 2) {
            // Program exit (inproc): send what the apps wrote, then let ARP
            // resolve and the device drain for a short while.
            for (auto& [fd, socket] : sockets_) {
                socket->drain_app(now);
                socket->on_process_exit(now);
                mark_changed(fd);
            }
            after_activity(monotonic_now(), true);
            const Instant until = monotonic_now() + drain_linger_;
            uint64_t last_tx = device_->stats().tx_frames;
            Instant last_change = monotonic_now();
            while (monotonic_now() < until) {
                epoll_event ev;
                (void)::epoll_wait(epoll_fd_, &ev, 1, 5);
                after_activity(monotonic_now(), true);
                if (device_->stats().tx_frames != last_tx) {
                    last_tx = device_->stats().tx_frames;
                    last_change = monotonic_now();
                } else if (monotonic_now() - last_change > Duration::from_millis(50)) {
                    break;
                }
            }
            break;
        }
        if (!options_.persistent) {
            if (idle()) {
                if (!idle_since_) {
                    idle_since_ = now;
                } else if (now - *idle_since_ >= config_.idle_exit) {
                    log(LogLevel::Info, "idle: exiting");
                    break;
                }
            } else {
                idle_since_.reset();
            }
        }
    }
    std::lock_guard<std::mutex> lock(loop_mutex_);
    stopping_ = true;
}

void Host::handle_event(const epoll_event& event, Instant now, bool& read_device) {
    const uint64_t kind = event.data.u64 >> 32;
    const int fd = static_cast<int>(event.data.u64 & 0xffffffffu);
    const uint32_t ev = event.events;
    switch (kind) {
    case tag_device:
        if ((ev & EPOLLERR) != 0) {
            device_->take_poll_error();  // else level-triggered epoll reports it forever
        }
        read_device = true;  // after_activity() reads the frames
        break;
    case tag_timer: {
        read_device = true;
        uint64_t expirations;
        (void)!::read(timer_fd_, &expirations, sizeof expirations);
        timer_armed_us_ = -1;  // fired: disarmed now
        break;
    }
    case tag_wake: {
        uint64_t count;
        (void)!::read(wake_fd_, &count, sizeof count);
        break;
    }
    case tag_caller_kick: {
        uint64_t count;
        (void)!::read(caller_kick_fd_, &count, sizeof count);
        caller_watch_hit_ = caller_waiting_;  // the caller looks again
        break;
    }
    case tag_control:
        accept_control();
        break;
    case tag_connection: {
        auto it = connections_.find(fd);
        if (it != connections_.end()) {
            if ((ev & EPOLLIN) != 0) {
                handle_control(it->second);
            } else if ((ev & (EPOLLHUP | EPOLLERR)) != 0) {
                close_control(fd);
            }
        }
        break;
    }
    case tag_socket: {
        auto it = sockets_.find(fd);
        if (it == sockets_.end()) {
            // A spare pair's host end, registered ahead, that no socket
            // has yet (a pair-backed candidate's app end written to behind
            // the shim's back): silenced until a socket takes it.
            epoll_event quiet{};
            quiet.data.u64 = make_tag(tag_socket, fd);
            if (::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &quiet) == 0) {
                silenced_host_ends_.insert(fd);
            }
            break;
        }
        HostSocket& socket = *it->second;
        // Data written before the close is still sent: read first.
        if ((ev & (EPOLLIN | EPOLLHUP | EPOLLRDHUP)) != 0) {
            socket.on_app_readable(now);
        }
        if ((ev & EPOLLOUT) != 0) {
            socket.on_app_writable(now);
        }
        if ((ev & (EPOLLHUP | EPOLLERR)) != 0) {
            socket.drain_app(now);  // everything the app wrote before its last close
            // The app's close() on this thread, just now (caller_close):
            // its hang-up needs no liveness check.
            const bool own_close = fd == closing_host_fd_ && socket.hangup_after_close_is_close();
            if (socket.hangup_ambiguous() && !own_close && app_end_alive(fd)) {
                // Both directions shut, the app still holds its
                // end: not a close. Looked at again later.
                half_closed_.insert(fd);
                sync_events(socket);
            } else {
                socket.on_app_hangup(now);
            }
        }
        mark_changed(fd);
        break;
    }
    default:
        break;
    }
}

void Host::walk_changed(Instant now) {
    ++walk_counters_.walks;
    tcp_->engine().take_ready(ready_scratch_);
    for (const tcp::SocketId id : ready_scratch_) {
        if (auto it = by_engine_id_.find(id); it != by_engine_id_.end()) {
            changed_.insert(it->second);
        }
    }
    // UDP sockets have no ready list (the UDP layer keeps none): each is
    // one readable() check per walk.
    changed_.insert(udp_fds_.begin(), udp_fds_.end());
    walk_scratch_.assign(changed_.begin(), changed_.end());
    changed_.clear();
    walking_sockets_ = true;
    for (const int fd : walk_scratch_) {
        auto it = sockets_.find(fd);
        if (it == sockets_.end()) {
            continue;
        }
        ++walk_counters_.socket_visits;
        it->second->on_stack_event(now);
        visited_.insert(fd);
        caller_watch_hit_ = caller_watch_hit_ || fd == caller_watch_fd_;
        if (it->second->wants_another_pass()) {
            changed_.insert(fd);
        }
    }
    walking_sockets_ = false;
    // Accepted connections: their data may already be waiting.
    while (!new_sockets_.empty()) {
        std::vector<std::unique_ptr<HostSocket>> added = std::move(new_sockets_);
        new_sockets_.clear();
        for (auto& socket : added) {
            HostSocket& ref = *socket;
            const int fd = ref.host_fd();
            add_socket(std::move(socket));
            ++walk_counters_.socket_visits;
            ref.on_stack_event(now);
            visited_.insert(fd);
        }
    }
}

void Host::after_activity(Instant now, bool read_device) {
    // Only sockets that changed are looked at: the engine's ready list
    // (data, FIN, room to send, state changes, errors, accept queue) and
    // the sockets the loop or an RPC touched. An idle connection costs
    // nothing per event, so opening n connections is O(n), not O(n²).
    // The device is read when epoll (or the timer) said so, and right
    // after sending while that pays (below): a read that finds nothing is
    // a syscall ending in EAGAIN (1-2 µs each on this kind of virtual
    // machine; rr made 2.7 of them per round trip). A frame that arrives
    // meanwhile keeps the level-triggered device fd readable, so the next
    // epoll_wait returns at once: never a stall, at worst one more trip.
    if (read_device) {
        stack_->poll(now);
    } else {
        stack_->poll_without_device(now);
    }
    walk_changed(now);
    // Sending to the app may have made room for more stack output (not
    // for UDP), and the engine may list sockets again (a walk that left
    // work, loopback): walk until nothing is listed. Bounded; always ends
    // on a poll, so what the last walk queued is sent, and arm_timer()
    // brings the loop back at once if the rounds run out with work left.
    for (int round = 0;; ++round) {
        stack_->poll_without_device(now);
        // A local peer often answers inside our own write (the kernel runs
        // its receive path in the syscall: SYN → SYN-ACK, FIN → ACK), and
        // reading at once takes that answer without an epoll_wait; a peer
        // that must first be scheduled (a request's response) leaves the
        // read empty. Which wins depends on the traffic: keep score.
        bool took = false;
        const uint64_t tx = device_->stats().tx_frames;
        if (tx != tx_seen_ && eager_reads_.worthwhile()) {
            took = stack_->poll(now) > 0;
            eager_reads_.record(took);
        }
        tx_seen_ = device_->stats().tx_frames;
        const bool more = took || tcp_->engine().has_ready() || !changed_.empty();
        if (!more || round == 16) {
            break;
        }
        walk_changed(now);
    }
    reap_finished();
    for (const int fd : visited_) {
        if (auto it = sockets_.find(fd); it != sockets_.end()) {
            sync_events(*it->second);
        }
    }
    visited_.clear();
    arm_timer();
}

void Host::arm_timer() {
    itimerspec spec{};
    std::optional<Instant> at = stack_->poll_at();
    if (tcp_->engine().has_ready() || !changed_.empty()) {
        at = monotonic_now();  // the walk rounds ran out: come back at once
    }
    if (at) {
        // Absolute CLOCK_MONOTONIC; never zero (that would disarm).
        const int64_t us = std::max<int64_t>(at->micros(), 1);
        spec.it_value.tv_sec = us / 1000000;
        spec.it_value.tv_nsec = (us % 1000000) * 1000;
    }
    // Once per loop round; the deadline (delayed ACK, RTO) mostly moves
    // later with every segment. A timer armed earlier than needed is left
    // alone: it fires, the loop finds nothing due and arms it again, once
    // per deadline instead of a syscall per segment (timer_armed_us_ is
    // forgotten when the timer fires).
    const int64_t armed = spec.it_value.tv_sec * 1000000 + spec.it_value.tv_nsec / 1000;
    const bool armed_earlier = timer_armed_us_ > 0 && (armed == 0 || timer_armed_us_ <= armed);
    if (armed != timer_armed_us_ && !armed_earlier) {
        ::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
        timer_armed_us_ = armed;
    }
}

void Host::sync_events(HostSocket& socket) {
    const int fd = socket.host_fd();
    const uint32_t wanted = socket.epoll_events();
    auto it = registered_events_.find(fd);
    if (socket.pair_released() && !socket.finished()) {
        half_closed_.insert(fd);
    }
    if (!socket.watch_host_end() || half_closed_.count(fd) != 0) {
        if (it != registered_events_.end()) {
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
            count_room_wait(it->second, 0);
            registered_events_.erase(it);
        }
        return;
    }
    if (it != registered_events_.end() && it->second == wanted) {
        return;
    }
    epoll_event ev{};
    ev.events = wanted;
    ev.data.u64 = make_tag(tag_socket, fd);
    if (it == registered_events_.end()) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        count_room_wait(0, wanted);
        registered_events_[fd] = wanted;
    } else {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
        count_room_wait(it->second, wanted);
        it->second = wanted;
    }
}

void Host::count_room_wait(uint32_t was, uint32_t now) {
    const int change = ((now & EPOLLOUT) != 0 ? 1 : 0) - ((was & EPOLLOUT) != 0 ? 1 : 0);
    if (change != 0) {
        host_ends_waiting_for_room_.fetch_add(change);
    }
}

void Host::reap_finished() {
    // A socket finishes only in a hook the loop called, so only the ones
    // visited can have finished.
    for (const int fd : visited_) {
        auto it = sockets_.find(fd);
        if (it == sockets_.end() || !it->second->finished()) {
            continue;
        }
        half_closed_.erase(fd);
        udp_fds_.erase(fd);
        caller_watch_gone_ = caller_watch_gone_ || fd == caller_watch_fd_;
        if (auto registered = registered_events_.find(fd); registered != registered_events_.end()) {
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
            count_room_wait(registered->second, 0);
            registered_events_.erase(registered);
        }
        if (it->second->type() == SOCK_STREAM) {
            auto& tcp_socket = static_cast<TcpHostSocket&>(*it->second);
            if (auto e = by_engine_id_.find(tcp_socket.id()); e != by_engine_id_.end() && e->second == fd) {
                by_engine_id_.erase(e);
            }
            // Nobody can see this close any more: off the loop's thread.
            if (const int host_end = tcp_socket.take_host_fd_if_app_gone(); host_end >= 0) {
                retire_fd(host_end);
            }
        }
        if (auto ino = app_inode_of_.find(fd); ino != app_inode_of_.end()) {
            by_app_inode_.erase(ino->second);
            app_inode_of_.erase(ino);
        }
        if (config_.log >= LogLevel::Debug) {  // describe() builds strings: not per connection for nothing
            log(LogLevel::Debug, "closed: " + it->second->describe());
        }
        sockets_.erase(it);  // closes the host end if not retired
    }
}

bool Host::app_end_alive(int host_fd) {
    auto it = app_inode_of_.find(host_fd);
    return it != app_inode_of_.end() && liveness_.exists(it->second);
}

void Host::check_half_closed_if_due(Instant now) {
    if (!half_closed_.empty() && now - last_half_closed_check_ >= half_closed_check_interval) {
        last_half_closed_check_ = now;
        check_half_closed(now);
    }
}

void Host::check_half_closed(Instant now) {
    for (auto it = half_closed_.begin(); it != half_closed_.end();) {
        const int fd = *it;
        auto s = sockets_.find(fd);
        if (s == sockets_.end()) {
            it = half_closed_.erase(it);
            continue;
        }
        if (app_end_alive(fd)) {
            ++it;
            continue;
        }
        it = half_closed_.erase(it);
        s->second->on_app_hangup(now);
        mark_changed(fd);
    }
}

void Host::add_socket(std::unique_ptr<HostSocket> socket) {
    if (walking_sockets_) {
        new_sockets_.push_back(std::move(socket));
        return;
    }
    const int fd = socket->host_fd();
    HostSocket& ref = *socket;
    if (ref.type() == SOCK_STREAM) {
        by_engine_id_[static_cast<const TcpHostSocket&>(ref).id()] = fd;
    } else {
        udp_fds_.insert(fd);
    }
    sockets_[fd] = std::move(socket);
    // Registered with epoll at the end of the pass that follows every
    // add (after_activity syncs what the walk visited): once, with the
    // events its state wants then (a connect made within a call is
    // established by then), not once now and again then.
    mark_changed(fd);
}

// ------------------------------------------------------------ control

void Host::accept_control() {
    for (;;) {
        const int fd = ::accept4(control_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
            ::close(fd);
            continue;
        }
        // Only the host's own user, or root, may use it: sockets carry the
        // caller's uid into SO_REUSEPORT groups.
        if (cred.uid != ::geteuid() && cred.uid != 0) {
            log(LogLevel::Warn, "refused control connection from uid " + std::to_string(cred.uid));
            ::close(fd);
            continue;
        }
        ControlConnection connection;
        connection.fd = fd;
        connection.uid = cred.uid;
        connection.pid = cred.pid;
        connection.may_bind_privileged = may_bind_privileged(cred.pid, cred.uid);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = make_tag(tag_connection, fd);
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
        connections_[fd] = connection;
    }
}

void Host::close_control(int fd) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    ::close(fd);
    connections_.erase(fd);
}

void Host::handle_control(ControlConnection& connection) {
    const int conn_fd = connection.fd;
    Request request;
    int passed_fd = -1;
    const ssize_t n = recv_with_fd(conn_fd, &request, sizeof request, &passed_fd, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return;
    }
    if (n <= 0) {
        close_control(conn_fd);
        return;
    }
    std::string text;
    int fd_out = -1;
    Reply reply;
    if (static_cast<size_t>(n) != sizeof request) {
        reply = error_reply(EPROTO);
        text = "protocol mismatch: rebuild the shim and ustackd from the same tree";
    } else {
        reply = serve_call(connection, request, passed_fd, text, fd_out);
    }
    if (passed_fd >= 0) {
        ::close(passed_fd);
    }
    std::string message(reinterpret_cast<const char*>(&reply), sizeof reply);
    message += text;
    // Replies are small; a client that does not read them is dropped.
    if (send_with_fd(conn_fd, message.data(), message.size(), fd_out, MSG_DONTWAIT) < 0) {
        close_control(conn_fd);
    }
    if (fd_out >= 0) {
        ::close(fd_out);
    }
    // The call may have queued output (connect, options) or input for the app.
    after_activity(monotonic_now(), false);
}

Reply Host::serve_call(ControlConnection& connection, Request& request, int passed_fd, std::string& text,
                       int& fd_out) {
    ++rpc_calls_;
    Reply reply;
    if (request.version != protocol_version) {
        reply = error_reply(EPROTO);
        text = "protocol mismatch: rebuild the shim and ustackd from the same tree";
    } else {
        request.text[sizeof request.text - 1] = '\0';
        reply = dispatch(connection, request, passed_fd, text, fd_out);
    }
    if (text.size() > max_reply_text) {
        text.resize(max_reply_text);
    }
    reply.text_len = static_cast<uint32_t>(text.size());
    return reply;
}

Host::ControlConnection& Host::caller_connection() {
    if (!caller_connection_) {
        ControlConnection self;
        self.uid = static_cast<uint32_t>(::geteuid());
        self.pid = pid_;
        self.may_bind_privileged = may_bind_privileged(pid_, self.uid);
        caller_connection_ = self;
    }
    return *caller_connection_;
}

HostSocket* Host::socket_for_fd(int passed_fd) {
    if (passed_fd < 0) {
        return nullptr;
    }
    struct stat st {};
    if (::fstat(passed_fd, &st) < 0) {
        return nullptr;
    }
    auto it = by_app_inode_.find(st.st_ino);
    if (it == by_app_inode_.end()) {
        return nullptr;
    }
    auto s = sockets_.find(it->second);
    return s == sockets_.end() || s->second->finished() ? nullptr : s->second.get();
}

namespace {
// Whether this thread holds a host's spares_mutex_: a fork() from a signal
// handler that interrupted it must not wait for that mutex (before_fork).
thread_local bool holding_spares = false;

class SparesGuard {
public:
    explicit SparesGuard(std::mutex& m) : m_(m) {
        holding_spares = true;
        m_.lock();
    }
    ~SparesGuard() {
        m_.unlock();
        holding_spares = false;
    }
    SparesGuard(const SparesGuard&) = delete;
    SparesGuard& operator=(const SparesGuard&) = delete;

private:
    std::mutex& m_;
};
}  // namespace

int Host::open_pair(int domain, int type, PairEnds& pair) {
    if (take_spare_pair(domain, type, pair)) {
        return 0;
    }
    return make_pair(domain, type, pair);
}

void Host::forget_pair_registration(const PairEnds& pair) {
    if (pair.in_epoll) {
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, pair.host_end, nullptr);
    }
}

int Host::make_pair(int domain, int type, PairEnds& out) {
    // UDP: SEQPACKET (datagram boundaries, and EPOLLHUP at the last close);
    // TCP: a byte stream, as the app expects.
    const int pair_type = type == SOCK_STREAM ? SOCK_STREAM : SOCK_SEQPACKET;
    int pair[2];
    if (::socketpair(AF_UNIX, pair_type | SOCK_CLOEXEC, 0, pair) < 0) {
        return -(errno == EMFILE || errno == ENFILE ? errno : ENOBUFS);
    }
    const int host_end = pair[0];
    const int app_end = pair[1];
    out = PairEnds{host_end, app_end, 0, false};
    int on = 1;
    ::ioctl(host_end, FIONBIO, &on);  // O_NONBLOCK in one call (socketpair's flag would set the app end's too)
    // The name that lets an exec'd program recognise the app end (getpeername).
    sockaddr_un name;
    const socklen_t name_len = make_abstract_address(
        host_end_name(domain, type, static_cast<long>(pid_), next_serial_.fetch_add(1), config_.device), name);
    if (::bind(host_end, reinterpret_cast<sockaddr*>(&name), name_len) < 0) {
        log(LogLevel::Warn, std::string("naming a socketpair: ") + std::strerror(errno));
    }
    struct stat st {};
    ::fstat(app_end, &st);
    out.app_inode = st.st_ino;
    return 0;
}

bool Host::take_spare_pair(int domain, int type, PairEnds& pair) {
    if (spares_fd_ < 0 || domain != AF_INET || type != SOCK_STREAM) {
        return false;
    }
    bool ask = false;
    {
        SparesGuard guard(spares_mutex_);
        if (spares_backoff_ > 0) {
            --spares_backoff_;
        } else if (spare_pairs_.size() <= spare_pairs_low && !spares_refill_asked_) {
            spares_refill_asked_ = true;
            ask = true;
        }
        if (!spare_pairs_.empty()) {
            pair = spare_pairs_.back();
            spare_pairs_.pop_back();
            ++spare_pairs_taken_;
        } else {
            pair = PairEnds{};
        }
    }
    if (ask) {
        const uint64_t one = 1;
        (void)!::write(spares_fd_, &one, sizeof one);
    }
    return pair.host_end >= 0;
}

std::optional<Host::PairEnds> Host::take_spare_for_socket() {
    PairEnds pair;
    if (!take_spare_pair(AF_INET, SOCK_STREAM, pair)) {
        return std::nullopt;
    }
    return pair;
}

void Host::release_spare_host_end(const PairEnds& pair) {
    forget_pair_registration(pair);
    retire_fd(pair.host_end);
}

void Host::read_fd_limit() {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        fd_limit_.store(limit.rlim_cur == RLIM_INFINITY ? UINT64_MAX : static_cast<uint64_t>(limit.rlim_cur));
    }
}

bool Host::release_reserved_fds() {
    // No allocation under spares_mutex_ (an allocator's own fork handlers
    // may take its locks before before_fork() takes this one).
    std::array<int, 2 * spare_pairs_target + retired_fds_max> fds;
    size_t n = 0;
    {
        SparesGuard guard(spares_mutex_);
        for (const SparePair& p : spare_pairs_) {
            forget_pair_registration(p);  // a syscall, no allocation
            fds[n++] = p.host_end;
            fds[n++] = p.app_end;
        }
        spare_pairs_.clear();
        for (const int fd : retired_fds_) {
            fds[n++] = fd;
        }
        retired_fds_.clear();
        spares_backoff_ = spares_backoff_after_shortage;
    }
    for (size_t i = 0; i < n; ++i) {
        ::close(fds[i]);
    }
    return n > 0;
}

void Host::before_fork() {
    if (holding_spares) {
        // fork() from a signal handler that interrupted this thread while
        // it held the lock: the lists may be half changed; leave them.
        fork_skipped_spares_ = true;
        return;
    }
    fork_skipped_spares_ = false;
    refill_mutex_.lock();  // no pair is between being made and being listed
    spares_mutex_.lock();
}

void Host::after_fork(bool in_child) {
    if (fork_skipped_spares_) {
        return;
    }
    if (in_child) {
        // Only close(): the child of a threaded program may call nothing
        // that allocates or locks before it execs. Never EPOLL_CTL_DEL:
        // the inner set is the parent's too, and its copies of the host
        // ends keep their registrations.
        for (const SparePair& p : spare_pairs_) {
            ::close(p.host_end);
            ::close(p.app_end);
        }
        for (const int fd : retired_fds_) {
            ::close(fd);
        }
        spare_pairs_.clear();
        retired_fds_.clear();
    }
    spares_mutex_.unlock();
    refill_mutex_.unlock();
}

void Host::retire_fd(int fd) {
    if (spares_fd_ < 0 || !fd_in_reserve_range(fd)) {
        ::close(fd);
        return;
    }
    bool ask = false;
    {
        SparesGuard guard(spares_mutex_);
        if (retired_fds_.size() < retired_fds_max) {
            retired_fds_.push_back(fd);
            fd = -1;
            if (retired_fds_.size() >= retired_fds_batch && !spares_refill_asked_) {
                spares_refill_asked_ = true;
                ask = true;
            }
        }
    }
    if (fd >= 0) {
        ::close(fd);  // the host thread is behind: no more fds held for it
    }
    if (ask) {
        const uint64_t one = 1;
        (void)!::write(spares_fd_, &one, sizeof one);
    }
}

void Host::refill_spare_pairs() {
    uint64_t count;
    (void)!::read(spares_fd_, &count, sizeof count);
    std::array<int, retired_fds_max> retired;
    size_t n = 0;
    {
        SparesGuard guard(spares_mutex_);
        for (const int fd : retired_fds_) {
            retired[n++] = fd;
        }
        retired_fds_.clear();  // keeps its capacity: no allocation under the lock
    }
    for (size_t i = 0; i < n; ++i) {
        ::close(retired[i]);
    }
    retired_fds_closed_ += n;
    read_fd_limit();  // the program may have raised or lowered it
    for (;;) {
        // Held from making a pair to listing it: a fork() meanwhile would
        // give the child a pair its after_fork() cannot see.
        std::lock_guard<std::mutex> refill(refill_mutex_);
        {
            SparesGuard guard(spares_mutex_);
            if (spare_pairs_.size() >= spare_pairs_target || spares_backoff_ > 0) {
                spares_refill_asked_ = false;
                return;
            }
        }
        SparePair p{};
        // Spares must not be what runs the program out of fds: none in
        // the top quarter of RLIMIT_NOFILE.
        const bool made = make_pair(AF_INET, SOCK_STREAM, p) == 0;
        if (!made || !fd_in_reserve_range(std::max(p.host_end, p.app_end))) {
            if (made) {
                ::close(p.host_end);
                ::close(p.app_end);
            }
            SparesGuard guard(spares_mutex_);
            spares_refill_asked_ = false;
            spares_backoff_ = spares_backoff_after_shortage;  // connects make their own pairs meanwhile
            return;
        }
        // Watched as a fresh socket's host end is (sync_events, EPOLLIN),
        // here rather than on the app thread that takes the pair. The pair
        // is idle until then: no event comes before its socket exists.
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = make_tag(tag_socket, p.host_end);
        p.in_epoll = ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, p.host_end, &ev) == 0;
        SparesGuard guard(spares_mutex_);
        spare_pairs_.push_back(p);  // within the capacity reserved at start
        ++spare_pairs_made_;
    }
}

void Host::register_socket(std::unique_ptr<HostSocket> socket, const PairEnds& pair) {
    const int host_end = socket->host_fd();
    by_app_inode_[pair.app_inode] = host_end;
    app_inode_of_[host_end] = pair.app_inode;
    if (pair.in_epoll) {
        if (silenced_host_ends_.erase(host_end) != 0) {
            // Silenced once (or an older host end of that number was):
            // watched again whatever the set says now.
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.u64 = make_tag(tag_socket, host_end);
            ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, host_end, &ev);
        }
        registered_events_[host_end] = EPOLLIN;  // sync_events changes it from there
    }
    created_socket_ = socket.get();
    if (config_.log >= LogLevel::Debug) {
        log(LogLevel::Debug, "new socket: " + socket->describe());
    }
    add_socket(std::move(socket));
}

Reply Host::create_socket(ControlConnection& connection, const Request& request, int& fd_out) {
    if (request.domain != AF_INET && request.domain != AF_INET6) {
        return error_reply(EAFNOSUPPORT);
    }
    if (request.type == SOCK_STREAM) {
        return create_tcp_socket(connection, request, fd_out);
    }
    if (request.type != SOCK_DGRAM) {
        return error_reply(EPROTONOSUPPORT);
    }
    udp::UdpLayer& udp = stack_->udp();
    const udp::SocketId id = udp.open(udp::SocketOwner{connection.uid, connection.may_bind_privileged});
    auto give_up = [&](int error) {
        udp.close(id);
        return error_reply(error);
    };
    if (auto r = udp.set_reuse(id, request.reuse_addr != 0, request.reuse_port != 0); !r) {
        return give_up(r.error().value);
    }
    if (request.action == SocketAction::Bind) {
        if (auto r = udp.bind(id, endpoint_of(request)); !r) {
            return give_up(r.error().value);
        }
    } else if (request.action == SocketAction::Connect) {
        if (auto r = udp.connect(id, endpoint_of(request)); !r) {
            return give_up(r.error().value);
        }
    } else if (request.action != SocketAction::None) {
        return give_up(EOPNOTSUPP);
    }
    PairEnds pair;
    if (int err = open_pair(request.domain, request.type, pair); err < 0) {
        return give_up(-err);
    }
    auto socket = std::make_unique<UdpHostSocket>(udp, id, pair.host_end, request.domain, connection.uid,
                                                  connection.pid, udp_scratch_);
    if (request.rcvbuf > 0) {
        socket->set_reported_rcvbuf(request.rcvbuf);
    }
    register_socket(std::move(socket), pair);
    fd_out = pair.app_end;
    return Reply{};
}

Reply Host::create_tcp_socket(ControlConnection& connection, const Request& request, int& fd_out) {
    const Instant now = monotonic_now();
    tcp::TcpEngine& engine = tcp_->engine();
    const tcp::SocketId id = engine.open(connection.uid, connection.may_bind_privileged);
    auto give_up = [&](int error) {
        engine.abort(id, now);
        return error_reply(error);
    };
    PairEnds pair;
    const bool adopting = adopting_ != nullptr;  // the program's fd is the app end already
    if (adopting) {
        pair = *adopting_;
    } else if (int err = open_pair(request.domain, request.type, pair); err < 0) {
        return give_up(-err);
    }
    const int app_end = pair.app_end;
    auto socket = std::make_unique<TcpHostSocket>(engine, static_cast<TcpConnectionFactory&>(*this), id, pair.host_end,
                                                  request.domain, connection.uid, connection.pid,
                                                  TcpHostSocket::Role::Unconnected, tcp_scratch_);
    auto drop = [&](int error) {
        if (adopting) {
            (void)socket->release_host_fd();  // the pair stays the program's, for its next try
        } else {
            forget_pair_registration(pair);
            ::close(app_end);
        }
        return error_reply(error);  // the socket's destructor aborts the engine socket (and closes our host end)
    };
    // Options the program set on its kernel socket first, in order.
    if (auto r = socket->set_option(now, SOL_SOCKET, SO_REUSEADDR, request.reuse_addr); !r) {
        return drop(r.error().value);
    }
    if (auto r = socket->set_option(now, SOL_SOCKET, SO_REUSEPORT, request.reuse_port); !r) {
        return drop(r.error().value);
    }
    const uint32_t count = std::min<uint32_t>(request.option_count, max_replayed_options);
    for (uint32_t i = 0; i < count; ++i) {
        const ReplayedOption& o = request.options[i];
        (void)socket->set_option(now, o.level, o.name, o.value);  // as the kernel socket accepted them
    }
    Reply reply;
    switch (request.action) {
    case SocketAction::None:
        break;
    case SocketAction::Bind:
        if (auto r = socket->bind(now, endpoint_of(request)); !r) {
            return drop(r.error().value);
        }
        break;
    case SocketAction::Connect:
        if (auto r = socket->connect_with_app_end(now, endpoint_of(request), app_end, serving_caller_); !r) {
            if (r.error().value != EINPROGRESS) {
                return drop(r.error().value);
            }
            reply.value = EINPROGRESS;
        }
        break;
    case SocketAction::Listen:
        if (auto r = socket->listen(now, static_cast<int>(request.value)); !r) {
            return drop(r.error().value);
        }
        break;
    }
    register_socket(std::move(socket), pair);
    fd_out = adopting ? -1 : app_end;
    return reply;
}

int Host::adopt_connection(tcp::SocketId id, int domain, uint32_t uid, int32_t pid, AcceptTicket ticket) {
    PairEnds pair;
    if (int err = open_pair(domain, SOCK_STREAM, pair); err < 0) {
        return err;
    }
    auto socket = std::make_unique<TcpHostSocket>(tcp_->engine(), static_cast<TcpConnectionFactory&>(*this), id,
                                                  pair.host_end, domain, uid, pid, TcpHostSocket::Role::Connected,
                                                  tcp_scratch_);
    socket->await_accept(std::move(ticket));
    register_socket(std::move(socket), pair);
    return pair.app_end;
}

Reply Host::tcp_call(TcpHostSocket& socket, const Request& request, int passed_fd, std::string& text) {
    const Instant now = monotonic_now();
    Reply reply;
    switch (request.op) {
    case Op::Connect: {
        if (request.family_unspec != 0) {
            if (auto r = socket.connect(now, std::nullopt); !r) {
                return error_reply(r.error().value);
            }
            return reply;
        }
        if (auto r = socket.connect_with_app_end(now, endpoint_of(request), passed_fd, serving_caller_); !r) {
            if (r.error().value != EINPROGRESS) {
                return error_reply(r.error().value);
            }
            reply.value = EINPROGRESS;
        }
        return reply;
    }
    case Op::TcpInfo: {
        auto info = socket.info();
        if (!info) {
            return error_reply(info.error().value);
        }
        text = tcp_info_bytes(*info);
        return reply;
    }
    default:
        return error_reply(EOPNOTSUPP);
    }
}

Reply Host::dispatch(ControlConnection& connection, const Request& request, int passed_fd, std::string& text,
                     int& fd_out) {
    const Instant now = monotonic_now();
    switch (request.op) {
    case Op::Hello: {
        Reply reply;
        reply.flags = capability_udp | capability_tcp;
        reply.addr = htonl(config_.address->address.to_u32());
        reply.prefix_len = config_.address->prefix_len;
        if (config_.gateway) {
            reply.has_gateway = 1;
            reply.gateway = htonl(config_.gateway->to_u32());
        }
        reply.value = ::getpid();
        text = config_.device;
        return reply;
    }
    case Op::Socket:
        return create_socket(connection, request, fd_out);
    case Op::Sysctl:
        return sysctl(request.text, text);
    case Op::Stats:
        text = stats_text();
        return Reply{};
    case Op::Status:
        text = status_text();
        return Reply{};
    case Op::Sockets:
        text = sockets_text();
        return Reply{};
    case Op::KillTimeWait: {
        Reply reply;
        const Endpoint match = endpoint_of(request);
        reply.value = static_cast<int64_t>(tcp_->engine().kill_time_wait(now, tcp::Endpoint{match.addr, match.port}));
        text = std::to_string(reply.value) + " TIME_WAIT entries removed\n";
        log(LogLevel::Info, text.substr(0, text.size() - 1));
        return reply;
    }
    case Op::Down:
        log(LogLevel::Info, "down requested by pid " + std::to_string(connection.pid));
        stop();
        return Reply{};
    default:
        break;
    }
    HostSocket* socket = socket_for_fd(passed_fd);
    if (socket == nullptr) {
        return error_reply(passed_fd < 0 ? EBADF : ENOTSOCK);
    }
    mark_changed(socket->host_fd());  // the call may change what it shows the app
    socket->drain_app(now);
    if (socket->type() == SOCK_STREAM && (request.op == Op::Connect || request.op == Op::TcpInfo)) {
        return tcp_call(static_cast<TcpHostSocket&>(*socket), request, passed_fd, text);
    }
    Reply reply;
    switch (request.op) {
    case Op::Bind:
        if (auto r = socket->bind(now, endpoint_of(request)); !r) {
            return error_reply(r.error().value);
        }
        return reply;
    case Op::Connect: {
        std::optional<Endpoint> remote;
        if (request.family_unspec == 0) {
            remote = endpoint_of(request);
        }
        if (auto r = socket->connect(now, remote); !r) {
            return error_reply(r.error().value);
        }
        return reply;
    }
    case Op::Listen:
        if (auto r = socket->listen(now, static_cast<int>(request.value)); !r) {
            return error_reply(r.error().value);
        }
        return reply;
    case Op::Shutdown:
        if (auto r = socket->shutdown(now, static_cast<int>(request.value)); !r) {
            return error_reply(r.error().value);
        }
        return reply;
    case Op::GetSockName: {
        auto r = socket->local_endpoint();
        if (!r) {
            return error_reply(r.error().value);
        }
        fill_endpoint(reply, *r);
        return reply;
    }
    case Op::GetPeerName: {
        auto r = socket->remote_endpoint();
        if (!r) {
            return error_reply(r.error().value);
        }
        fill_endpoint(reply, *r);
        return reply;
    }
    case Op::SetSockOpt:
        if (auto r = socket->set_option(now, request.level, request.name, request.value); !r) {
            return error_reply(r.error().value);
        }
        return reply;
    case Op::GetSockOpt: {
        auto r = socket->get_option(request.level, request.name);
        if (!r) {
            return error_reply(r.error().value);
        }
        reply.value = *r;
        return reply;
    }
    default:
        return error_reply(EOPNOTSUPP);
    }
}

Reply Host::sysctl(const std::string& argument, std::string& text) {
    Tunables& tunables = stack_->tunables();
    auto line = [&](const Tunables::Info& info) {
        const std::string name = info.linux_name.empty() ? std::string(info.name) : std::string(info.linux_name);
        return name + " = " + tunables.get(info.name).value_or("?") + "\n";
    };
    if (argument.empty()) {
        for (const Tunables::Info& info : Tunables::all()) {
            text += line(info);
        }
        return Reply{};
    }
    const size_t eq = argument.find('=');
    std::string name = argument.substr(0, eq);
    while (!name.empty() && name.back() == ' ') {
        name.pop_back();
    }
    if (eq != std::string::npos) {
        std::string value = argument.substr(eq + 1);
        while (!value.empty() && value.front() == ' ') {
            value.erase(0, 1);
        }
        if (auto error = tunables.set(name, value)) {
            text = *error;
            return error_reply(EINVAL);
        }
        log(LogLevel::Info, "sysctl " + name + " = " + value);
    }
    for (const Tunables::Info& info : Tunables::all()) {
        std::string_view short_name = name;
        if (short_name.starts_with("net.ipv4.")) {
            short_name.remove_prefix(9);
        }
        if (info.name == short_name) {
            text = line(info);
            return Reply{};
        }
    }
    text = name + ": unknown setting";
    return error_reply(ENOENT);
}

std::string Host::stats_text() const {
    std::ostringstream out;
    stack_->counters().for_each([&](std::string_view name, uint64_t value) { out << name << " " << value << "\n"; });
    tcp_->engine().counters().for_each([&](std::string_view name, std::string_view, uint64_t value) {
        out << "tcp_" << name << " " << value << "\n";
    });
    const tcp::TcpTransportCounters& t = tcp_->counters();
    out << "tcp_malformed " << t.malformed << "\n"
        << "tcp_bad_checksum " << t.bad_checksum << "\n"
        << "tcp_not_unicast " << t.not_unicast << "\n"
        << "tcp_send_errors " << t.send_errors << "\n"
        << "tcp_sockets " << tcp_->engine().socket_count() << "\n"
        << "tcp_time_wait " << tcp_->engine().time_wait_count() << "\n";
    const netdev::DeviceStats& d = device_->stats();
    out << "device_rx_frames " << d.rx_frames << "\n"
        << "device_tx_frames " << d.tx_frames << "\n"
        << "device_tx_dropped " << d.tx_dropped << "\n"
        << "device_tx_gso_frames " << d.tx_gso_frames << "\n"
        << "device_rx_gso_frames " << d.rx_gso_frames << "\n"
        << "device_rx_checksums_completed " << d.rx_checksums_completed << "\n"
        << "device_rx_checksums_trusted " << d.rx_checksums_trusted << "\n"
        << "host_sockets " << sockets_.size() << "\n"
        << "host_control_connections " << connections_.size() << "\n"
        << "host_rpc_calls " << rpc_calls_ << "\n"
        << "host_walks " << walk_counters_.walks << "\n"
        << "host_socket_visits " << walk_counters_.socket_visits << "\n"
        << "host_thread_passes " << caller_counters_.host_thread_passes << "\n"
        << "host_thread_wakeups_yielded " << caller_counters_.host_thread_yielded << "\n"
        << "caller_waits " << caller_counters_.waits << "\n"
        << "caller_wait_passes " << caller_counters_.wait_passes << "\n"
        << "caller_direct_reads " << caller_counters_.direct_reads << "\n"
        << "caller_sends " << caller_counters_.sends << "\n"
        << "caller_sends_declined " << caller_counters_.sends_declined << "\n"
        << "caller_waits_superseded " << caller_counters_.superseded << "\n"
        << "caller_turns_host_kept_out " << caller_counters_.turns_host_kept_out << "\n"
        << "host_thread_lookout_returns " << caller_counters_.lookout_returns << "\n"
        << "spare_pairs_made " << spare_pairs_made_.load() << "\n"
        << "spare_pairs_taken " << spare_pairs_taken_.load() << "\n"
        << "retired_fds_closed " << retired_fds_closed_.load() << "\n";
    return out.str();
}

std::string Host::status_text() const {
    std::ostringstream out;
    size_t udp = 0;
    size_t tcp = 0;
    for (const auto& [fd, socket] : sockets_) {
        udp += socket->type() == SOCK_DGRAM ? 1 : 0;
        tcp += socket->type() == SOCK_STREAM ? 1 : 0;
    }
    out << "device " << config_.device << "\n"
        << "address " << config_.address->to_string() << "\n"
        << "gateway " << (config_.gateway ? config_.gateway->to_string() : std::string("-")) << "\n"
        << "mode " << (options_.inproc ? "inproc" : "daemon") << (options_.persistent ? " (persistent)" : "") << "\n"
        << "pid " << ::getpid() << "\n"
        << "uptime_ms " << (monotonic_now() - started_at_).millis() << "\n"
        << "sockets " << sockets_.size() << " (udp " << udp << ", tcp " << tcp << ")\n"
        << "tcp_engine_sockets " << tcp_->engine().socket_count() << " (orphans included)\n"
        << "time_wait " << tcp_->engine().time_wait_count() << "\n"
        << "control_connections " << connections_.size() << "\n";
    return out.str();
}

std::string Host::sockets_text() const {
    // One line per socket: "proto state recv-q local peer details". App
    // sockets first (their owner), then what the engine keeps without an
    // app: orphans still closing, connections not yet accepted, TIME_WAIT.
    std::string out = "Proto State Recv-Q Local Peer Details\n";
    std::unordered_map<uint32_t, const TcpHostSocket*> app_tcp;
    for (const auto& [fd, socket] : sockets_) {
        out += socket->describe() + "\n";
        if (socket->type() == SOCK_STREAM) {
            const auto* t = static_cast<const TcpHostSocket*>(socket.get());
            if (!t->finished()) {
                app_tcp[t->id()] = t;
            }
        }
    }
    const tcp::TcpEngine& engine = tcp_->engine();
    engine.for_each_socket([&](const tcp::SocketSummary& s) {
        if (app_tcp.count(s.id) != 0) {
            return;
        }
        out += "tcp   " + std::string(tcp::to_string(s.state)) + " 0 " + tcp_endpoint_text(s.local) + " " +
               tcp_endpoint_text(s.remote) + " uid=" + std::to_string(s.uid) +
               (s.orphan ? " orphan" : " not-accepted") + "\n";
    });
    engine.for_each_time_wait(monotonic_now(), [&](const tcp::TimeWaitSummary& t) {
        out += std::string("tcp   ") + (t.fin_wait2 ? "FIN-WAIT-2" : "TIME-WAIT") + " 0 " +
               tcp_endpoint_text(t.local) + " " + tcp_endpoint_text(t.remote) +
               " remaining_ms=" + std::to_string(t.remaining.millis()) + "\n";
    });
    return out;
}

}  // namespace ustack::host
