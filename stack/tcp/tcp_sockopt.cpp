// Socket options (do_tcp_setsockopt, sk_setsockopt), readiness (tcp_poll),
// SO_ERROR, endpoints and a tcp_info-like snapshot.
#include <algorithm>
#include <cerrno>

#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {

namespace {

// SOCK_MIN_RCVBUF / SOCK_MIN_SNDBUF (Linux, 64-bit).
constexpr size_t min_rcvbuf = 2304;
constexpr size_t min_sndbuf = 4608;
// MAX_TCP_KEEPIDLE / MAX_TCP_KEEPINTVL / MAX_TCP_KEEPCNT.
constexpr int max_keepidle = 32767;
constexpr int max_keepintvl = 32767;
constexpr int max_keepcnt = 127;

}  // namespace

Result<void> TcpEngine::set_option(SocketId id, Instant now, SockOpt option, int value) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    touch(*c);
    Result<void> result;
    switch (option) {
    case SockOpt::NoDelay:
        c->nodelay = value != 0;
        if (c->nodelay) {
            transmit(*c, now);  // tcp_push_pending_frames()
        }
        break;
    case SockOpt::Cork:
        c->cork = value != 0;
        if (!c->cork) {
            transmit(*c, now);
        }
        break;
    case SockOpt::QuickAck:
        if (value == 0) {
            c->pingpong = true;
        } else {
            c->pingpong = false;
            c->quick = std::max(c->quick, config_.max_quickacks);
            if (c->ack_pending && (c->state == TcpState::Established || c->state == TcpState::CloseWait)) {
                send_ack(*c, now);
            }
        }
        break;
    case SockOpt::RcvBuf: {
        // sk_setsockopt(SO_RCVBUF): doubled ("to allow room for
        // bookkeeping overhead"), bounded by rmem_max; we keep half for
        // payload, as tcp_adv_win_scale = 1 did.
        const size_t asked = std::min(static_cast<size_t>(std::max(value, 0)), config_.max_rcvbuf);
        c->rcvbuf = std::max(asked * 2, min_rcvbuf);
        c->rcvbuf_locked = true;
        if (c->recv_buffer.capacity() > 0) {
            c->recv_buffer.set_capacity(c->rcvbuf / 2);
        }
        break;
    }
    case SockOpt::SndBuf: {
        const size_t asked = std::min(static_cast<size_t>(std::max(value, 0)), config_.max_sndbuf);
        c->sndbuf = std::max(asked * 2, min_sndbuf);
        c->sndbuf_locked = true;
        if (c->send_buffer.capacity() > 0) {
            c->send_buffer.set_capacity(c->sndbuf / 2);
        }
        break;
    }
    case SockOpt::KeepAlive:
        c->keepalive = value != 0;
        if (c->keepalive && c->state != TcpState::Closed && c->state != TcpState::Listen) {
            reset_keepalive(*c, now);
        } else if (!c->keepalive) {
            c->keepalive_at.reset();
        }
        break;
    case SockOpt::KeepIdle:
        if (value < 1 || value > max_keepidle) {
            result = fail(EINVAL);
            break;
        }
        c->keepalive_idle = Duration::from_secs(value);
        // tcp_sock_set_keepidle_locked(): re-arm counting the idle time
        // already passed.
        if (c->keepalive && c->state != TcpState::Closed && c->state != TcpState::Listen) {
            const Duration elapsed = now - c->last_received;
            c->keepalive_at = now + (c->keepalive_idle > elapsed ? c->keepalive_idle - elapsed : Duration::zero());
        }
        break;
    case SockOpt::KeepIntvl:
        if (value < 1 || value > max_keepintvl) {
            result = fail(EINVAL);
            break;
        }
        c->keepalive_interval = Duration::from_secs(value);
        break;
    case SockOpt::KeepCnt:
        if (value < 1 || value > max_keepcnt) {
            result = fail(EINVAL);
            break;
        }
        c->keepalive_probes = static_cast<unsigned>(value);
        break;
    case SockOpt::UserTimeout:
        if (value < 0) {
            result = fail(EINVAL);
            break;
        }
        c->user_timeout = Duration::from_millis(value);
        break;
    case SockOpt::MaxSeg:
        // TCP_MAXSEG: TCP_MIN_MSS..MAX_TCP_WINDOW, 0 = none.
        if (value != 0 && (value < 88 || value > 32767)) {
            result = fail(EINVAL);
            break;
        }
        c->user_mss = static_cast<uint16_t>(value);
        break;
    case SockOpt::ReuseAddr:
        c->reuse_addr = value != 0;
        if (c->lease) {
            ports_.set_flags(*c->lease, c->reuse_addr, c->reuse_port);
        }
        break;
    case SockOpt::ReusePort:
        c->reuse_port = value != 0;
        if (c->lease) {
            ports_.set_flags(*c->lease, c->reuse_addr, c->reuse_port);
        }
        break;
    case SockOpt::BindAddressNoPort:
        c->bind_address_no_port = value != 0;
        break;
    }
    finish();
    return result;
}

Result<int> TcpEngine::get_option(SocketId id, SockOpt option) const {
    const Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    switch (option) {
    case SockOpt::NoDelay: return c->nodelay ? 1 : 0;
    case SockOpt::Cork: return c->cork ? 1 : 0;
    case SockOpt::QuickAck: return (c->quick > 0 && !c->pingpong) ? 1 : 0;
    case SockOpt::RcvBuf: return static_cast<int>(c->rcvbuf);
    case SockOpt::SndBuf: return static_cast<int>(c->sndbuf);
    case SockOpt::KeepAlive: return c->keepalive ? 1 : 0;
    case SockOpt::KeepIdle: return static_cast<int>(c->keepalive_idle.secs());
    case SockOpt::KeepIntvl: return static_cast<int>(c->keepalive_interval.secs());
    case SockOpt::KeepCnt: return static_cast<int>(c->keepalive_probes);
    case SockOpt::UserTimeout: return static_cast<int>(c->user_timeout.millis());
    case SockOpt::MaxSeg:
        if (c->user_mss != 0 && (c->state == TcpState::Closed || c->state == TcpState::Listen)) {
            return static_cast<int>(c->user_mss);
        }
        return static_cast<int>(c->mss_cache);
    case SockOpt::ReuseAddr: return c->reuse_addr ? 1 : 0;
    case SockOpt::ReusePort: return c->reuse_port ? 1 : 0;
    case SockOpt::BindAddressNoPort: return c->bind_address_no_port ? 1 : 0;
    }
    return fail(ENOPROTOOPT);
}

Result<void> TcpEngine::set_linger(SocketId id, Linger linger) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    c->linger = Linger{linger.on, std::max(linger.seconds, 0)};
    return {};
}

Result<Linger> TcpEngine::get_linger(SocketId id) const {
    const Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    return c->linger;
}

Readiness TcpEngine::readiness(SocketId id) const {
    Readiness r;
    const Conn* c = find_app(id);
    if (c == nullptr) {
        return r;
    }
    // tcp_poll().
    if (c->state == TcpState::Listen) {
        r.readable = !c->accept_queue.empty();  // inet_csk_listen_poll()
        return r;
    }
    const bool both_shut = c->rcv_shutdown && c->snd_shutdown;
    if (both_shut || c->state == TcpState::Closed) {
        r.hup = true;
    }
    if (c->rcv_shutdown) {
        r.readable = true;
        r.rdhup = true;
    }
    if (c->state != TcpState::SynSent && c->state != TcpState::SynReceived) {
        if (!c->recv_buffer.empty()) {
            r.readable = true;
        }
        if (!c->snd_shutdown) {
            // __sk_stream_is_writeable(): free space at least half of what
            // is queued.
            const size_t queued = c->send_buffer.size();
            const size_t capacity = c->send_buffer.capacity() > 0 ? c->send_buffer.capacity() : c->sndbuf / 2;
            const size_t free_space = capacity > queued ? capacity - queued : 0;
            r.writable = free_space > 0 && free_space >= queued / 2;
        } else {
            r.writable = true;
        }
    }
    r.error = c->error != 0;
    return r;
}

int TcpEngine::take_error(SocketId id) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return EBADF;
    }
    // SO_ERROR: sock_error(), else the soft error (xchg(&sk_err_soft, 0)).
    int error = c->error;
    c->error = 0;
    if (error == 0) {
        error = c->soft_error;
        c->soft_error = 0;
    }
    return error;
}

std::optional<TcpState> TcpEngine::state(SocketId id) const {
    const Conn* c = find_app(id);
    if (c == nullptr) {
        return std::nullopt;
    }
    return c->state;
}

Result<Endpoint> TcpEngine::local_endpoint(SocketId id) const {
    const Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    return c->local;
}

Result<Endpoint> TcpEngine::remote_endpoint(SocketId id) const {
    const Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    // inet_getname(peer): ENOTCONN unless connected (or closed after a FIN
    // handshake, TCPF_CLOSE with peer known and SYN_SENT excluded).
    if (c->remote.port == 0 || c->state == TcpState::Listen || c->state == TcpState::SynSent ||
        (c->state == TcpState::Closed && c->phase != ConnectPhase::Connected)) {
        return fail(ENOTCONN);
    }
    return c->remote;
}

Result<TcpInfo> TcpEngine::info(SocketId id) const {
    const Conn* c = find(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    TcpInfo i;
    i.state = c->state;
    i.local = c->local;
    i.remote = c->remote;
    i.iss = c->iss;
    i.irs = c->irs;
    i.snd_una = c->snd_una;
    i.snd_nxt = c->snd_nxt;
    i.rcv_nxt = c->rcv_nxt;
    i.snd_wnd = c->snd_wnd;
    i.rcv_wnd = receive_window(*c);
    i.snd_mss = c->mss_cache;
    i.adv_mss = c->adv_mss;
    i.snd_wscale = c->snd_wscale;
    i.rcv_wscale = c->rcv_wscale;
    i.timestamps = c->ts_ok;
    i.ts_recent = c->ts_ok ? c->ts_recent.value_or(0) : 0;
    i.sack = c->sack_ok;
    i.window_scaling = c->wscale_ok;
    i.cwnd = c->cwnd();
    i.ssthresh = c->cc ? c->cc->ssthresh() : 0;
    i.bytes_in_flight = c->pipe();
    i.rto = c->rtt.rto();
    i.srtt = c->rtt.srtt();
    i.retransmits = c->retransmits;
    i.backoff = c->rtt.backoff_count();
    i.probes_out = c->probes_out;
    i.in_recovery = c->ca_state == CaState::Recovery;
    i.send_queued = c->send_buffer.size();
    i.recv_queued = c->recv_buffer.size();
    i.ooo_ranges = c->ooo.range_count();
    return i;
}

}  // namespace ustack::tcp
