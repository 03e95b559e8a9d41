// SEGMENT ARRIVES in SYN-RECEIVED and the synchronized states, following
// RFC 9293 §3.10.7.4 step by step, with RFC 5961 (blind in-window attacks)
// and RFC 7323 (PAWS) folded in where Linux folds them in
// (tcp_validate_incoming, tcp_rcv_state_process, tcp_check_req). Also
// ICMP errors (tcp_v4_err).
#include <algorithm>
#include <cerrno>

#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {

namespace flags = wire::tcp_flags;
using wire::SeqNumber;

bool TcpEngine::paws_discard(const Conn& c, Instant now, const wire::TcpRepr& segment, size_t payload_len) const {
    // RFC 7323 §5.3 R1: "If there is a Timestamps option in the arriving
    // segment, SEG.TSval < TS.Recent, and if TS.Recent is valid, then treat
    // the arriving segment as not acceptable".
    if (!c.ts_ok || !segment.options.timestamp) {
        return false;
    }
    const uint32_t tsval = segment.options.timestamp->value;
    if (paws_check(c.ts_recent, c.ts_recent_stamp, tsval, now, 1)) {
        return false;
    }
    // tcp_disordered_ack(): a pure duplicate ACK that is merely reordered
    // (not a window update, not later than one RTO) is not a replay.
    const bool pure_dup_ack = segment.has(flags::ACK) && segment.seq == c.rcv_nxt && segment.ack == c.snd_una &&
                              segment.segment_len(payload_len) == 0 && !segment.has(flags::RST);
    if (pure_dup_ack && (uint32_t{segment.window} << c.snd_wscale) == c.snd_wnd && c.ts_recent &&
        static_cast<int64_t>(static_cast<int32_t>(*c.ts_recent - tsval)) <= c.rtt.rto().millis()) {
        return false;
    }
    return true;
}

bool TcpEngine::sequence_acceptable(const Conn& c, SeqNumber seq, SeqNumber end_seq) const {
    // tcp_sequence(): RFC 9293's acceptability test, as lenient as Linux
    // is: not entirely before what we last acknowledged, and not starting
    // past the window.
    if (end_seq < c.rcv_wup) {
        return false;
    }
    return !(seq > c.rcv_nxt + receive_window(c));
}

void TcpEngine::send_dupack_limited(Conn& c, Instant now, const wire::TcpRepr& segment, size_t payload_len) {
    const uint32_t seg_len = segment.segment_len(payload_len);
    // tcp_oow_rate_limited(): "Data packets without SYNs are not likely
    // part of an ACK loop."
    if (seg_len == 0 || segment.has(flags::SYN)) {
        if (c.oow_ack_sent && now - c.last_oow_ack < config_.invalid_ratelimit) {
            ++counters_.acks_rate_limited;
            return;
        }
        c.oow_ack_sent = true;
        c.last_oow_ack = now;
    }
    // tcp_send_dupack(): a retransmission of data we have means our ACK was
    // lost; answer at once from now on.
    if (seg_len > 0 && segment.seq < c.rcv_nxt) {
        enter_quickack(c, config_.max_quickacks);
    }
    send_ack(c, now);
}

void TcpEngine::send_challenge_ack(Conn& c, Instant now) {
    // RFC 5961 §7 rate limit, per socket as tcp_send_challenge_ack()
    // (Linux's global tcp_challenge_ack_limit is off by default since 6.0).
    if (c.oow_ack_sent && now - c.last_oow_ack < config_.invalid_ratelimit) {
        ++counters_.acks_rate_limited;
        return;
    }
    c.oow_ack_sent = true;
    c.last_oow_ack = now;
    ++counters_.challenge_acks;
    send_ack(c, now);
}

void TcpEngine::store_ts_recent(Conn& c, Instant now, const wire::TcpRepr& segment) {
    // RFC 7323 §4.3 (tcp_replace_ts_recent): "If SEG.TSval >= TS.Recent and
    // SEG.SEQ =< Last.ACK.sent, then SEG.TSval is copied to TS.Recent".
    if (!c.ts_ok || !segment.options.timestamp) {
        return;
    }
    if (segment.seq > c.rcv_wup) {
        return;
    }
    if (paws_check(c.ts_recent, c.ts_recent_stamp, segment.options.timestamp->value, now, 0)) {
        c.ts_recent = segment.options.timestamp->value;
        c.ts_recent_stamp = now;
    }
}

void TcpEngine::tcp_reset(Conn& c, Instant now) {
    (void)now;
    // tcp_reset(): "We want the right error as BSD sees it (and indeed as
    // we do)."
    int error = ECONNRESET;
    switch (c.state) {
    case TcpState::SynSent:
        error = ECONNREFUSED;
        break;
    case TcpState::CloseWait:
        error = EPIPE;
        break;
    case TcpState::Closed:
        return;
    default:
        break;
    }
    done_with_error(c, error);
}

void TcpEngine::segment_arrives(Conn& c, Instant now, const wire::TcpRepr& segment, wire::ByteSpan payload) {
    const SeqNumber seq = segment.seq;
    const SeqNumber end_seq = seq + segment.segment_len(payload.size());
    const bool rst = segment.has(flags::RST);
    const bool syn = segment.has(flags::SYN);
    const bool passive_child = c.state == TcpState::SynReceived && c.listener.has_value();

    if (c.state == TcpState::Closed || c.state == TcpState::Listen) {
        send_reset_for(now, c.remote.addr, c.local.addr, segment, payload.size());
        return;
    }

    // tcp_check_req(): a retransmitted SYN to a half-open child gets the
    // SYN-ACK again.
    if (c.state == TcpState::SynReceived && syn && !rst && !segment.has(flags::ACK) && seq == c.irs) {
        if (!paws_discard(c, now, segment, payload.size())) {
            send_syn_ack(c, now);
        }
        return;
    }

    // RFC 7323 §5.3 R1 (PAWS), before the sequence check (tcp_validate_incoming).
    if (paws_discard(c, now, segment, payload.size())) {
        // "Reset is accepted even if it did not pass PAWS."
        if (!rst) {
            ++counters_.paws_rejected;
            send_dupack_limited(c, now, segment, payload.size());
            return;
        }
    }

    // "First, check sequence number." ... "If an incoming segment is not
    // acceptable, an acknowledgment should be sent in reply (unless the RST
    // bit is set, if so drop the segment and return)".
    if (!sequence_acceptable(c, seq, end_seq)) {
        if (!rst) {
            ++counters_.out_of_window;
            if (syn && c.synchronized()) {
                // RFC 5961 §4.2: challenge ACK for any SYN.
                ++counters_.syn_challenges;
                send_challenge_ack(c, now);
            } else {
                send_dupack_limited(c, now, segment, payload.size());
            }
            return;
        }
        // tcp_reset_check(): after the peer's FIN, a RST at rcv_nxt - 1 is
        // accepted (it was sent before our ACK of that FIN arrived).
        const bool fin_received_state =
            c.state == TcpState::CloseWait || c.state == TcpState::LastAck || c.state == TcpState::Closing;
        if (!(fin_received_state && seq == c.rcv_nxt - 1)) {
            return;
        }
    }

    // "Second, check the RST bit" — RFC 5961 §3.2: "If the RST bit is set
    // and the sequence number exactly matches the next expected sequence
    // number (RCV.NXT), then TCP MUST reset the connection." ... "If the RST
    // bit is set and the sequence number does not exactly match the next
    // expected sequence value, yet is within the current receive window,
    // TCP MUST send an acknowledgment (challenge ACK)".
    if (rst) {
        const bool fin_received_state =
            c.state == TcpState::CloseWait || c.state == TcpState::LastAck || c.state == TcpState::Closing;
        if (seq == c.rcv_nxt || (fin_received_state && seq == c.rcv_nxt - 1)) {
            ++counters_.resets_received;
            if (passive_child) {
                // "If this connection was initiated with a passive OPEN (i.e.,
                // came from the LISTEN state), then return this connection to
                // LISTEN state" — the half-open child just goes.
                drop_child(c);
                return;
            }
            tcp_reset(c, now);
            return;
        }
        if (passive_child) {
            return;  // tcp_check_req: not in window for the child: dropped
        }
        send_challenge_ack(c, now);
        return;
    }

    // "Fourth, check the SYN bit" — RFC 5961 §4.2: "If the SYN bit is set,
    // irrespective of the sequence number, TCP MUST send an ACK (also
    // referred to as challenge ACK) to the remote peer".
    // tcp_validate_incoming(): in a simultaneous open, the peer's SYN,ACK
    // that exactly acknowledges our SYN completes the handshake.
    const bool crossing_syn_ack = syn && c.state == TcpState::SynReceived && !passive_child &&
                                  segment.has(flags::ACK) && end_seq == seq + 1 && seq + 1 == c.rcv_nxt &&
                                  segment.ack == c.snd_nxt;
    if (syn && !crossing_syn_ack) {
        if (passive_child) {
            // tcp_check_req(): a new SYN in window for a half-open child:
            // "embryonic_reset" — RST and drop the request.
            ++counters_.attempt_fails;
            send_reset_for(now, c.remote.addr, c.local.addr, segment, payload.size());
            drop_child(c);
            return;
        }
        ++counters_.syn_challenges;
        send_challenge_ack(c, now);
        return;
    }

    // "Fifth, check the ACK field": "if the ACK bit is off, drop the segment
    // and return".
    if (!segment.has(flags::ACK)) {
        ++counters_.bad_segments;
        return;
    }

    c.last_received = now;

    if (c.state == TcpState::SynReceived) {
        // "If SND.UNA < SEG.ACK =< SND.NXT, then enter ESTABLISHED state and
        // continue processing with the variables below set to:
        // SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK".
        if (!(segment.ack > c.snd_una && segment.ack <= c.snd_nxt)) {
            // "If the segment acknowledgment is not acceptable, form a reset
            // segment <SEQ=SEG.ACK><CTL=RST> and send it."
            ++counters_.bad_segments;
            send_reset_for(now, c.remote.addr, c.local.addr, segment, payload.size());
            return;
        }
        store_ts_recent(c, now, segment);
        // Handshake RTT: the SYN-ACK unretransmitted (Karn), else the echo.
        std::optional<Duration> rtt;
        if (c.synack_retransmits == 0 && c.retransmits == 0 && c.retrans_stamp) {
            rtt = now - *c.retrans_stamp;
        } else if (c.ts_ok && segment.options.timestamp && segment.options.timestamp->echo != 0) {
            const auto ms = static_cast<int32_t>(ts_clock(now) + c.ts_offset - segment.options.timestamp->echo);
            rtt = Duration::from_millis(std::max(ms, 1));
        }
        if (passive_child) {
            if (!child_established(c, now)) {
                return;  // accept queue full: the ACK is dropped
            }
        } else {
            set_state(c, TcpState::Established);
            on_established(c, now);
        }
        if (rtt) {
            c.rtt.sample(*rtt);
        }
        c.snd_una = segment.ack;
        c.snd_wnd = uint32_t{segment.window} << c.snd_wscale;
        c.max_snd_wnd = std::max(c.max_snd_wnd, c.snd_wnd);
        c.snd_wl1 = seq;
        c.snd_wl2 = segment.ack;
    } else {
        // "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK" ...
        // (tcp_ack).
        const AckResult result = process_ack(c, now, segment, payload.size());
        if (result == AckResult::Drop) {
            return;
        }
        if (result == AckResult::Old && c.state != TcpState::Established) {
            // tcp_rcv_state_process(): an unacceptable ACK outside
            // ESTABLISHED draws a challenge ACK and the segment goes.
            send_challenge_ack(c, now);
            return;
        }
        store_ts_recent(c, now, segment);
        const bool fin_acked = c.fin_sent && c.snd_una == c.snd_nxt;
        switch (c.state) {
        case TcpState::FinWait1:
            // "In addition to the processing for the ESTABLISHED state, if
            // the FIN segment is now acknowledged, then enter FIN-WAIT-2 and
            // continue processing in that state."
            if (fin_acked) {
                set_state(c, TcpState::FinWait2);
                c.retransmit_at.reset();
                c.persist_at.reset();
                if (c.orphan) {
                    // An orphan lives tcp_fin_timeout in FIN_WAIT2.
                    c.finwait2_at = now + fin_timeout();
                    // "Receive out of order FIN after close()": new data
                    // beyond rcv_nxt to an orphan resets below.
                }
            }
            break;
        case TcpState::Closing:
            // "In addition to the processing for the ESTABLISHED state, if
            // the ACK acknowledges our FIN, then enter the TIME-WAIT state;
            // otherwise, ignore the segment." (Data queued before the FIN
            // may still be going out: the segment's ACK was processed.)
            if (fin_acked) {
                enter_time_wait(c, now);
                return;
            }
            break;
        case TcpState::LastAck:
            // "The only thing that can arrive in this state is an
            // acknowledgment of our FIN. If our FIN is now acknowledged,
            // delete the TCB, enter the CLOSED state, and return."
            if (fin_acked) {
                tcp_done(c);
                return;
            }
            break;
        default:
            break;
        }
    }

    // "Sixth, check the URG bit" — urgent data is delivered inline; the
    // urgent pointer is not tracked.

    // "Seventh, process the segment text"
    switch (c.state) {
    case TcpState::FinWait1:
    case TcpState::FinWait2:
        // tcp_rcv_state_process(): "RFC 793 says to queue data in these
        // states, RFC 1122 says we MUST send a reset." — once the
        // application can no longer read (close() or shutdown(SHUT_RD)).
        if (c.rcv_shutdown && end_seq != seq &&
            (end_seq - (segment.has(flags::FIN) ? 1u : 0u)) > c.rcv_nxt) {
            ++counters_.aborts_on_data;
            send_reset_for(now, c.remote.addr, c.local.addr, segment, payload.size());
            tcp_reset(c, now);
            return;
        }
        [[fallthrough]];
    case TcpState::Established:
        // "Once in the ESTABLISHED state, it is possible to deliver segment
        // data to user RECEIVE buffers." (and "Eighth, check the FIN bit"
        // once the FIN is in order, see process_fin).
        queue_data(c, now, segment, payload);
        break;
    case TcpState::CloseWait:
    case TcpState::Closing:
    case TcpState::LastAck:
        // "This should not occur since a FIN has been received from the
        // remote side. Ignore the segment text." A retransmission of what
        // we already have is acknowledged again (tcp_data_queue).
        if (end_seq != seq && seq < c.rcv_nxt) {
            enter_quickack(c, config_.max_quickacks);
            schedule_ack(c, now, true);
        }
        break;
    default:
        break;
    }
    if (c.state == TcpState::Closed) {
        return;
    }
    // tcp_data_snd_check() and tcp_ack_snd_check().
    transmit(c, now);
    if (c.ack_now && c.state != TcpState::Closed) {
        if (input_batch_open_ && c.ack_now_quick) {
            batch_quick_acks_.push_back(c.id);
        } else {
            send_ack(c, now);
        }
    }
}

// ------------------------------------------------------------ ICMP

void TcpEngine::icmp_error(Instant now, const IcmpError& error) {
    const NetworkSide network_side(*this);
    Conn* c = lookup(ConnKey::of(error.local, error.remote));
    if (c == nullptr || c->state == TcpState::Listen) {
        return;
    }
    touch(*c);
    // tcp_v4_err(): the quoted sequence number must be one we have in
    // flight, else the message is forged or stale (RFC 5927 §4.1).
    if (!(error.seq >= c->snd_una && error.seq <= c->snd_nxt)) {
        ++counters_.icmp_out_of_window;
        finish();
        return;
    }
    ++counters_.icmp_errors;
    if (error.error == EMSGSIZE) {
        // Path MTU discovery (RFC 1191): shrink segments and resend what
        // no longer fits (tcp_v4_mtu_reduced, tcp_simple_retransmit).
        if (error.mtu >= 68 && error.mtu < c->pmtu) {
            c->pmtu = std::max<uint32_t>(error.mtu, 552);  // ip_rt_min_pmtu
            update_mss(*c);
            for (SentSegment& s : c->sent) {
                if (!s.sacked && s.len() - (s.fin ? 1 : 0) > c->mss_cache) {
                    set_lost(*c, s);
                }
            }
            transmit(*c, now);
        }
        finish();
        return;
    }
    if (c->state == TcpState::SynReceived && c->listener) {
        // tcp_req_err(): a half-open child dies on net/host unreachable.
        if (error.error == EHOSTUNREACH || error.error == ENETUNREACH) {
            drop_child(*c);
        }
        finish();
        return;
    }
    if (c->state == TcpState::SynSent || c->state == TcpState::SynReceived) {
        // "Only in fast or simultaneous open": a connecting socket fails at
        // once with the error (connect() reports EHOSTUNREACH...).
        done_with_error(*c, error.error);
    } else {
        // "If we've already connected we will keep trying until we time
        // out": a soft error, reported if the connection times out.
        c->soft_error = error.error;
    }
    finish();
}

}  // namespace ustack::tcp
