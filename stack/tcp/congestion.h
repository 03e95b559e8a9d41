#pragma once
// Congestion control behind one interface; the connection calls it and
// reads cwnd/ssthresh. NewReno (RFC 5681 + RFC 6582 window handling) and
// CUBIC (RFC 9438, the default, as on Linux). Units are bytes.
#include <cstdint>
#include <memory>
#include <string_view>

#include "stack/core/time.h"

namespace ustack::tcp {

enum class CongestionAlgorithm { NewReno, Cubic };

class CongestionControl {
public:
    virtual ~CongestionControl() = default;

    // Connection established; initial window per RFC 6928 (10 * mss).
    virtual void init(uint32_t mss, Instant now) = 0;
    // New data acknowledged outside recovery. rtt: latest sample or zero.
    virtual void on_ack(uint32_t acked_bytes, uint32_t bytes_in_flight, Duration rtt, Instant now) = 0;
    // Fast retransmit: entering loss recovery (3 dupacks or SACK loss).
    // Sets ssthresh; cwnd becomes ssthresh (the connection inflates as it
    // needs for NewReno recovery).
    virtual void on_enter_recovery(uint32_t bytes_in_flight, Instant now) = 0;
    // Recovery ended (full ACK of the recovery point).
    virtual void on_exit_recovery(Instant now) = 0;
    // Retransmission timeout: ssthresh from flight, cwnd = 1 mss (RFC 5681 §3.1).
    virtual void on_rto(uint32_t bytes_in_flight, Instant now) = 0;
    // Spurious/undo hooks can come later; keep the interface small.

    virtual uint32_t cwnd() const = 0;
    virtual uint32_t ssthresh() const = 0;
    virtual std::string_view name() const = 0;
};

std::unique_ptr<CongestionControl> make_congestion_control(CongestionAlgorithm algorithm);

}  // namespace ustack::tcp
