// Opening connections: bind, listen, connect, accept; SEGMENT ARRIVES in
// the LISTEN (RFC 9293 §3.10.7.2, Linux tcp_conn_request) and SYN-SENT
// (§3.10.7.3, tcp_rcv_synsent_state_process) states; option negotiation.
#include <algorithm>
#include <cerrno>

#include "stack/tcp/tcp_engine.h"
#include "stack/ports/bind_checks.h"

namespace ustack::tcp {

namespace flags = wire::tcp_flags;
using wire::SeqNumber;

namespace {

// TCP_TIMEOUT_INIT: the first SYN/SYN-ACK retransmission timeout.
constexpr Duration syn_timeout = Duration::from_secs(1);
// TCP_MSS_DEFAULT (RFC 9293 §3.7.1) and TCP_MIN_MSS.
constexpr uint32_t default_mss = 536;
constexpr uint32_t min_mss = 88;
// RFC 7323 §2.3: shifts above 14 are treated as 14.
constexpr uint8_t max_wscale = 14;

ports::OwnerFlags owner_of(const Connection& c) {
    return ports::OwnerFlags{c.reuse_addr, c.reuse_port, c.uid, 0};
}

}  // namespace

SocketId TcpEngine::open(uint32_t uid, bool may_bind_privileged) {
    Conn& c = allocate(uid);
    c.may_bind_privileged = may_bind_privileged;
    return c.id;
}

Result<void> TcpEngine::bind(SocketId id, Endpoint local) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    // __inet_bind order: the address, the privileged port, then "already
    // bound", then the port manager's conflicts.
    if (!local.addr.is_unspecified() && !is_local(local.addr)) {
        return fail(EADDRNOTAVAIL);
    }
    if (local.port != 0 && local.port < ports::unprivileged_port_start && !c->may_bind_privileged) {
        return fail(EACCES);
    }
    // inet_num, not the address: after a bind without a port
    // (IP_BIND_ADDRESS_NO_PORT) the socket may bind again, as on Linux.
    if (c->state != TcpState::Closed || c->lease) {
        return fail(EINVAL);
    }
    if (local.port == 0 && c->bind_address_no_port) {
        // __inet_bind(): "if (snum || !inet->bind_address_no_port)
        // get_port()": only the source address is fixed now.
        c->local = Endpoint{local.addr, 0};
        return {};
    }
    auto lease = ports_.bind(ports::Protocol::Tcp, local.addr, local.port, owner_of(*c));
    if (!lease) {
        return fail(lease.error().value);
    }
    c->lease = *lease;
    c->local = Endpoint{local.addr, lease->port};
    c->port_locked = local.port != 0;
    return {};
}

Result<void> TcpEngine::listen(SocketId id, int backlog) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    // inet_listen: only an unconnected socket in CLOSE or LISTEN.
    if (c->phase != ConnectPhase::Unconnected ||
        (c->state != TcpState::Closed && c->state != TcpState::Listen)) {
        return fail(EINVAL);
    }
    // "(unsigned int)backlog > somaxconn": negative values become somaxconn.
    const unsigned clamped = backlog < 0 ? config_.max_backlog
                                         : std::min(static_cast<unsigned>(backlog), config_.max_backlog);
    if (c->state == TcpState::Listen) {
        c->backlog = clamped;
        return {};
    }
    if (!c->lease) {
        // listen() on a socket without a port binds an ephemeral one (on
        // the address bound with IP_BIND_ADDRESS_NO_PORT, if any).
        auto lease = ports_.bind(ports::Protocol::Tcp, c->local.addr, 0, owner_of(*c));
        if (!lease) {
            return fail(lease.error().value);
        }
        c->lease = *lease;
        c->local = Endpoint{c->local.addr, lease->port};
    }
    if (auto r = ports_.listen(*c->lease); !r) {
        return fail(r.error().value);
    }
    c->backlog = clamped;
    set_state(*c, TcpState::Listen);
    hash(*c);
    return {};
}

bool TcpEngine::tuple_free(const ConnKey& key, Instant now, bool explicitly_bound,
                           std::optional<TimeWaitTable::Reuse>& reuse) {
    if (connections_.contains(key)) {
        return false;
    }
    const FourTuple tuple{wire::Ipv4Address(key.local_addr), wire::Ipv4Address(key.remote_addr), key.local_port,
                          key.remote_port};
    if (!time_wait_.find(tuple)) {
        return true;
    }
    // tcp_twsk_unique(): a TIME_WAIT 4-tuple may be reused when the old
    // connection had timestamps (PAWS then tells the incarnations apart)
    // and tcp_tw_reuse allows it and tcp_tw_reuse_delay passed since its
    // last timestamp; an explicitly bound socket reuses it whatever
    // tcp_tw_reuse says. The table counts TWRecycled.
    reuse = time_wait_.take_for_reuse(tuple, now, explicitly_bound);
    return reuse.has_value();
}

Result<void> TcpEngine::connect(SocketId id, Instant now, Endpoint remote) {
    Result<void> result = connect_socket(id, now, remote);
    finish();
    return result;
}

Result<void> TcpEngine::connect_socket(SocketId id, Instant now, Endpoint remote) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    touch(*c);
    // inet_stream_connect's switch on sock->state.
    switch (c->phase) {
    case ConnectPhase::Connected:
        return fail(EISCONN);
    case ConnectPhase::Connecting:
        if (c->state == TcpState::SynSent || c->state == TcpState::SynReceived) {
            return fail(EALREADY);
        }
        if (c->state == TcpState::Closed) {
            // "Connection was closed by RST, timeout, ICMP error":
            // sock_error() ?: -ECONNABORTED, and the socket is unconnected
            // again.
            const int error = c->error != 0 ? c->error : ECONNABORTED;
            c->error = 0;
            c->phase = ConnectPhase::Unconnected;
            reset_for_reconnect(*c);
            return fail(error);
        }
        c->phase = ConnectPhase::Connected;
        return {};
    case ConnectPhase::Unconnected:
        break;
    }
    if (c->state != TcpState::Closed) {
        return fail(EISCONN);
    }
    if (remote.port == 0 || remote.addr.is_unspecified()) {
        return fail(EADDRNOTAVAIL);
    }
    reset_for_reconnect(*c);

    // The source address: the bound one, else ours (one interface).
    wire::Ipv4Address source = c->local.addr;
    if (source.is_unspecified()) {
        if (config_.local_addresses.empty()) {
            return fail(ENETUNREACH);
        }
        source = config_.local_addresses.front();
    }
    std::optional<TimeWaitTable::Reuse> reuse;  // set when a TIME_WAIT entry was taken over
    if (c->lease) {
        // Already bound: the 4-tuple must be unique (__inet_check_established).
        const ConnKey key = ConnKey::of(Endpoint{source, c->lease->port}, remote);
        if (!tuple_free(key, now, true, reuse)) {
            return fail(EADDRNOTAVAIL);
        }
        if (c->lease->address.is_unspecified()) {
            ports_.set_address(*c->lease, source);
        }
        ports_.set_state(*c->lease, ports::OwnerState::Connected);
        c->local = Endpoint{source, c->lease->port};
    } else {
        auto lease = ports_.connect(source, remote.addr, remote.port, owner_of(*c), [&](uint16_t port) {
            return tuple_free(ConnKey::of(Endpoint{source, port}, remote), now, false, reuse);
        });
        if (!lease) {
            return fail(lease.error().value);
        }
        c->lease = *lease;
        c->local = Endpoint{source, lease->port};
        c->port_locked = false;
    }
    c->remote = remote;
    // tcp_v4_connect(): after a TIME_WAIT takeover the new incarnation
    // starts above the old one's sequence space (tw_snd_nxt + 65535 + 2);
    // its TS.Recent comes from the SYN-ACK, as for any connection.
    c->iss = reuse ? reuse->write_seq : secrets_.isn(now, c->local, c->remote);
    init_connection(*c, now);
    set_state(*c, TcpState::SynSent);
    hash(*c);
    ++counters_.active_opens;
    c->retransmits = 0;
    c->retrans_stamp = now;
    send_syn(*c, now);
    c->retransmit_at = now + syn_timeout;
    c->phase = ConnectPhase::Connecting;
    return fail(EINPROGRESS);
}

Result<Accepted> TcpEngine::accept(SocketId id) {
    Conn* l = find_app(id);
    if (l == nullptr) {
        return fail(EBADF);
    }
    if (l->state != TcpState::Listen) {
        return fail(EINVAL);
    }
    if (l->accept_queue.empty()) {
        return fail(EAGAIN);
    }
    const SocketId child_id = l->accept_queue.front();
    l->accept_queue.pop_front();
    Conn* child = find(child_id);
    child->listener.reset();
    child->in_accept_queue = false;
    child->phase = ConnectPhase::Connected;
    return Accepted{child_id, child->remote};
}

// ------------------------------------------------------------ setup

void TcpEngine::init_connection(Conn& c, Instant now) {
    c.send_buffer = RingBuffer(c.sndbuf / 2);
    c.recv_buffer = RingBuffer(c.rcvbuf / 2);
    c.ooo.clear();
    c.adv_mss = c.pmtu - 40;
    if (c.user_mss != 0) {
        c.adv_mss = std::min<uint32_t>(c.adv_mss, c.user_mss);
    }
    // tcp_select_initial_window(): the shift that lets the largest buffer
    // this socket may grow to fit in 16 bits; a locked SO_RCVBUF bounds it.
    c.rcv_wscale = 0;
    if (config_.window_scaling) {
        size_t space = c.rcvbuf_locked ? c.rcvbuf / 2 : std::max(config_.window_scale_space, c.rcvbuf / 2);
        while (space > 65535 && c.rcv_wscale < max_wscale) {
            space >>= 1;
            ++c.rcv_wscale;
        }
    }
    c.ts_offset = secrets_.ts_offset(c.local.addr, c.remote.addr);
    c.snd_una = c.iss;
    c.snd_nxt = c.iss;
    c.send_buffer_seq = c.iss + 1;
    c.snd_sml = c.iss + 1;
    c.highest_sack = c.iss + 1;
    c.recover = c.iss;
    c.fin_queued = false;
    c.fin_sent = false;
    c.sent.clear();
    c.sacked_out = c.lost_out = c.retrans_out = 0;
    c.sacked_segments = 0;
    c.ca_state = CaState::Open;
    c.dupacks = 0;
    // tcp_initialize_rcv_mss().
    c.rcv_mss = std::max(min_mss, std::min({c.adv_mss, default_mss}));
    // Congestion control exists from here on (started for real at
    // establishment), so no path sees a connection without one.
    c.cc = make_congestion_control(config_.congestion);
    c.cc->init(default_mss, now);
}

void TcpEngine::negotiate_syn_options(Conn& c, Instant now, const wire::TcpRepr& syn) {
    const wire::TcpOptions& o = syn.options;
    c.peer_mss = o.mss ? std::max<uint32_t>(*o.mss, min_mss) : default_mss;
    c.wscale_ok = config_.window_scaling && o.window_scale.has_value();
    if (c.wscale_ok) {
        c.snd_wscale = std::min(*o.window_scale, max_wscale);
    } else {
        c.snd_wscale = 0;
        c.rcv_wscale = 0;
    }
    c.sack_ok = config_.sack && o.sack_permitted;
    c.ts_ok = timestamps_enabled() && o.timestamp.has_value();
    if (c.ts_ok) {
        c.ts_recent = o.timestamp->value;
        c.ts_recent_stamp = now;
    }
    // RFC 7323 §2.2: the window of a SYN is never scaled.
    c.snd_wnd = syn.window;
    c.max_snd_wnd = c.snd_wnd;
    c.snd_wl1 = syn.seq;
    update_mss(c);
}

void TcpEngine::on_established(Conn& c, Instant now) {
    // tcp_init_transfer(): congestion control starts from the initial
    // window (RFC 6928), keepalive if asked for.
    c.cc = make_congestion_control(config_.congestion);
    c.cc->init(c.mss_cache, now);
    c.last_received = now;
    c.retransmits = 0;
    c.retrans_stamp.reset();
    c.retransmit_at.reset();
    c.synack_retransmits = 0;
    if (c.keepalive) {
        reset_keepalive(c, now);
    }
}

void TcpEngine::send_syn(Conn& c, Instant now) {
    wire::TcpRepr syn = make_segment(c, now, flags::SYN, c.iss);
    syn.options.mss = static_cast<uint16_t>(std::min<uint32_t>(c.adv_mss, 65535));
    if (config_.window_scaling) {
        syn.options.window_scale = c.rcv_wscale;
    }
    syn.options.sack_permitted = config_.sack;
    if (timestamps_enabled()) {
        const uint32_t tsval = ts_clock(now) + c.ts_offset;
        syn.options.timestamp = wire::TcpTimestamp{tsval, 0};
        if (c.retransmits == 0) {
            c.syn_tsval = tsval;
        }
    }
    emit(c, now, syn, {});
    c.snd_nxt = c.iss + 1;
}

void TcpEngine::send_syn_ack(Conn& c, Instant now) {
    wire::TcpRepr syn_ack = make_segment(c, now, flags::SYN | flags::ACK, c.iss);
    syn_ack.options.mss = static_cast<uint16_t>(std::min<uint32_t>(c.adv_mss, 65535));
    if (c.wscale_ok) {
        syn_ack.options.window_scale = c.rcv_wscale;
    }
    syn_ack.options.sack_permitted = c.sack_ok;
    emit(c, now, syn_ack, {});
    c.snd_nxt = c.iss + 1;
}

// ------------------------------------------------------------ LISTEN

void TcpEngine::listen_input(Conn& listener, Instant now, wire::Ipv4Address src, wire::Ipv4Address dst,
                             const wire::TcpRepr& segment, size_t payload_len, std::optional<SeqNumber> isn_override) {
    // RFC 9293 §3.10.7.2. "First, check for a RST: An incoming RST segment
    // could not be valid since it could not have been sent in response to
    // anything sent by this incarnation of the connection. An incoming RST
    // should be ignored. Return."
    if (segment.has(flags::RST)) {
        return;
    }
    // "Second, check for an ACK: Any acknowledgment is bad if it arrives on
    // a connection still in the LISTEN state. An acceptable reset segment
    // should be formed for any arriving ACK-bearing segment."
    if (segment.has(flags::ACK)) {
        send_reset_for(now, src, dst, segment, payload_len);
        return;
    }
    // "Third, check for a SYN" — anything else: "drop the segment and return".
    if (!segment.has(flags::SYN)) {
        ++counters_.bad_segments;
        return;
    }
    // tcp_conn_request(): a full accept queue drops the SYN silently (the
    // client retries) — sk_acceptq_is_full() is "> backlog", so backlog + 1
    // connections fit.
    if (listener.accept_queue.size() > listener.backlog) {
        ++counters_.listen_overflows;
        ++counters_.listen_drops;
        return;
    }
    // The SYN queue bound (inet_csk_reqsk_queue_is_full). Linux answers a
    // full SYN queue with SYN cookies by default; without cookies we keep
    // a generous bound instead, so ordinary bursts are never dropped.
    if (listener.syn_queue >= std::max<unsigned>(listener.backlog, 1) * 8 + 256) {
        ++counters_.syn_queue_drops;
        ++counters_.listen_drops;
        return;
    }

    Conn& child = allocate(listener.uid);
    // inet_csk_clone_lock(): the child inherits the listener's options.
    child.nodelay = listener.nodelay;
    child.cork = listener.cork;
    child.keepalive = listener.keepalive;
    child.keepalive_idle = listener.keepalive_idle;
    child.keepalive_interval = listener.keepalive_interval;
    child.keepalive_probes = listener.keepalive_probes;
    child.user_timeout = listener.user_timeout;
    child.linger = listener.linger;
    child.reuse_addr = listener.reuse_addr;
    child.reuse_port = listener.reuse_port;
    child.rcvbuf = listener.rcvbuf;
    child.sndbuf = listener.sndbuf;
    child.rcvbuf_locked = listener.rcvbuf_locked;
    child.sndbuf_locked = listener.sndbuf_locked;
    child.user_mss = listener.user_mss;
    child.listener = listener.id;
    child.local = Endpoint{dst, segment.dst_port};
    child.remote = Endpoint{src, segment.src_port};
    child.lease = ports_.accept_child(*listener.lease, dst);
    child.port_locked = true;
    child.irs = segment.seq;
    child.rcv_nxt = segment.seq + 1;
    child.rcv_wup = child.rcv_nxt;
    child.iss = isn_override ? *isn_override : secrets_.isn(now, child.local, child.remote);
    init_connection(child, now);
    negotiate_syn_options(child, now, segment);
    // Data on a SYN is not queued (no TCP Fast Open): the peer sends it
    // again once the handshake completes.
    set_state(child, TcpState::SynReceived);
    hash(child);
    ++listener.syn_queue;
    ++counters_.passive_opens;
    touch(child);
    child.retrans_stamp = now;
    send_syn_ack(child, now);
    child.retransmit_at = now + syn_timeout;
}

bool TcpEngine::child_established(Conn& child, Instant now) {
    Conn* l = child.listener ? find(*child.listener) : nullptr;
    if (l == nullptr || l->state != TcpState::Listen) {
        return false;
    }
    // inet_csk_complete_hashdance() with a full accept queue: the ACK is
    // dropped (tcp_abort_on_overflow = 0); the child stays half-open and
    // the handshake completes on a later ACK or SYN-ACK retransmission.
    if (l->accept_queue.size() > l->backlog) {
        ++counters_.listen_overflows;
        ++counters_.listen_drops;
        return false;
    }
    --l->syn_queue;
    l->accept_queue.push_back(child.id);
    child.in_accept_queue = true;
    set_state(child, TcpState::Established);
    on_established(child, now);
    return true;
}

void TcpEngine::drop_child(Conn& child) {
    if (Conn* l = child.listener ? find(*child.listener) : nullptr) {
        if (child.in_accept_queue) {
            auto& q = l->accept_queue;
            q.erase(std::remove(q.begin(), q.end(), child.id), q.end());
        } else if (l->syn_queue > 0) {
            --l->syn_queue;
        }
    }
    child.listener.reset();
    child.in_accept_queue = false;
    child.orphan = true;
    set_state(child, TcpState::Closed);
    tcp_done(child);
}

// ------------------------------------------------------------ SYN-SENT

void TcpEngine::syn_sent_input(Conn& c, Instant now, const wire::TcpRepr& segment, wire::ByteSpan payload) {
    // RFC 9293 §3.10.7.3. "First, check the ACK bit"
    const bool has_ack = segment.has(flags::ACK);
    if (has_ack) {
        // "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset (unless the
        // RST bit is set, if so drop the segment and return)
        // <SEQ=SEG.ACK><CTL=RST> and discard the segment."
        if (segment.ack <= c.iss || segment.ack > c.snd_nxt) {
            ++counters_.bad_segments;
            send_reset_for(now, c.remote.addr, c.local.addr, segment, payload.size());
            return;
        }
        // Linux: the echoed timestamp must be one we sent on this SYN
        // (LINUX_MIB_PAWSACTIVEREJECTED), else a reset.
        if (timestamps_enabled() && segment.options.timestamp && segment.options.timestamp->echo != 0) {
            const uint32_t echo = segment.options.timestamp->echo;
            const uint32_t now_ts = ts_clock(now) + c.ts_offset;
            if (static_cast<int32_t>(echo - c.syn_tsval) < 0 || static_cast<int32_t>(now_ts - echo) < 0) {
                ++counters_.paws_rejected;
                send_reset_for(now, c.remote.addr, c.local.addr, segment, payload.size());
                return;
            }
        }
        // "If SND.UNA < SEG.ACK =< SND.NXT, then the ACK is acceptable."
    }
    // "Second, check the RST bit"
    if (segment.has(flags::RST)) {
        // "If the ACK was acceptable, then signal to the user "error:
        // connection reset", drop the segment, enter CLOSED state, delete
        // TCB, and return. Otherwise (no ACK), drop the segment and return."
        if (has_ack) {
            ++counters_.resets_received;
            tcp_reset(c, now);
        }
        return;
    }
    // "Fourth, check the SYN bit"
    if (!segment.has(flags::SYN)) {
        // "Fifth, if neither of the SYN or RST bits is set, then drop the
        // segment and return."
        ++counters_.bad_segments;
        return;
    }
    // "RCV.NXT is set to SEG.SEQ+1, IRS is set to SEG.SEQ."
    c.irs = segment.seq;
    c.rcv_nxt = segment.seq + 1;
    c.rcv_wup = c.rcv_nxt;
    c.rcv_adv = c.rcv_nxt + initial_window(c);  // what our SYN offered
    negotiate_syn_options(c, now, segment);
    if (has_ack) {
        // "SND.UNA should be advanced to equal SEG.ACK (if there is an ACK),
        // and any segments on the retransmission queue that are thereby
        // acknowledged should be removed."
        c.snd_una = segment.ack;
        c.snd_wl2 = segment.ack;
        // RTT of the handshake (Karn: only an unretransmitted SYN; else
        // the echoed timestamp).
        if (c.retransmits == 0 && c.retrans_stamp) {
            c.rtt.sample(now - *c.retrans_stamp);
        } else if (c.ts_ok && segment.options.timestamp && segment.options.timestamp->echo != 0) {
            const auto ms = static_cast<int32_t>(ts_clock(now) + c.ts_offset - segment.options.timestamp->echo);
            c.rtt.sample(Duration::from_millis(std::max(ms, 1)));
        }
        // "If SND.UNA > ISS (our SYN has been ACKed), change the connection
        // state to ESTABLISHED, form an ACK segment <SEQ=SND.NXT>
        // <ACK=RCV.NXT><CTL=ACK> and send it."
        set_state(c, TcpState::Established);
        on_established(c, now);
        // "If there are other controls or text in the segment, then
        // continue processing at the sixth step" — data on a SYN-ACK.
        if (!payload.empty() || segment.has(flags::FIN)) {
            wire::TcpRepr rest = segment;
            rest.flags &= static_cast<uint8_t>(~flags::SYN);
            rest.seq = segment.seq + 1;
            queue_data(c, now, rest, payload);
        }
        send_ack(c, now);
        transmit(c, now);
        return;
    }
    // "Otherwise, enter SYN-RECEIVED, form a SYN,ACK segment
    // <SEQ=ISS><ACK=RCV.NXT><CTL=SYN,ACK> and send it." (simultaneous open)
    set_state(c, TcpState::SynReceived);
    c.retransmits = 0;
    send_syn_ack(c, now);
    c.retransmit_at = now + c.rtt.rto();
}

}  // namespace ustack::tcp
