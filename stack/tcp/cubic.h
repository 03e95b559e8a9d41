#pragma once
// CUBIC congestion control, RFC 9438 (Linux's default). Windows are kept in
// bytes; the cubic function itself is evaluated in segments, the unit in
// which C = 0.4 is defined (RFC 9438 §5.1). Time comes only from the `now`
// arguments. Slow start is Reno's (RFC 9438 §4.10) without HyStart++.
#include <cstdint>
#include <string_view>

#include "stack/tcp/congestion.h"

namespace ustack::tcp {

class Cubic final : public CongestionControl {
public:
    static constexpr double c = 0.4;            // RFC 9438 §4.1, segments/s^3
    static constexpr double beta_cubic = 0.7;   // RFC 9438 §4.1
    // RFC 9438 §4.3: makes AIMD(alpha, 0.7) as fast on average as Reno's
    // AIMD(1, 0.5).
    static constexpr double alpha_cubic = 3.0 * (1.0 - beta_cubic) / (1.0 + beta_cubic);
    static constexpr uint32_t initial_window_segments = 10;  // RFC 6928
    static constexpr uint32_t abc_limit_segments = 2;        // RFC 3465 §2.2
    static constexpr uint32_t max_cwnd = 1u << 30;           // RFC 7323 §2.3 window bound

    Cubic() = default;

    void init(uint32_t mss, Instant now) override;
    void on_ack(uint32_t acked_bytes, uint32_t bytes_in_flight, Duration rtt, Instant now) override;
    void on_enter_recovery(uint32_t bytes_in_flight, Instant now) override;
    void on_exit_recovery(Instant now) override;
    void on_rto(uint32_t bytes_in_flight, Instant now) override;

    uint32_t cwnd() const override;
    uint32_t ssthresh() const override;
    std::string_view name() const override;

    // Introspection, for tests and diagnostics.
    double w_max_bytes() const { return w_max_; }
    // K in seconds for the current congestion avoidance epoch; meaningful
    // once the first ACK after slow start / recovery has started the epoch.
    double k_seconds() const { return k_; }
    bool epoch_started() const { return epoch_started_; }
    double w_est_bytes() const { return w_est_; }
    Duration smoothed_rtt() const { return srtt_; }

private:
    void update_rtt(Duration rtt);
    // Returns the acked bytes slow start did not use (non-zero only when
    // cwnd reached ssthresh on this ACK).
    uint32_t slow_start(uint32_t acked_bytes);
    void congestion_avoidance(uint32_t acked_bytes, Instant now);
    // RFC 9438 §4.6/§4.7: ssthresh and W_max at a congestion event.
    void congestion_event(uint32_t bytes_in_flight);
    // W_cubic(t) of RFC 9438 §4.2 eq. (1), in bytes.
    double w_cubic(double t_seconds) const;

    double mss_ = 536.0;
    double cwnd_ = initial_window_segments * 536.0;
    uint32_t ssthresh_ = UINT32_MAX;  // RFC 5681 §3.1: arbitrarily high

    double w_max_ = 0.0;       // cwnd just before the last reduction (after fast convergence)
    double cwnd_prior_ = 0.0;  // cwnd when ssthresh was last set (§4.3 alpha switch)
    double w_est_ = 0.0;       // Reno-friendly estimate (§4.3)
    double k_ = 0.0;           // seconds (§4.2 eq. (2))
    double origin_ = 0.0;      // the plateau the cubic curve is centred on
    Instant epoch_start_;
    bool epoch_started_ = false;
    Duration srtt_ = Duration::zero();  // RFC 9438 §4.2 "RTT": smoothed, from on_ack samples
    bool in_rto_loss_ = false;          // as NewReno: repeated RTO keeps ssthresh
};

}  // namespace ustack::tcp
