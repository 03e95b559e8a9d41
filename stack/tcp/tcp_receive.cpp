// Receiving: in-order and out-of-order data (tcp_data_queue,
// tcp_data_queue_ofo), the FIN (tcp_fin), the receive window
// (tcp_select_window, RFC 9293 §3.8.6.2.2 receiver SWS avoidance, RFC 7323
// scaling), ACK scheduling (delayed ACK per RFC 9293 §3.8.6.3 / RFC 1122
// §4.2.3.2 with Linux's quick-ACK and ping-pong modes) and recv().
#include <algorithm>
#include <cerrno>

#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {

namespace flags = wire::tcp_flags;
using wire::SeqNumber;

namespace {

// Linux TCP_INIT_CWND: the first period assumes ten segments a round trip.
constexpr size_t initial_rcvq_segments = 10;

// tcp_rcv_rtt_measure() (no timestamps needed): the time one receive
// window takes to arrive is an upper bound of the RTT; the estimate keeps
// the smallest (tcp_rcv_rtt_update with win_dep).
void rcv_rtt_measure(Connection& c, Instant now, uint32_t window) {
    if (c.rcv_rtt_time && c.rcv_nxt >= c.rcv_rtt_seq) {
        const Duration sample = std::max(now - *c.rcv_rtt_time, Duration::from_micros(1));
        if (c.rcv_rtt == Duration::zero() || sample < c.rcv_rtt) {
            c.rcv_rtt = sample;
        }
        c.rcv_rtt_time.reset();
    }
    if (!c.rcv_rtt_time) {
        c.rcv_rtt_seq = c.rcv_nxt + std::max<uint32_t>(window, 1);
        c.rcv_rtt_time = now;
    }
}

// tcp_rcv_space_adjust(): once per receiver RTT, when the application read
// more than in the period before, make the buffer (and so the window) room
// for twice that plus the growth, as Linux does (rcvwin = 2 * copied +
// 16 * advmss, grown by the same ratio again), never past `max_space`
// (tcp_rmem[2]) or what the window scale can announce, never when
// SO_RCVBUF locked it (SOCK_RCVBUF_LOCK).
void rcv_space_adjust(Connection& c, Instant now, size_t max_space) {
    if (!c.rcvq_time) {
        c.rcvq_time = now;
        c.rcvq_read_at = c.bytes_read;
        c.rcvq_space = std::min<size_t>(c.recv_buffer.capacity(), initial_rcvq_segments * c.adv_mss);
        return;
    }
    if (c.rcv_rtt == Duration::zero() || now - *c.rcvq_time < c.rcv_rtt) {
        return;
    }
    const size_t copied = static_cast<size_t>(c.bytes_read - c.rcvq_read_at);
    if (copied > c.rcvq_space) {
        if (!c.rcvbuf_locked && c.wscale_ok) {
            size_t window = 2 * copied + 16 * size_t{c.adv_mss};
            if (c.rcvq_space > 0) {
                const size_t grow = window * (copied - c.rcvq_space) / c.rcvq_space;
                window += 2 * grow;
            }
            const size_t ceiling = std::min(max_space, size_t{65535} << c.rcv_wscale);
            window = std::min(window, ceiling);
            if (window > c.recv_buffer.capacity()) {
                c.recv_buffer.set_capacity(window);
                c.rcvbuf = 2 * window;  // SO_RCVBUF reports twice the payload space
            }
        }
        c.rcvq_space = copied;
    }
    c.rcvq_read_at = c.bytes_read;
    c.rcvq_time = now;
}

}  // namespace

uint32_t TcpEngine::receive_window(const Conn& c) const {
    // tcp_receive_window(): what is left of the window we announced.
    const int32_t left = c.rcv_adv - c.rcv_nxt;
    return left > 0 ? static_cast<uint32_t>(left) : 0;
}

uint32_t TcpEngine::free_window(const Conn& c) const {
    // __tcp_select_window(): the window the free buffer space allows now.
    const auto free_space = static_cast<uint32_t>(std::min<size_t>(c.recv_buffer.free_space(), 1u << 30));
    const auto full_space = static_cast<uint32_t>(std::min<size_t>(c.recv_buffer.capacity(), 1u << 30));
    const uint32_t mss = std::min(c.rcv_mss, full_space);
    // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2, RFC 1122 §4.2.3.3): with
    // less than half the buffer free, do not offer less than one segment.
    if (free_space < full_space / 2 && free_space < mss) {
        return 0;
    }
    if (c.rcv_wscale != 0) {
        // Granularity of the scaled field (Linux rounds up; we round down so
        // an announced window is always backed by buffer space).
        return free_space & ~((1u << c.rcv_wscale) - 1);
    }
    // Without scaling, keep the announced window unless it is off by more
    // than a segment, then move in whole segments.
    const uint32_t window = static_cast<uint32_t>(c.rcv_adv - c.rcv_wup);
    if (mss == 0) {
        return free_space;
    }
    if (window + mss <= free_space || window > free_space) {
        return free_space / mss * mss;
    }
    return window;
}

uint16_t TcpEngine::select_window(Conn& c) {
    // tcp_select_window(): never shrink the window already offered
    // (RFC 9293 §3.8.6.2.2 "the right window edge ... SHOULD NOT" move
    // left; RFC 7323 §2.4).
    const uint32_t current = receive_window(c);
    uint32_t window = free_window(c);
    bool keep_edge = false;
    if (window < current) {
        window = current;
        if (c.rcv_wscale != 0) {
            // Round up so the scaled field does not shrink the edge — but
            // only when the buffer can hold the rounded-up window. Each
            // ACK sent while the application is not reading would move
            // the edge up to one unit further, past the buffer, and data
            // the peer sends inside the window would be dropped (RFC 7323
            // appendix F; Linux has autotuning slack, our buffer is
            // fixed). Else round the field down — an apparent shrink of
            // less than one unit — and keep accepting up to the edge
            // already offered, which the buffer backs (RFC 7323 §2.4).
            const uint32_t unit = 1u << c.rcv_wscale;
            const uint32_t rounded_up = (window + unit - 1) & ~(unit - 1);
            if (rounded_up <= c.recv_buffer.free_space()) {
                window = rounded_up;
            } else {
                window &= ~(unit - 1);
                keep_edge = true;
            }
        }
    }
    window = std::min<uint32_t>(window, uint32_t{65535} << c.rcv_wscale);
    c.rcv_wup = c.rcv_nxt;
    if (!keep_edge) {
        c.rcv_adv = c.rcv_nxt + window;
    }
    return static_cast<uint16_t>(window >> c.rcv_wscale);
}

void TcpEngine::enter_quickack(Conn& c, unsigned count) {
    // tcp_enter_quickack_mode() / tcp_incr_quickack(): ACK the next
    // segments at once (and leave ping-pong mode).
    const uint32_t window = static_cast<uint32_t>(c.rcv_adv - c.rcv_wup);
    unsigned quickacks = window / (2 * std::max<uint32_t>(c.rcv_mss, 1));
    if (quickacks == 0) {
        quickacks = 2;
    }
    quickacks = std::min(quickacks, count);
    c.quick = std::max(c.quick, quickacks);
    c.pingpong = false;
}

void TcpEngine::event_data_received(Conn& c, Instant now, size_t len) {
    // tcp_measure_rcv_mss(): the peer's segment size, for the "every
    // second full-sized segment" rule.
    if (len >= c.rcv_mss) {
        c.rcv_mss = std::min<uint32_t>(static_cast<uint32_t>(len), c.adv_mss);
    }
    // tcp_event_data_recv(): the first data starts in quick-ACK mode; so
    // does data after the peer was silent longer than an RTO ("Apparently
    // sender failed to restart window, so that we send ACKs quickly").
    if (!c.ato_started) {
        c.ato_started = true;
        const bool was_pingpong = c.pingpong;
        enter_quickack(c, config_.max_quickacks);
        c.pingpong = was_pingpong;  // tcp_incr_quickack keeps the mode
    } else if (now - c.last_data_received > c.rtt.rto()) {
        const bool was_pingpong = c.pingpong;
        enter_quickack(c, config_.max_quickacks);
        c.pingpong = was_pingpong;
    }
    c.last_data_received = now;
}

void TcpEngine::schedule_ack(Conn& c, Instant now, bool immediate) {
    c.ack_pending = true;
    if (immediate) {
        c.ack_now = true;
        c.ack_now_quick = false;
        return;
    }
    // __tcp_ack_snd_check(): at once when more than one full segment is
    // unacknowledged (RFC 9293 §3.8.6.3: "an ACK SHOULD be generated for at
    // least every second full-sized segment"), or in quick-ACK mode;
    // otherwise the delayed ACK timer. Linux also asks that the window
    // would not be smaller than the one announced — with its autotuned
    // buffers that nearly always holds; with our fixed buffer it would
    // delay every ACK while the application has not read yet, so we keep
    // to the RFC's rule.
    const uint32_t unacked = static_cast<uint32_t>(c.rcv_nxt - c.rcv_wup);
    const bool quickack_mode = c.quick > 0 && !c.pingpong;
    if (unacked > c.rcv_mss || quickack_mode) {
        // Only quick-ACK mode asks (no other reason so far): the input
        // batch's end decides (end_input_batch).
        c.ack_now_quick = unacked <= c.rcv_mss && (!c.ack_now || c.ack_now_quick);
        c.ack_now = true;
        return;
    }
    if (!c.delack_at) {
        c.delack_at = now + config_.delayed_ack;
    }
}

void TcpEngine::begin_input_batch() { input_batch_open_ = true; }

void TcpEngine::end_input_batch(Instant now) {
    input_batch_open_ = false;
    if (batch_quick_acks_.empty()) {
        return;
    }
    const NetworkSide network_side(*this);
    for (const SocketId id : batch_quick_acks_) {
        Conn* c = find(id);
        if (c == nullptr || !c->ack_now || !c->ack_now_quick || c->state == TcpState::Closed) {
            continue;  // gone, or the ACK went with a later segment of the batch
        }
        touch(*c);
        if (c->quick > 0 && !c->pingpong) {
            send_ack(*c, now);
            continue;
        }
        // The batch left the connection in ping-pong mode (the peer's FIN,
        // which tcp_fin() answers with a delayed ACK): this ACK is that
        // one, and leaves with our next segment or the delayed-ACK timer.
        c->ack_now = false;
        c->ack_now_quick = false;
        ++counters_.quick_acks_joined;
        if (!c->delack_at) {
            c->delack_at = now + config_.delayed_ack;
        }
    }
    batch_quick_acks_.clear();
    finish();
}

void TcpEngine::queue_data(Conn& c, Instant now, const wire::TcpRepr& segment, wire::ByteSpan payload) {
    const bool fin = segment.has(flags::FIN);
    if (payload.empty() && !fin) {
        return;
    }
    const SeqNumber seq = segment.seq;
    const SeqNumber end_seq = seq + segment.segment_len(payload.size());

    // "A retransmit, 2nd most common case. Force an immediate ack."
    if (end_seq <= c.rcv_nxt) {
        enter_quickack(c, config_.max_quickacks);
        schedule_ack(c, now, true);
        return;
    }
    // Data starting past the window: drop, and tell the peer where we are.
    if (payload.size() > 0 && seq >= c.rcv_nxt + receive_window(c) && seq > c.rcv_nxt) {
        ++counters_.rcvbuf_dropped;
        enter_quickack(c, config_.max_quickacks);
        schedule_ack(c, now, true);
        return;
    }
    // Trim what we already have.
    const int32_t before = c.rcv_nxt - seq;
    const size_t skip = before > 0 ? std::min<size_t>(static_cast<size_t>(before), payload.size()) : 0;
    const wire::ByteSpan data = payload.subspan(skip);
    const SeqNumber data_seq = seq + static_cast<uint32_t>(skip);
    const SeqNumber fin_at = seq + static_cast<uint32_t>(payload.size());

    if (data_seq == c.rcv_nxt) {
        // In order.
        if (!data.empty() && receive_window(c) == 0) {
            // tcp_data_queue(): zero window, the data goes (a window probe
            // carrying data); the ACK tells the peer the window is still 0.
            ++counters_.zero_window_drops;
            enter_quickack(c, config_.max_quickacks);
            schedule_ack(c, now, true);
            return;
        }
        const bool had_ooo = !c.ooo.empty();
        const size_t n = c.recv_buffer.write(data);
        if (n < data.size()) {
            ++counters_.rcvbuf_dropped;
        }
        c.rcv_nxt += static_cast<uint32_t>(n);
        c.ooo.shift(n);
        // tcp_ofo_queue(): out-of-order data that now follows in order.
        const size_t merged = c.ooo.remove_front();
        if (merged > 0) {
            c.recv_buffer.commit(merged);
            c.rcv_nxt += static_cast<uint32_t>(merged);
        }
        if (n > 0) {
            event_data_received(c, now, n);
            rcv_rtt_measure(c, now, static_cast<uint32_t>(c.rcv_adv - c.rcv_wup));  // tp->rcv_wnd
        }
        if (fin && n == data.size()) {
            c.fin_seq = fin_at;
        }
        if (c.fin_seq && c.rcv_nxt == *c.fin_seq && !c.done) {
            process_fin(c, now);
            return;
        }
        // RFC 5681 §4.2: "an immediate ACK SHOULD be sent when the
        // incoming segment fills in all or part of a gap".
        schedule_ack(c, now, had_ooo);
        return;
    }

    // Out of order (tcp_data_queue_ofo): keep it if the buffer and the
    // range limit allow; RFC 5681 §4.2 "an immediate duplicate ACK SHOULD
    // be sent when an out-of-order segment arrives".
    const auto offset = static_cast<size_t>(data_seq - c.rcv_nxt);
    if (!data.empty()) {
        const size_t n = c.recv_buffer.write_unallocated(offset, data);
        if (n == 0) {
            ++counters_.rcvbuf_dropped;
        } else if (!c.ooo.add(offset, n)) {
            ++counters_.ooo_dropped;
        } else {
            ++counters_.ooo_queued;
            if (fin && n == data.size()) {
                c.fin_seq = fin_at;
            }
        }
    } else if (fin) {
        c.fin_seq = fin_at;
    }
    schedule_ack(c, now, true);
}

void TcpEngine::process_fin(Conn& c, Instant now) {
    // "Eighth, check the FIN bit": "signal the user 'connection closing'
    // and return any pending RECEIVEs with same message, advance RCV.NXT
    // over the FIN, and send an acknowledgment for the FIN."
    c.rcv_nxt += 1;
    c.done = true;         // SOCK_DONE
    c.rcv_shutdown = true;  // RCV_SHUTDOWN
    // "It _is_ possible, that we have something out-of-order _after_ FIN.
    // Probably, we should reset in this case. For now drop it." (tcp_fin)
    c.ooo.clear();
    switch (c.state) {
    case TcpState::SynReceived:
    case TcpState::Established:
        // "Enter the CLOSE-WAIT state." Linux enters ping-pong mode: the
        // ACK waits for the application's reply (or the delayed-ACK timer).
        set_state(c, TcpState::CloseWait);
        c.pingpong = true;
        schedule_ack(c, now, false);
        break;
    case TcpState::FinWait1:
        // "If our FIN has been ACKed (perhaps in this segment), then enter
        // TIME-WAIT ... otherwise, enter the CLOSING state." Our FIN acked
        // would have moved us to FIN-WAIT-2 already: simultaneous close.
        set_state(c, TcpState::Closing);
        send_ack(c, now);
        break;
    case TcpState::FinWait2:
        // "Enter the TIME-WAIT state. Start the time-wait timer, turn off
        // the other timers."
        send_ack(c, now);
        enter_time_wait(c, now);
        break;
    default:
        schedule_ack(c, now, true);
        break;
    }
}

void TcpEngine::cleanup_rbuf(Conn& c, Instant now) {
    // tcp_cleanup_rbuf(): after the application read.
    bool time_to_ack = false;
    if (c.ack_pending && static_cast<uint32_t>(c.rcv_nxt - c.rcv_wup) > c.rcv_mss) {
        // "Once-per-two-segments ACK was not sent by tcp_input.c".
        time_to_ack = true;
    }
    if (!time_to_ack && !c.rcv_shutdown && c.synchronized()) {
        // "We send an ACK if we can now advertise a non-zero window which
        // has been raised 'significantly'" — at least doubled, when at most
        // half the maximum was left.
        const uint32_t now_left = receive_window(c);
        const auto clamp = static_cast<uint32_t>(std::min<size_t>(c.recv_buffer.capacity(), 1u << 30));
        if (2 * uint64_t{now_left} <= clamp) {
            const uint32_t new_window = free_window(c);
            if (new_window != 0 && new_window >= 2 * now_left) {
                time_to_ack = true;
            }
        }
    }
    if (time_to_ack) {
        send_ack(c, now);
    }
}

Result<size_t> TcpEngine::recv(SocketId id, Instant now, wire::MutByteSpan out, bool peek) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    // tcp_recvmsg_locked().
    if (c->state == TcpState::Listen) {
        return fail(ENOTCONN);
    }
    if (!c->recv_buffer.empty() && !out.empty()) {
        const size_t n = peek ? c->recv_buffer.peek(0, out) : c->recv_buffer.read(out);
        if (!peek) {
            after_app_read(*c, now, n);
        }
        return n;
    }
    if (out.empty()) {
        return size_t{0};
    }
    return recv_nothing_held(*c);
}

void TcpEngine::after_app_read(Conn& c, Instant now, size_t n) {
    touch(c);
    c.bytes_read += n;
    rcv_space_adjust(c, now, config_.window_scale_space);
    cleanup_rbuf(c, now);
    finish();
}

Result<size_t> TcpEngine::recv_nothing_held(Conn& c) {
    if (c.done) {
        return size_t{0};
    }
    if (c.error != 0) {
        const int error = c.error;
        c.error = 0;
        return fail(error);
    }
    if (c.rcv_shutdown) {
        return size_t{0};
    }
    if (c.state == TcpState::Closed) {
        return fail(ENOTCONN);
    }
    return fail(EAGAIN);
}

Result<TcpEngine::ReceivedSpans> TcpEngine::recv_spans(SocketId id, std::span<wire::ByteSpan> spans) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    if (c->state == TcpState::Listen) {
        return fail(ENOTCONN);
    }
    if (spans.empty()) {
        return ReceivedSpans{};  // as recv() into an empty buffer
    }
    if (c->recv_buffer.empty()) {
        auto nothing = recv_nothing_held(*c);
        if (!nothing) {
            return fail(nothing.error().value);
        }
        return ReceivedSpans{};  // end of stream
    }
    ReceivedSpans got;
    got.count = c->recv_buffer.readable_spans(0, spans);
    for (size_t i = 0; i < got.count; ++i) {
        got.bytes += spans[i].size();
    }
    return got;
}

void TcpEngine::recv_consume(SocketId id, Instant now, size_t n) {
    Conn* c = find_app(id);
    if (c == nullptr || n == 0) {
        return;
    }
    n = std::min(n, c->recv_buffer.size());
    c->recv_buffer.consume(n);
    after_app_read(*c, now, n);
}

}  // namespace ustack::tcp
