// Sending: send(), the transmit loop (Linux tcp_write_xmit and
// tcp_xmit_retransmit_queue), MSS-sized segmentation, Nagle (RFC 9293
// §3.7.4, Minshall's variant as Linux) and TCP_CORK, zero-window probes
// (RFC 9293 §3.8.6.1, tcp_write_wakeup), segment building with options.
#include <algorithm>
#include <cerrno>

#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {

namespace flags = wire::tcp_flags;
using wire::SeqNumber;

namespace {

constexpr uint32_t min_payload = 48;

}  // namespace

void TcpEngine::update_mss(Conn& c) {
    // tcp_sync_mss() / tcp_mtu_to_mss(): the path MTU less the IP and TCP
    // headers, clamped by the peer's MSS option, less the timestamp option
    // every segment carries.
    uint32_t base = std::min<uint32_t>(c.pmtu - 40, c.peer_mss);
    if (c.user_mss != 0) {
        base = std::min<uint32_t>(base, c.user_mss);
    }
    const uint32_t options = c.ts_ok ? 12 : 0;
    c.mss_cache = std::max(base > options ? base - options : 0, min_payload);
}

uint32_t TcpEngine::max_payload(const Conn& c, const wire::TcpRepr& repr) const {
    // tcp_current_mss(): SACK blocks take room from the payload.
    const uint32_t options = static_cast<uint32_t>(repr.options.encoded_len());
    const uint32_t usual = c.ts_ok ? 12 : 0;
    const uint32_t extra = options > usual ? options - usual : 0;
    return std::max(c.mss_cache > extra ? c.mss_cache - extra : 0, min_payload);
}

uint16_t TcpEngine::initial_window(const Conn& c) const {
    // tcp_select_initial_window(): the buffer rounded down to whole
    // segments, at most 65535 (a SYN's window is never scaled).
    const auto space = static_cast<uint32_t>(std::min<size_t>(c.recv_buffer.free_space(), 1u << 30));
    uint32_t window = space;
    if (c.adv_mss > 0 && space > c.adv_mss) {
        window = space / c.adv_mss * c.adv_mss;
    }
    return static_cast<uint16_t>(std::min<uint32_t>(window, 65535));
}

wire::TcpRepr TcpEngine::make_segment(Conn& c, Instant now, uint8_t segment_flags, SeqNumber seq) {
    wire::TcpRepr repr;
    repr.src_port = c.local.port;
    repr.dst_port = c.remote.port;
    repr.seq = seq;
    repr.flags = segment_flags;
    if ((segment_flags & flags::ACK) != 0) {
        repr.ack = c.rcv_nxt;
    }
    if ((segment_flags & flags::SYN) != 0) {
        repr.window = initial_window(c);
        if ((segment_flags & flags::ACK) != 0) {
            c.rcv_wup = c.rcv_nxt;
            c.rcv_adv = c.rcv_nxt + repr.window;
        }
    } else {
        repr.window = select_window(c);
    }
    // RFC 7323 §3.2: once negotiated, every segment but a RST may carry
    // timestamps; Linux puts them on RSTs of a connection too.
    if (c.ts_ok) {
        repr.options.timestamp = wire::TcpTimestamp{ts_clock(now) + c.ts_offset, c.ts_recent.value_or(0)};
    }
    // RFC 2018 §4: SACK blocks on ACKs while out-of-order data is held;
    // 3 fit beside timestamps, 4 without.
    if (c.sack_ok && (segment_flags & flags::ACK) != 0 && (segment_flags & flags::SYN) == 0 && !c.ooo.empty()) {
        const auto blocks = c.ooo.sack_blocks(c.rcv_nxt, c.ts_ok ? 3 : 4);
        for (size_t i = 0; i < blocks.size(); ++i) {
            repr.options.sack_blocks[i] = blocks[i];
        }
        repr.options.sack_count = static_cast<uint8_t>(blocks.size());
    }
    return repr;
}

void TcpEngine::emit(Conn& c, Instant now, wire::TcpRepr& repr, wire::ByteSpan payload) {
    output(now, c, repr, payload);
    if (repr.has(flags::ACK)) {
        // tcp_event_ack_sent(): the ACK owed went out with this segment.
        if (c.ack_pending && c.quick > 0) {
            --c.quick;  // tcp_dec_quickack_mode()
        }
        c.ack_pending = false;
        c.ack_now = false;
        c.ack_now_quick = false;
        c.delack_at.reset();
    }
}

void TcpEngine::send_ack(Conn& c, Instant now) {
    if (c.state == TcpState::Closed || c.state == TcpState::Listen || c.state == TcpState::SynSent) {
        return;
    }
    wire::TcpRepr ack = make_segment(c, now, flags::ACK, c.snd_nxt);
    emit(c, now, ack, {});
}

void TcpEngine::send_active_reset(Conn& c, Instant now) {
    // tcp_send_active_reset(): <SEQ=SND.NXT><ACK=RCV.NXT><CTL=RST,ACK>.
    wire::TcpRepr rst = make_segment(c, now, flags::RST | flags::ACK, c.snd_nxt);
    emit(c, now, rst, {});
}

void TcpEngine::arm_rto_if_idle(Conn& c, Instant now) {
    if (c.retransmit_at) {
        return;
    }
    Duration rto = c.rtt.rto();
    // tcp_clamp_rto_to_user_timeout(): never wait past TCP_USER_TIMEOUT.
    if (c.user_timeout > Duration::zero() && c.retrans_stamp) {
        const Duration remaining = c.user_timeout - (now - *c.retrans_stamp);
        rto = std::min(rto, std::max(remaining, Duration::from_millis(1)));
    }
    c.retransmit_at = now + rto;
    c.persist_at.reset();
}

void TcpEngine::check_probe_timer(Conn& c, Instant now) {
    // tcp_check_probe_timer(): data waits (zero window, Nagle or cork) and
    // nothing is in flight to bring an ACK: probe after max(RTO, 200 ms).
    // This is also TCP_CORK's 200 ms ceiling.
    if (c.outstanding() != 0 || c.retransmit_at || c.persist_at) {
        return;
    }
    if (c.unsent_bytes() == 0 && !(c.fin_queued && !c.fin_sent)) {
        return;
    }
    c.persist_at = now + std::max(c.rtt.rto(), RttEstimator::min_rto);
}

bool TcpEngine::nagle_allows(const Conn& c, uint32_t len, uint32_t mss) const {
    if (len >= mss) {
        return true;
    }
    // TCP_CORK: partial segments wait (TCP_NAGLE_CORK).
    if (c.cork) {
        return false;
    }
    if (c.nodelay) {
        return true;
    }
    // tcp_nagle_check() with tcp_minshall_check(): a small segment may go
    // unless another small segment is still unacknowledged.
    const bool small_in_flight = c.snd_sml > c.snd_una && c.snd_sml <= c.snd_nxt;
    return !(c.outstanding() > 0 && small_in_flight);
}

bool TcpEngine::send_new_data(Conn& c, Instant now, uint32_t max_len, bool push_all) {
    const size_t unsent = c.unsent_bytes();
    const bool fin_pending = c.fin_queued && !c.fin_sent;
    if (unsent == 0 && !fin_pending) {
        return false;
    }
    const SeqNumber seq = c.snd_nxt;
    wire::TcpRepr repr = make_segment(c, now, flags::ACK, seq);
    const uint32_t mss = max_payload(c, repr);
    const uint32_t window_end_gap = static_cast<uint32_t>(std::max<int32_t>((c.snd_una + c.snd_wnd) - seq, 0));
    uint32_t len = static_cast<uint32_t>(std::min<size_t>({unsent, mss, max_len}));
    len = std::min(len, window_end_gap);
    if (unsent > 0 && len == 0) {
        return false;  // window closed
    }
    const bool tail = len == unsent;
    if (unsent > 0 && len < mss && !push_all) {
        // Nagle / cork for a partial segment; a FIN rides along freely
        // (tcp_nagle_test: "Don't use the nagle rule for ... FIN").
        if (!(tail && fin_pending) && !nagle_allows(c, len, mss)) {
            return false;
        }
    }
    // The FIN goes on the segment carrying the last byte if the window has
    // room for it (tcp_snd_wnd_test counts it).
    const bool fin = fin_pending && tail && window_end_gap >= len + 1;
    if (len == 0 && !fin) {
        return false;
    }
    if (fin) {
        repr.flags |= flags::FIN;
    }
    if (len > 0 && tail) {
        repr.flags |= flags::PSH;
    }
    if (scratch_.size() < len) {
        scratch_.resize(std::max<size_t>(len, 2048));
    }
    const size_t offset = static_cast<size_t>(seq - c.send_buffer_seq);
    c.send_buffer.peek(offset, wire::MutByteSpan(scratch_.data(), len));
    emit(c, now, repr, wire::ByteSpan(scratch_.data(), len));

    SentSegment s;
    s.start = seq;
    s.end = seq + len + (fin ? 1 : 0);
    s.first_sent = now;
    s.last_sent = now;
    s.fin = fin;
    c.sent.push_back(s);
    c.snd_nxt = s.end;
    if (fin) {
        c.fin_sent = true;
    }
    if (len < mss) {
        c.snd_sml = c.snd_nxt;  // tcp_minshall_update()
    }
    // tcp_event_data_sent(): a reply within the delayed-ACK time of the
    // last data received marks the connection interactive (ping-pong).
    if (c.ato_started && now - c.last_data_received < config_.delayed_ack) {
        c.pingpong = true;
    }
    arm_rto_if_idle(c, now);  // RFC 6298 §5.1
    return true;
}

void TcpEngine::split_segment(Conn& c, size_t index, uint32_t first_len) {
    // tcp_fragment(): the segment no longer fits one packet (smaller MSS,
    // or SACK blocks now ride along); both halves keep its marks.
    SentSegment second = c.sent[index];
    SentSegment& first = c.sent[index];
    second.start = first.start + first_len;
    first.end = second.start;
    first.fin = false;
    c.sent.insert(c.sent.begin() + static_cast<std::ptrdiff_t>(index) + 1, second);
}

void TcpEngine::retransmit(Conn& c, Instant now, size_t index) {
    wire::TcpRepr repr = make_segment(c, now, flags::ACK, c.sent[index].start);
    const uint32_t mss = max_payload(c, repr);
    const uint32_t data_len = c.sent[index].len() - (c.sent[index].fin ? 1 : 0);
    if (data_len > mss) {
        split_segment(c, index, mss);
    }
    SentSegment& s = c.sent[index];
    const uint32_t len = s.len() - (s.fin ? 1 : 0);
    if (s.fin) {
        repr.flags |= flags::FIN;
    }
    if (len > 0 && s.start + len == c.send_buffer_end()) {
        repr.flags |= flags::PSH;
    }
    if (scratch_.size() < len) {
        scratch_.resize(std::max<size_t>(len, 2048));
    }
    const size_t offset = static_cast<size_t>(s.start - c.send_buffer_seq);
    c.send_buffer.peek(offset, wire::MutByteSpan(scratch_.data(), len));
    emit(c, now, repr, wire::ByteSpan(scratch_.data(), len));
    ++counters_.retransmitted_segments;
    // tcp_retransmit_skb(): the clock of the give-up decision starts at the
    // first transmission of the first retransmitted segment.
    if (!c.retrans_stamp) {
        c.retrans_stamp = s.last_sent;
    }
    s.ever_retransmitted = true;
    s.last_sent = now;
    if (s.lost && !s.retrans_in_flight) {
        account(c, s, false);
        s.retrans_in_flight = true;
        account(c, s, true);
    }
    arm_rto_if_idle(c, now);
}

void TcpEngine::transmit(Conn& c, Instant now) {
    switch (c.state) {
    case TcpState::Established:
    case TcpState::CloseWait:
    case TcpState::FinWait1:
    case TcpState::Closing:
    case TcpState::LastAck:
        break;
    default:
        return;
    }
    if (!c.cc) {
        return;
    }
    // Retransmissions first (RFC 6675 NextSeg() rule 1; after an RTO, the
    // segments marked lost in order, RFC 5681 §3.1 slow start).
    if (c.lost_out > c.retrans_out || c.force_retransmit) {
        for (size_t i = 0; i < c.sent.size(); ++i) {
            SentSegment& s = c.sent[i];
            if (!s.lost || s.retrans_in_flight || s.sacked) {
                continue;
            }
            if (!c.force_retransmit && c.pipe() >= c.cwnd()) {
                break;
            }
            c.force_retransmit = false;
            if (c.ca_state == CaState::Recovery) {
                ++counters_.fast_retransmits;
                if (c.sack_ok) {
                    ++counters_.sack_retransmits;
                }
            }
            retransmit(c, now, i);
        }
        c.force_retransmit = false;
    }
    // New data while the window and cwnd allow (tcp_write_xmit:
    // tcp_cwnd_test, tcp_snd_wnd_test, tcp_nagle_test).
    while (c.pipe() < c.cwnd()) {
        if (!send_new_data(c, now, UINT32_MAX, false)) {
            break;
        }
    }
    check_probe_timer(c, now);
}

void TcpEngine::send_probe(Conn& c, Instant now) {
    // tcp_write_wakeup(): new data if the window has room (ignoring Nagle
    // and cork), else tcp_xmit_probe_skb(): "Use a previous sequence. This
    // should cause the other end to send an ack." <SEQ=SND.UNA-1>.
    if (!c.synchronized() || c.state == TcpState::TimeWait) {
        return;
    }
    const bool window_open = (c.snd_una + c.snd_wnd) > c.snd_nxt;
    if (window_open && (c.unsent_bytes() > 0 || (c.fin_queued && !c.fin_sent))) {
        if (send_new_data(c, now, UINT32_MAX, true)) {
            return;
        }
    }
    wire::TcpRepr probe = make_segment(c, now, flags::ACK, c.snd_una - 1);
    emit(c, now, probe, {});
}

size_t TcpEngine::send_room(SocketId id) const {
    const Conn* c = find_app(id);
    if (c == nullptr || (c->state != TcpState::Established && c->state != TcpState::CloseWait) ||
        c->snd_shutdown || c->error != 0) {
        return 0;
    }
    return c->send_buffer.free_space();
}

size_t TcpEngine::send_queued(SocketId id) const {
    const Conn* c = find_app(id);
    return c == nullptr ? 0 : c->send_buffer.size();
}

Result<size_t> TcpEngine::send(SocketId id, Instant now, wire::ByteSpan data) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    auto take_error_or = [&](int fallback) -> Result<size_t> {
        // sk_stream_error(): EPIPE gives way to a pending error.
        if (c->error != 0) {
            const int error = c->error;
            c->error = 0;
            return fail(error);
        }
        return fail(fallback);
    };
    // tcp_sendmsg_locked(): outside ESTABLISHED/CLOSE_WAIT, wait for the
    // connection (sk_stream_wait_connect: EAGAIN for a non-blocking socket
    // still connecting, EPIPE otherwise).
    if (c->state != TcpState::Established && c->state != TcpState::CloseWait) {
        if (c->error != 0) {
            return take_error_or(EPIPE);
        }
        if (c->state != TcpState::SynSent && c->state != TcpState::SynReceived) {
            return fail(EPIPE);
        }
        return fail(EAGAIN);
    }
    if (c->snd_shutdown) {
        return take_error_or(EPIPE);
    }
    if (data.empty()) {
        return size_t{0};
    }
    const size_t n = c->send_buffer.write(data);
    if (n == 0) {
        return fail(EAGAIN);
    }
    touch(*c);
    transmit(*c, now);
    finish();
    return n;
}

}  // namespace ustack::tcp
