#include "stack/tcp/rtt_estimator.h"

#include <algorithm>
#include <climits>

namespace ustack::tcp {

namespace {

// RFC 6298 §2: G, the clock granularity. Our clock has microsecond
// resolution, but timestamps (RFC 7323) tick in milliseconds, so 1 ms.
constexpr Duration clock_granularity = Duration::from_millis(1);

Duration abs_duration(Duration d) {
    return d < Duration::zero() ? Duration::zero() - d : d;
}

}  // namespace

void RttEstimator::sample(Duration rtt) {
    // A negative sample is a caller bug (clock went backwards); a sample
    // above max_rto cannot move the clamped RTO any further but could
    // overflow the weighted sums below, so both are clamped.
    rtt = std::clamp(rtt, Duration::zero(), max_rto);

    if (!has_sample_) {
        // RFC 6298 §2.2: first measurement R.
        srtt_ = rtt;
        rttvar_ = rtt / 2;
        has_sample_ = true;
    } else {
        // RFC 6298 §2.3 with alpha = 1/8, beta = 1/4. RTTVAR is updated
        // first, from the SRTT before this sample, as the RFC orders it.
        rttvar_ = (rttvar_ * 3 + abs_duration(srtt_ - rtt)) / 4;
        srtt_ = (srtt_ * 7 + rtt) / 8;
    }
    min_rtt_ = std::min(min_rtt_, rtt);

    // RTO = SRTT + max(G, K*RTTVAR), K = 4. RFC 6298 §2.4 asks for a 1 s
    // floor on the RTO; Linux puts its 200 ms floor (TCP_RTO_MIN) on the
    // variance term instead (tcp_rtt_estimator keeps rttvar_us >=
    // tcp_rto_min_us; __tcp_set_rto is srtt + rttvar), so the RTO is never
    // less than SRTT + 200 ms: 220 ms on a 20 ms path, not 200 ms. We do
    // the same, so timeouts (and tcp_retries2's give-up instant) fall
    // where Linux's do. §2.5 allows a maximum of at least 60 s; Linux's
    // TCP_RTO_MAX is 120 s.
    base_rto_ = std::min(srtt_ + std::max({clock_granularity, rttvar_ * 4, min_rto}), max_rto);

    // A fresh sample means the path answers again: RFC 6298 §5.7 recomputes
    // the RTO from it rather than keeping the backed-off value.
    backoff_ = 0;
}

Duration RttEstimator::rto() const {
    // Double per backoff, stopping as soon as the cap is reached so the
    // shift never overflows however many backoffs were counted.
    Duration rto = base_rto_;
    for (unsigned i = 0; i < backoff_ && rto < max_rto; ++i) {
        rto = rto * 2;
    }
    return std::min(rto, max_rto);
}

void RttEstimator::backoff() {
    // RFC 6298 §5.5. The count keeps going past the point where the RTO hits
    // max_rto so the connection can use it as its retransmission count
    // (Linux's tcp_retries2); it only saturates.
    if (backoff_ < UINT_MAX) {
        ++backoff_;
    }
}

void RttEstimator::reset_backoff() {
    backoff_ = 0;
}

unsigned RttEstimator::backoff_count() const {
    return backoff_;
}

bool RttEstimator::has_sample() const {
    return has_sample_;
}

Duration RttEstimator::srtt() const {
    return srtt_;
}

Duration RttEstimator::rttvar() const {
    return rttvar_;
}

Duration RttEstimator::min_rtt() const {
    // Zero before the first sample, like srtt()/rttvar(), rather than the
    // internal "no sample yet" sentinel.
    return has_sample_ ? min_rtt_ : Duration::zero();
}

}  // namespace ustack::tcp
