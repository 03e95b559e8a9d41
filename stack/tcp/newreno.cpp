#include "stack/tcp/newreno.h"

#include <algorithm>

namespace ustack::tcp {

void NewReno::init(uint32_t mss, Instant /*now*/) {
    mss_ = std::max<uint32_t>(mss, 1);
    cwnd_ = static_cast<uint32_t>(
        std::min<uint64_t>(uint64_t{initial_window_segments} * mss_, max_cwnd));
    ssthresh_ = UINT32_MAX;
    bytes_acked_ = 0;
    in_rto_loss_ = false;
}

void NewReno::on_ack(uint32_t acked_bytes, uint32_t /*bytes_in_flight*/, Duration /*rtt*/,
                     Instant /*now*/) {
    if (acked_bytes == 0) {
        return;
    }
    in_rto_loss_ = false;

    if (cwnd_ < ssthresh_) {
        // Slow start, RFC 5681 §3.1 eq. (2) with RFC 3465 §2.2 L = 2*SMSS,
        // and never past ssthresh in one step.
        const uint32_t room = ssthresh_ - cwnd_;
        const uint32_t used = std::min({acked_bytes, abc_limit_segments * mss_, room});
        cwnd_ = std::min(cwnd_ + used, max_cwnd);
        if (cwnd_ < ssthresh_) {
            return;
        }
        // Crossed into congestion avoidance: what slow start did not use
        // counts there (as Linux's tcp_slow_start hands back the rest).
        acked_bytes -= used;
        if (acked_bytes == 0) {
            return;
        }
    }

    // Congestion avoidance with byte counting (RFC 3465 §2.1, the
    // byte-exact form of RFC 5681 eq. (3) cwnd += SMSS*SMSS/cwnd): one SMSS
    // per cwnd of acknowledged bytes, i.e. one SMSS per RTT however the
    // receiver spaces its ACKs.
    bytes_acked_ += acked_bytes;
    if (bytes_acked_ >= cwnd_) {
        bytes_acked_ -= cwnd_;
        cwnd_ = std::min(cwnd_ + mss_, max_cwnd);
    }
}

uint32_t NewReno::loss_ssthresh(uint32_t bytes_in_flight) const {
    return std::max(bytes_in_flight / 2, 2 * mss_);
}

void NewReno::on_enter_recovery(uint32_t bytes_in_flight, Instant /*now*/) {
    // RFC 5681 §3.2 step 2 / RFC 6582 §3.2 step 2. The "+ 3*SMSS" inflation
    // and per-dupack inflation are the connection's, per the interface.
    ssthresh_ = loss_ssthresh(bytes_in_flight);
    cwnd_ = ssthresh_;
    bytes_acked_ = 0;
    in_rto_loss_ = false;
}

void NewReno::on_exit_recovery(Instant /*now*/) {
    // RFC 6582 §3.2 step 3, full acknowledgment: "Set cwnd to ssthresh"
    // (deflate the window).
    cwnd_ = ssthresh_;
    bytes_acked_ = 0;
}

void NewReno::on_rto(uint32_t bytes_in_flight, Instant /*now*/) {
    // RFC 5681 §3.1: eq. (4) on the first timeout of this data only; a
    // segment timing out again keeps ssthresh, else repeated timeouts would
    // drive it to 2*SMSS from a flight of one segment.
    if (!in_rto_loss_) {
        ssthresh_ = loss_ssthresh(bytes_in_flight);
    }
    // Loss window LW = 1 SMSS.
    cwnd_ = mss_;
    bytes_acked_ = 0;
    in_rto_loss_ = true;
}

uint32_t NewReno::cwnd() const {
    return cwnd_;
}

uint32_t NewReno::ssthresh() const {
    return ssthresh_;
}

std::string_view NewReno::name() const {
    return "newreno";
}

}  // namespace ustack::tcp
