#pragma once
// Retransmission timeout per RFC 6298 with Linux's bounds: initial RTO 1 s,
// at least SRTT + 200 ms (TCP_RTO_MIN as the floor of the variance term,
// as tcp_rtt_estimator), maximum 120 s (TCP_RTO_MAX). Samples come
// from timestamps (RFC 7323 §4) or from un-retransmitted segments (Karn).
#include <cstdint>

#include "stack/core/time.h"

namespace ustack::tcp {

class RttEstimator {
public:
    static constexpr Duration initial_rto = Duration::from_secs(1);
    static constexpr Duration min_rto = Duration::from_millis(200);
    static constexpr Duration max_rto = Duration::from_secs(120);

    void sample(Duration rtt);       // RFC 6298 §2.2/2.3; clears backoff
    Duration rto() const;            // base RTO << backoff, clamped to max_rto
    void backoff();                  // RFC 6298 §5.5: double (bounded)
    void reset_backoff();
    unsigned backoff_count() const;
    bool has_sample() const;
    Duration srtt() const;           // zero before the first sample
    Duration rttvar() const;
    Duration min_rtt() const;        // smallest sample seen (for CUBIC/HyStart)

private:
    Duration srtt_ = Duration::zero();
    Duration rttvar_ = Duration::zero();
    Duration min_rtt_ = Duration::max();
    Duration base_rto_ = initial_rto;
    unsigned backoff_ = 0;
    bool has_sample_ = false;
};

}  // namespace ustack::tcp
