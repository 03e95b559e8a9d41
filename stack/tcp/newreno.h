#pragma once
// NewReno congestion control: RFC 5681 slow start and congestion avoidance
// with RFC 3465 byte counting, RFC 6928 initial window, and the RFC 6582
// window handling at the edges of fast recovery (the recovery itself —
// partial ACKs, window inflation — belongs to the connection).
#include <cstdint>
#include <string_view>

#include "stack/tcp/congestion.h"

namespace ustack::tcp {

class NewReno final : public CongestionControl {
public:
    // RFC 6928 (and Linux's TCP_INIT_CWND): 10 segments.
    static constexpr uint32_t initial_window_segments = 10;
    // RFC 3465 §2.2: slow start counts at most L = 2*SMSS per ACK.
    static constexpr uint32_t abc_limit_segments = 2;
    // No window can exceed 2^30 bytes (RFC 7323 §2.3, shift 14), so a larger
    // cwnd is meaningless; the cap also keeps the arithmetic in range.
    static constexpr uint32_t max_cwnd = 1u << 30;

    NewReno() = default;

    void init(uint32_t mss, Instant now) override;
    void on_ack(uint32_t acked_bytes, uint32_t bytes_in_flight, Duration rtt, Instant now) override;
    void on_enter_recovery(uint32_t bytes_in_flight, Instant now) override;
    void on_exit_recovery(Instant now) override;
    void on_rto(uint32_t bytes_in_flight, Instant now) override;

    uint32_t cwnd() const override;
    uint32_t ssthresh() const override;
    std::string_view name() const override;

private:
    // RFC 5681 eq. (4): ssthresh = max(FlightSize / 2, 2*SMSS).
    uint32_t loss_ssthresh(uint32_t bytes_in_flight) const;

    uint32_t mss_ = 536;  // RFC 9293 §3.7.1 default until init()
    uint32_t cwnd_ = initial_window_segments * 536;
    // RFC 5681 §3.1: initial ssthresh "arbitrarily high".
    uint32_t ssthresh_ = UINT32_MAX;
    // RFC 3465 §2.1 bytes_acked, the congestion avoidance byte counter.
    uint64_t bytes_acked_ = 0;
    // True from an RTO until new data is acknowledged: a repeated timeout of
    // the same data keeps ssthresh (RFC 5681 §3.1, after eq. (4)).
    bool in_rto_loss_ = false;
};

}  // namespace ustack::tcp
