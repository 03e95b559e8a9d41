#include "stack/tcp/rtt_estimator.h"

#include <gtest/gtest.h>

namespace ustack::tcp {
namespace {

Duration us(int64_t v) {
    return Duration::from_micros(v);
}
Duration ms(int64_t v) {
    return Duration::from_millis(v);
}
Duration secs(int64_t v) {
    return Duration::from_secs(v);
}

TEST(RttEstimator, BeforeAnySample) {
    RttEstimator e;
    EXPECT_FALSE(e.has_sample());
    // RFC 6298 §2.1: initial RTO of 1 second.
    EXPECT_EQ(e.rto(), secs(1));
    EXPECT_EQ(e.srtt(), Duration::zero());
    EXPECT_EQ(e.rttvar(), Duration::zero());
    EXPECT_EQ(e.min_rtt(), Duration::zero());
    EXPECT_EQ(e.backoff_count(), 0u);
}

TEST(RttEstimator, FirstSample) {
    RttEstimator e;
    e.sample(ms(100));
    EXPECT_TRUE(e.has_sample());
    // RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + max(G, 4*RTTVAR).
    EXPECT_EQ(e.srtt(), ms(100));
    EXPECT_EQ(e.rttvar(), ms(50));
    EXPECT_EQ(e.rto(), ms(300));
    EXPECT_EQ(e.min_rtt(), ms(100));
}

TEST(RttEstimator, SubsequentSamplesMatchHandComputation) {
    RttEstimator e;
    e.sample(ms(100));
    // RFC 6298 §2.3, R' = 200 ms:
    //   RTTVAR = 3/4 * 50 + 1/4 * |100 - 200| = 62.5 ms
    //   SRTT   = 7/8 * 100 + 1/8 * 200        = 112.5 ms
    //   RTO    = 112.5 + 4 * 62.5             = 362.5 ms
    e.sample(ms(200));
    EXPECT_EQ(e.rttvar(), us(62500));
    EXPECT_EQ(e.srtt(), us(112500));
    EXPECT_EQ(e.rto(), us(362500));
    // R' = 80 ms (RTTVAR uses the SRTT before this sample):
    //   RTTVAR = 3/4 * 62.5 + 1/4 * |112.5 - 80| = 55 ms
    //   SRTT   = 7/8 * 112.5 + 1/8 * 80          = 108.4375 ms (108437 us)
    //   RTO    = 108.437 + 220                   = 328.437 ms
    e.sample(ms(80));
    EXPECT_EQ(e.rttvar(), us(55000));
    EXPECT_EQ(e.srtt(), us(108437));
    EXPECT_EQ(e.rto(), us(328437));
    EXPECT_EQ(e.min_rtt(), ms(80));
}

TEST(RttEstimator, ConvergesToAStableRtt) {
    RttEstimator e;
    for (int i = 0; i < 200; ++i) {
        e.sample(ms(300));
    }
    EXPECT_EQ(e.srtt(), ms(300));
    // RTTVAR decays geometrically to zero; Linux's floor on the variance
    // term (rttvar_us >= TCP_RTO_MIN) keeps the RTO at SRTT + 200 ms.
    EXPECT_EQ(e.rttvar(), Duration::zero());
    EXPECT_EQ(e.rto(), ms(500));
}

TEST(RttEstimator, ClampedToMinimum) {
    RttEstimator e;
    e.sample(ms(1));  // 1 + max(4 * 0.5, 200) ms: the floor is on the variance term
    EXPECT_EQ(e.rto(), ms(201));
    RttEstimator zero;
    zero.sample(Duration::zero());  // same-tick timestamp echo
    EXPECT_EQ(zero.srtt(), Duration::zero());
    EXPECT_EQ(zero.rto(), ms(200));
}

TEST(RttEstimator, ClampedToMaximum) {
    RttEstimator e;
    e.sample(secs(100));  // 100 + 4 * 50 = 300 s
    EXPECT_EQ(e.rto(), RttEstimator::max_rto);
    EXPECT_EQ(e.rto(), secs(120));
}

TEST(RttEstimator, AbsurdSamplesAreClamped) {
    RttEstimator e;
    e.sample(Duration::zero() - ms(5));
    EXPECT_EQ(e.srtt(), Duration::zero());
    RttEstimator big;
    big.sample(Duration::max());
    EXPECT_EQ(big.srtt(), RttEstimator::max_rto);
    EXPECT_EQ(big.rto(), RttEstimator::max_rto);
    big.sample(Duration::max());  // the weighted sums must not overflow
    EXPECT_EQ(big.srtt(), RttEstimator::max_rto);
}

TEST(RttEstimator, BackoffDoublesUpToMaximum) {
    RttEstimator e;  // base 1 s
    const int64_t expected_secs[] = {1, 2, 4, 8, 16, 32, 64, 120, 120, 120};
    for (int i = 0; i < 10; ++i) {
        EXPECT_EQ(e.backoff_count(), static_cast<unsigned>(i));
        EXPECT_EQ(e.rto(), secs(expected_secs[i])) << "after " << i << " backoffs";
        e.backoff();
    }
}

TEST(RttEstimator, BackoffCountKeepsCountingPastTheCap) {
    RttEstimator e;
    for (int i = 0; i < 100; ++i) {
        e.backoff();
    }
    EXPECT_EQ(e.backoff_count(), 100u);
    EXPECT_EQ(e.rto(), secs(120));
}

TEST(RttEstimator, BackoffFromMeasuredRto) {
    RttEstimator e;
    e.sample(ms(100));  // 300 ms
    e.backoff();
    EXPECT_EQ(e.rto(), ms(600));
    e.backoff();
    EXPECT_EQ(e.rto(), ms(1200));
}

TEST(RttEstimator, SampleClearsBackoff) {
    RttEstimator e;
    e.backoff();
    e.backoff();
    EXPECT_EQ(e.rto(), secs(4));
    e.sample(ms(100));
    EXPECT_EQ(e.backoff_count(), 0u);
    EXPECT_EQ(e.rto(), ms(300));
}

TEST(RttEstimator, ResetBackoffKeepsEstimate) {
    RttEstimator e;
    e.sample(ms(100));
    e.backoff();
    e.reset_backoff();
    EXPECT_EQ(e.backoff_count(), 0u);
    EXPECT_EQ(e.rto(), ms(300));
    EXPECT_EQ(e.srtt(), ms(100));
}

TEST(RttEstimator, MinRttTracksSmallest) {
    RttEstimator e;
    e.sample(ms(50));
    e.sample(ms(30));
    e.sample(ms(70));
    EXPECT_EQ(e.min_rtt(), ms(30));
}

}  // namespace
}  // namespace ustack::tcp
