#include "stack/tcp/cubic.h"

#include <algorithm>
#include <cmath>

namespace ustack::tcp {

namespace {

double seconds(Duration d) {
    return static_cast<double>(d.micros()) / 1e6;
}

}  // namespace

void Cubic::init(uint32_t mss, Instant /*now*/) {
    mss_ = static_cast<double>(std::max<uint32_t>(mss, 1));
    cwnd_ = std::min(initial_window_segments * mss_, static_cast<double>(max_cwnd));
    ssthresh_ = UINT32_MAX;
    w_max_ = 0.0;
    cwnd_prior_ = 0.0;
    w_est_ = 0.0;
    k_ = 0.0;
    origin_ = 0.0;
    epoch_started_ = false;
    srtt_ = Duration::zero();
    in_rto_loss_ = false;
}

void Cubic::update_rtt(Duration rtt) {
    if (rtt <= Duration::zero()) {
        return;  // "latest sample or zero": zero means no new sample
    }
    // Bound the sample so the weighted sum cannot overflow.
    rtt = std::min(rtt, Duration::from_secs(120));
    // RFC 6298 §2.3 weighting (alpha = 1/8) for the "smoothed round-trip
    // time" RFC 9438 §4.2 uses in W_cubic(t + RTT).
    srtt_ = srtt_ == Duration::zero() ? rtt : (srtt_ * 7 + rtt) / 8;
}

uint32_t Cubic::slow_start(uint32_t acked_bytes) {
    // As NewReno: RFC 5681 §3.1 eq. (2) with RFC 3465 L = 2*SMSS, not past
    // ssthresh in one step.
    const double room = static_cast<double>(ssthresh_) - cwnd_;
    const double used = std::min({static_cast<double>(acked_bytes), abc_limit_segments * mss_, room});
    cwnd_ = std::min(cwnd_ + used, static_cast<double>(max_cwnd));
    if (cwnd_ < static_cast<double>(ssthresh_)) {
        return 0;
    }
    return acked_bytes - static_cast<uint32_t>(used);
}

double Cubic::w_cubic(double t_seconds) const {
    const double d = t_seconds - k_;
    return origin_ + c * d * d * d * mss_;
}

void Cubic::on_ack(uint32_t acked_bytes, uint32_t /*bytes_in_flight*/, Duration rtt, Instant now) {
    update_rtt(rtt);
    if (acked_bytes == 0) {
        return;
    }
    in_rto_loss_ = false;

    if (cwnd_ < static_cast<double>(ssthresh_)) {
        acked_bytes = slow_start(acked_bytes);
        if (acked_bytes == 0) {
            return;
        }
    }
    congestion_avoidance(acked_bytes, now);
}

void Cubic::congestion_avoidance(uint32_t acked_bytes, Instant now) {
    if (!epoch_started_) {
        // RFC 9438 §4.2: a congestion avoidance stage starts; t counts from
        // here (after recovery, not at the loss, as Linux's epoch_start).
        epoch_started_ = true;
        epoch_start_ = now;
        if (w_max_ > cwnd_) {
            // eq. (2): K = cbrt((W_max - cwnd_epoch) / C), in segments; right
            // after a loss this is cbrt(W_max * (1 - beta_cubic) / C).
            k_ = std::cbrt((w_max_ - cwnd_) / mss_ / c);
            origin_ = w_max_;
        } else {
            // No plateau above us (first stage, or after an RTO, §4.8): K = 0
            // and W_max = cwnd at the start of the stage, i.e. convex from
            // here.
            k_ = 0.0;
            origin_ = cwnd_;
        }
        // §4.3: W_est starts at cwnd_epoch.
        w_est_ = cwnd_;
    }

    // §4.3 Reno-friendly estimate, byte-counted: alpha_cubic * SMSS per
    // cwnd of acknowledged bytes, and alpha = 1 once W_est has regained the
    // cwnd at the last reduction (cwnd_prior).
    const double alpha = w_est_ >= cwnd_prior_ ? 1.0 : alpha_cubic;
    w_est_ += alpha * static_cast<double>(acked_bytes) * mss_ / cwnd_;

    const double t = seconds(now - epoch_start_);
    if (w_cubic(t) < w_est_) {
        // §4.3: Reno-friendly region, cwnd = W_est. Never shrink on an ACK
        // (cwnd can sit slightly above W_cubic(t) because of the +RTT
        // look-ahead below).
        cwnd_ = std::max(cwnd_, w_est_);
    } else {
        // §4.4 (concave, cwnd < W_max) and §4.5 (convex): aim at the curve
        // one RTT ahead, bounded to [cwnd, 1.5 cwnd], and close the gap by
        // (target - cwnd)/cwnd per acknowledged segment.
        double target = w_cubic(t + seconds(srtt_));
        target = std::clamp(target, cwnd_, 1.5 * cwnd_);
        cwnd_ += (target - cwnd_) / cwnd_ * static_cast<double>(acked_bytes);
    }
    cwnd_ = std::min(cwnd_, static_cast<double>(max_cwnd));
}

void Cubic::congestion_event(uint32_t bytes_in_flight) {
    // §4.7 fast convergence: a loss below the previous plateau means
    // another flow is taking bandwidth, so give more of it up.
    if (cwnd_ < w_max_) {
        w_max_ = cwnd_ * (1.0 + beta_cubic) / 2.0;
    } else {
        w_max_ = cwnd_;
    }
    cwnd_prior_ = cwnd_;
    // §4.6: ssthresh = flight_size * beta_cubic, at least 2 segments. The
    // RFC's pseudocode uses flight_size; using it also keeps an app-limited
    // sender from keeping an inflated window.
    const double reduced = static_cast<double>(bytes_in_flight) * beta_cubic;
    ssthresh_ = static_cast<uint32_t>(std::max(reduced, 2.0 * mss_));
}

void Cubic::on_enter_recovery(uint32_t bytes_in_flight, Instant /*now*/) {
    congestion_event(bytes_in_flight);
    // §4.6: cwnd = max(ssthresh, 2 segments); ssthresh already has the floor.
    cwnd_ = static_cast<double>(ssthresh_);
    epoch_started_ = false;
    in_rto_loss_ = false;
}

void Cubic::on_exit_recovery(Instant /*now*/) {
    // RFC 6582 §3.2 step 3: deflate to ssthresh. The new epoch starts at the
    // next on_ack().
    cwnd_ = static_cast<double>(ssthresh_);
    epoch_started_ = false;
}

void Cubic::on_rto(uint32_t bytes_in_flight, Instant /*now*/) {
    // §4.8: reduce cwnd as Reno does (1 SMSS) but set ssthresh with
    // beta_cubic as in §4.6; a repeated timeout of the same data keeps
    // ssthresh (RFC 5681 §3.1).
    if (!in_rto_loss_) {
        congestion_event(bytes_in_flight);
    }
    cwnd_ = mss_;
    // §4.8: the first congestion avoidance stage after a timeout uses K = 0
    // and W_max = cwnd at its start, so the old plateau is forgotten (as
    // Linux's bictcp_reset on TCP_CA_Loss).
    w_max_ = 0.0;
    epoch_started_ = false;
    in_rto_loss_ = true;
}

uint32_t Cubic::cwnd() const {
    return static_cast<uint32_t>(cwnd_);
}

uint32_t Cubic::ssthresh() const {
    return ssthresh_;
}

std::string_view Cubic::name() const {
    return "cubic";
}

}  // namespace ustack::tcp
