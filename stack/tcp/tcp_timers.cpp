// Timers (Linux tcp_timer.c): retransmission with exponential backoff
// (RFC 6298 §5, tcp_retransmit_timer), SYN/SYN-ACK retransmission, the
// give-up rules (tcp_write_timeout, tcp_model_timeout), zero-window probes
// (RFC 9293 §3.8.6.1, tcp_probe_timer), delayed ACK (tcp_delack_timer),
// keepalive (RFC 1122 §4.2.3.6, tcp_keepalive_timer) and the orphaned
// FIN_WAIT2 lifetime. Nothing sleeps: each timer is a deadline.
#include <algorithm>
#include <cerrno>

#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {

namespace flags = wire::tcp_flags;

namespace {

// TCP_TIMEOUT_INIT, TCP_RTO_MIN, TCP_RTO_MAX.
constexpr Duration timeout_init = Duration::from_secs(1);
constexpr Duration rto_min = RttEstimator::min_rto;
constexpr Duration rto_max = RttEstimator::max_rto;

// tcp_model_timeout(): how long `boundary` retransmissions take from an
// RTO of rto_base doubling up to TCP_RTO_MAX.
Duration model_timeout(unsigned boundary, Duration rto_base) {
    unsigned linear_backoff_thresh = 0;
    while ((int64_t{2} << linear_backoff_thresh) * rto_base.micros() <= rto_max.micros()) {
        ++linear_backoff_thresh;  // ilog2(TCP_RTO_MAX / rto_base)
    }
    if (boundary <= linear_backoff_thresh) {
        return rto_base * ((int64_t{2} << boundary) - 1);
    }
    return rto_base * ((int64_t{2} << linear_backoff_thresh) - 1) +
           rto_max * static_cast<int64_t>(boundary - linear_backoff_thresh);
}

}  // namespace

void TcpEngine::run_timers(Conn& c, Instant now) {
    // Each handler may end the connection; stop at the first that does.
    auto due = [&](const std::optional<Instant>& t) { return t && *t <= now; };
    if (due(c.delack_at)) {
        c.delack_at.reset();
        delack_timer(c, now);
    }
    if (c.state != TcpState::Closed && due(c.retransmit_at)) {
        c.retransmit_at.reset();
        retransmit_timer(c, now);
    }
    if (c.state != TcpState::Closed && due(c.persist_at)) {
        c.persist_at.reset();
        persist_timer(c, now);
    }
    if (c.state != TcpState::Closed && due(c.keepalive_at)) {
        c.keepalive_at.reset();
        keepalive_timer(c, now);
    }
    if (c.state != TcpState::Closed && due(c.finwait2_at)) {
        c.finwait2_at.reset();
        // The orphan's tcp_fin_timeout ran out: it goes without a word, as
        // Linux's FIN_WAIT2 timewait entry expires (inet_twsk_kill).
        if (c.state == TcpState::FinWait2 && c.orphan) {
            ++counters_.aborts_on_linger;
            tcp_done(c);
        }
    }
}

bool TcpEngine::retransmits_timed_out(const Conn& c, Instant now, unsigned boundary, Duration timeout) const {
    // retransmits_timed_out(): measured from the first transmission of
    // what is being retransmitted, against TCP_USER_TIMEOUT or the time
    // `boundary` backoffs take from TCP_RTO_MIN (1 s in the handshake).
    if (c.retransmits == 0 || !c.retrans_stamp) {
        return false;
    }
    if (timeout == Duration::zero()) {
        const bool handshake = c.state == TcpState::SynSent || c.state == TcpState::SynReceived;
        timeout = model_timeout(boundary, handshake ? timeout_init : rto_min);
    }
    return now - *c.retrans_stamp >= timeout;
}

void TcpEngine::write_error(Conn& c, Instant now) {
    (void)now;
    // tcp_write_err(): ETIMEDOUT, or the ICMP error that explains it.
    ++counters_.timeouts_established;
    done_with_error(c, c.soft_error != 0 ? c.soft_error : ETIMEDOUT);
}

bool TcpEngine::write_timeout(Conn& c, Instant now) {
    // tcp_write_timeout().
    if (c.state == TcpState::SynSent || c.state == TcpState::SynReceived) {
        if (c.retransmits >= config_.syn_retries) {
            ++counters_.timeouts_connect;
            done_with_error(c, c.soft_error != 0 ? c.soft_error : ETIMEDOUT);
            return true;
        }
        return false;
    }
    const unsigned retry_until = c.orphan ? config_.orphan_retries : config_.retries2;
    if (retransmits_timed_out(c, now, retry_until, c.user_timeout)) {
        write_error(c, now);
        return true;
    }
    return false;
}

void TcpEngine::retransmit_timer(Conn& c, Instant now) {
    // A listener's half-open child: SYN-ACK retransmission
    // (inet_csk_reqsk_queue / reqsk_timer_handler), then it is dropped.
    if (c.state == TcpState::SynReceived && c.listener) {
        if (c.synack_retransmits >= config_.synack_retries) {
            drop_child(c);
            return;
        }
        ++c.synack_retransmits;
        ++counters_.syn_retransmits;
        c.rtt.backoff();
        send_syn_ack(c, now);
        c.retransmit_at = now + std::min(timeout_init * (int64_t{1} << std::min(c.synack_retransmits, 20u)), rto_max);
        return;
    }
    if (c.state == TcpState::SynSent || c.state == TcpState::SynReceived) {
        if (write_timeout(c, now)) {
            return;
        }
        ++c.retransmits;
        ++counters_.syn_retransmits;
        c.rtt.backoff();
        if (c.state == TcpState::SynSent) {
            send_syn(c, now);
        } else {
            send_syn_ack(c, now);
        }
        c.retransmit_at = now + c.rtt.rto();
        return;
    }
    if (c.outstanding() == 0 || c.sent.empty()) {
        return;
    }
    // tcp_retransmit_timer(): give up first, else retransmit the head.
    if (write_timeout(c, now)) {
        return;
    }
    ++counters_.rto_timeouts;
    // tcp_enter_loss(): RFC 5681 §3.1 (ssthresh, cwnd = 1 segment); every
    // segment not SACKed is presumed lost and goes again in order.
    c.cc->on_rto(c.outstanding(), now);
    c.ca_state = CaState::Loss;
    c.recover = c.snd_nxt;
    c.dupacks = 0;
    if (!c.sack_ok) {
        c.sacked_out = 0;
    }
    for (SentSegment& s : c.sent) {
        if (s.retrans_in_flight) {
            account(c, s, false);
            s.retrans_in_flight = false;
            account(c, s, true);
        }
        set_lost(c, s);
    }
    c.force_retransmit = true;
    // RFC 6298 §5.5: "The host MUST set RTO <- RTO * 2 ("back off the
    // timer")"; §5.6: "Start the retransmission timer".
    c.rtt.backoff();
    ++c.retransmits;
    c.retransmit_at.reset();
    transmit(c, now);
    c.retransmit_at.reset();
    arm_rto_if_idle(c, now);
}

void TcpEngine::persist_timer(Conn& c, Instant now) {
    // tcp_probe_timer(): nothing to probe for once data is in flight or the
    // queue is empty.
    const bool pending = c.unsent_bytes() > 0 || (c.fin_queued && !c.fin_sent);
    if (c.outstanding() > 0 || !pending) {
        c.probes_out = 0;
        return;
    }
    // TCP_USER_TIMEOUT bounds the probing; otherwise tcp_retries2 probes
    // (tcp_orphan_retries for an orphan) without an answer.
    if (c.user_timeout > Duration::zero() && c.probes_out > 0 && c.retrans_stamp &&
        now - *c.retrans_stamp >= c.user_timeout) {
        write_error(c, now);
        return;
    }
    const unsigned max_probes = c.orphan ? config_.orphan_retries : config_.retries2;
    if (c.probes_out >= max_probes) {
        write_error(c, now);
        return;
    }
    // tcp_send_probe0().
    if (c.probes_out == 0) {
        c.retrans_stamp = now;  // icsk_probes_tstamp
    }
    send_probe(c, now);
    if (c.outstanding() > 0) {
        // The probe carried data the window had room for: the
        // retransmission timer takes over.
        c.probes_out = 0;
        return;
    }
    ++c.probes_out;
    ++counters_.zero_window_probes;
    c.rtt.backoff();
    // tcp_probe0_when(): max(RTO, TCP_RTO_MIN) doubled per probe, at most
    // TCP_RTO_MAX.
    c.persist_at = now + std::min(std::max(c.rtt.rto(), rto_min), rto_max);
}

void TcpEngine::delack_timer(Conn& c, Instant now) {
    // tcp_delack_timer_handler().
    if (!c.ack_pending) {
        return;
    }
    // "Delayed ACK missed: leave pingpong mode".
    c.pingpong = false;
    ++counters_.delayed_acks;
    send_ack(c, now);
}

void TcpEngine::reset_keepalive(Conn& c, Instant now) {
    c.keepalive_at = now + c.keepalive_idle;
}

void TcpEngine::keepalive_timer(Conn& c, Instant now) {
    // tcp_keepalive_timer().
    if (!c.keepalive || c.state == TcpState::Closed || c.state == TcpState::Listen ||
        c.state == TcpState::SynSent || c.state == TcpState::SynReceived) {
        return;
    }
    // "It is alive without keepalive 8)": data in flight or queued means
    // the retransmission or probe timers watch the peer.
    if (c.outstanding() > 0 || c.unsent_bytes() > 0) {
        c.keepalive_at = now + c.keepalive_idle;
        return;
    }
    const Duration elapsed = now - c.last_received;
    if (elapsed >= c.keepalive_idle) {
        const bool user_timed_out =
            c.user_timeout > Duration::zero() && elapsed >= c.user_timeout && c.probes_out > 0;
        if (user_timed_out || (c.user_timeout == Duration::zero() && c.probes_out >= c.keepalive_probes)) {
            // RFC 1122 §4.2.3.6: the peer is dead. Linux resets and reports
            // ETIMEDOUT.
            send_active_reset(c, now);
            ++counters_.keepalive_timeouts;
            write_error(c, now);
            return;
        }
        send_probe(c, now);
        ++c.probes_out;
        ++counters_.keepalive_probes;
        c.keepalive_at = now + c.keepalive_interval;
        return;
    }
    c.keepalive_at = now + (c.keepalive_idle - elapsed);
}

}  // namespace ustack::tcp
