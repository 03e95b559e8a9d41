#include "stack/tcp/congestion.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "stack/tcp/cubic.h"
#include "stack/tcp/newreno.h"

namespace ustack::tcp {
namespace {

constexpr uint32_t mss = 1000;
const Duration no_rtt = Duration::zero();

Instant at_ms(int64_t v) {
    return Instant::from_millis(v);
}

// Acknowledges one window's worth of data in `per_ack`-byte ACKs spread
// evenly over one RTT (an ACK clock), starting at `now`; returns the time at
// the end of the round. Every ACK carries the RTT as its sample.
Instant ack_one_round(CongestionControl& cc, Instant now, Duration rtt, uint32_t per_ack = mss) {
    const uint32_t window = cc.cwnd();
    const uint32_t acks = std::max<uint32_t>(window / per_ack, 1);
    const Duration step = rtt / acks;
    for (uint32_t i = 0; i < acks; ++i) {
        now += step;
        cc.on_ack(per_ack, window, rtt, now);
    }
    return now;
}

// ---------------------------------------------------------------- factory

TEST(CongestionFactory, MakesEachAlgorithm) {
    auto reno = make_congestion_control(CongestionAlgorithm::NewReno);
    auto cubic = make_congestion_control(CongestionAlgorithm::Cubic);
    ASSERT_NE(reno, nullptr);
    ASSERT_NE(cubic, nullptr);
    EXPECT_EQ(reno->name(), "newreno");
    EXPECT_EQ(cubic->name(), "cubic");
}

TEST(CongestionFactory, UsableBeforeInit) {
    // A connection may read cwnd before establishment; it must be sane.
    for (auto algorithm : {CongestionAlgorithm::NewReno, CongestionAlgorithm::Cubic}) {
        auto cc = make_congestion_control(algorithm);
        EXPECT_GT(cc->cwnd(), 0u);
        EXPECT_EQ(cc->ssthresh(), UINT32_MAX);
    }
}

// ---------------------------------------------------------------- NewReno

TEST(NewReno, InitialWindowIsTenSegments) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    EXPECT_EQ(cc.cwnd(), 10 * mss);  // RFC 6928
    EXPECT_EQ(cc.ssthresh(), UINT32_MAX);
    cc.init(1460, at_ms(0));
    EXPECT_EQ(cc.cwnd(), 14600u);
}

TEST(NewReno, SlowStartGrowsBySegmentPerAck) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_ack(mss, 10 * mss, no_rtt, at_ms(1));
    EXPECT_EQ(cc.cwnd(), 11 * mss);
    cc.on_ack(500, 10 * mss, no_rtt, at_ms(2));  // byte counting: partial segment
    EXPECT_EQ(cc.cwnd(), 11 * mss + 500);
}

TEST(NewReno, SlowStartAbcLimitsToTwoSegmentsPerAck) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_ack(2 * mss, 10 * mss, no_rtt, at_ms(1));  // a delayed ACK
    EXPECT_EQ(cc.cwnd(), 12 * mss);
    cc.on_ack(5 * mss, 10 * mss, no_rtt, at_ms(2));  // stretch ACK: L = 2*SMSS
    EXPECT_EQ(cc.cwnd(), 14 * mss);
}

TEST(NewReno, SlowStartDoublesPerRtt) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    Instant now = at_ms(0);
    now = ack_one_round(cc, now, Duration::from_millis(100));
    EXPECT_EQ(cc.cwnd(), 20 * mss);
    now = ack_one_round(cc, now, Duration::from_millis(100));
    EXPECT_EQ(cc.cwnd(), 40 * mss);
    // Delayed ACKs (2 segments each) still double: ABC (RFC 3465 §2.2).
    ack_one_round(cc, now, Duration::from_millis(100), 2 * mss);
    EXPECT_EQ(cc.cwnd(), 80 * mss);
}

TEST(NewReno, ZeroAckedBytesChangesNothing) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_ack(0, 10 * mss, no_rtt, at_ms(1));
    EXPECT_EQ(cc.cwnd(), 10 * mss);
}

TEST(NewReno, LossHalvesFlight) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_enter_recovery(40 * mss, at_ms(10));
    // RFC 5681 eq. (4): ssthresh = max(FlightSize/2, 2*SMSS); cwnd = ssthresh
    // per the interface (the connection inflates).
    EXPECT_EQ(cc.ssthresh(), 20 * mss);
    EXPECT_EQ(cc.cwnd(), 20 * mss);
    cc.on_exit_recovery(at_ms(20));
    EXPECT_EQ(cc.cwnd(), 20 * mss);
    EXPECT_EQ(cc.ssthresh(), 20 * mss);
}

TEST(NewReno, LossSsthreshFloorIsTwoSegments) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_enter_recovery(3 * mss, at_ms(10));
    EXPECT_EQ(cc.ssthresh(), 2 * mss);
    EXPECT_EQ(cc.cwnd(), 2 * mss);
}

TEST(NewReno, CongestionAvoidanceGrowsOneSegmentPerRtt) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_enter_recovery(40 * mss, at_ms(0));
    cc.on_exit_recovery(at_ms(0));
    ASSERT_EQ(cc.cwnd(), 20 * mss);
    Instant now = at_ms(0);
    now = ack_one_round(cc, now, Duration::from_millis(100));
    EXPECT_EQ(cc.cwnd(), 21 * mss);
    now = ack_one_round(cc, now, Duration::from_millis(100));
    EXPECT_EQ(cc.cwnd(), 22 * mss);
    // With delayed ACKs the growth is the same, unlike per-ACK counting.
    ack_one_round(cc, now, Duration::from_millis(100), 2 * mss);
    EXPECT_EQ(cc.cwnd(), 23 * mss);
}

TEST(NewReno, SlowStartStopsAtSsthreshAndCarriesTheRest) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_rto(30 * mss, at_ms(0));  // ssthresh 15 mss, cwnd 1 mss
    cc.on_ack(mss, mss, no_rtt, at_ms(1));
    EXPECT_EQ(cc.cwnd(), 2 * mss);
    for (int i = 0; i < 12; ++i) {
        cc.on_ack(mss, mss, no_rtt, at_ms(2 + i));
    }
    EXPECT_EQ(cc.cwnd(), 14 * mss);
    // 2 segments acknowledged: 1 reaches ssthresh, 1 goes to the CA counter.
    cc.on_ack(2 * mss, mss, no_rtt, at_ms(20));
    EXPECT_EQ(cc.cwnd(), 15 * mss);
    // 14 more segments complete one cwnd (15) of CA byte counting.
    for (int i = 0; i < 13; ++i) {
        cc.on_ack(mss, mss, no_rtt, at_ms(21 + i));
    }
    EXPECT_EQ(cc.cwnd(), 15 * mss);
    cc.on_ack(mss, mss, no_rtt, at_ms(40));
    EXPECT_EQ(cc.cwnd(), 16 * mss);
}

TEST(NewReno, RtoCollapsesToOneSegment) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_rto(30 * mss, at_ms(100));
    EXPECT_EQ(cc.cwnd(), mss);  // RFC 5681 §3.1 loss window
    EXPECT_EQ(cc.ssthresh(), 15 * mss);
}

TEST(NewReno, RepeatedRtoKeepsSsthresh) {
    NewReno cc;
    cc.init(mss, at_ms(0));
    cc.on_rto(30 * mss, at_ms(100));
    cc.on_rto(mss, at_ms(1100));  // the retransmission timed out too
    EXPECT_EQ(cc.ssthresh(), 15 * mss);
    EXPECT_EQ(cc.cwnd(), mss);
    // New data acknowledged: a later timeout is a new loss event.
    cc.on_ack(mss, mss, no_rtt, at_ms(1200));
    cc.on_rto(2 * mss, at_ms(2200));
    EXPECT_EQ(cc.ssthresh(), 2 * mss);
}

// ------------------------------------------------------------------ CUBIC

// Slow start to cwnd = segments*mss, then a fast-retransmit loss with the
// whole window in flight, then the end of recovery.
void grow_then_lose(Cubic& cc, uint32_t segments, Instant now) {
    cc.init(mss, now);
    while (cc.cwnd() < segments * mss) {
        cc.on_ack(mss, cc.cwnd(), no_rtt, now);
    }
    ASSERT_EQ(cc.cwnd(), segments * mss);
    cc.on_enter_recovery(cc.cwnd(), now);
    cc.on_exit_recovery(now);
}

double segments(uint32_t bytes) {
    return static_cast<double>(bytes) / mss;
}

// RFC 9438 eq. (1), in segments.
double w_cubic(double t, double k, double w_max) {
    return Cubic::c * std::pow(t - k, 3) + w_max;
}

TEST(Cubic, InitAndSlowStartAsReno) {
    Cubic cubic;
    NewReno reno;
    cubic.init(mss, at_ms(0));
    reno.init(mss, at_ms(0));
    EXPECT_EQ(cubic.cwnd(), 10 * mss);
    for (uint32_t acked : {mss, 2 * mss, 5 * mss, 300u}) {
        cubic.on_ack(acked, 10 * mss, Duration::from_millis(50), at_ms(1));
        reno.on_ack(acked, 10 * mss, Duration::from_millis(50), at_ms(1));
        EXPECT_EQ(cubic.cwnd(), reno.cwnd());
    }
}

TEST(Cubic, LossReducesToBetaTimesWmax) {
    Cubic cc;
    grow_then_lose(cc, 100, at_ms(0));
    // RFC 9438 §4.6/§4.7, first loss: W_max = cwnd, cwnd = ssthresh = 0.7 W_max.
    EXPECT_DOUBLE_EQ(cc.w_max_bytes(), 100.0 * mss);
    EXPECT_EQ(cc.ssthresh(), 70 * mss);
    EXPECT_EQ(cc.cwnd(), 70 * mss);
}

TEST(Cubic, SsthreshUsesFlightSize) {
    Cubic cc;
    cc.init(mss, at_ms(0));
    while (cc.cwnd() < 100 * mss) {
        cc.on_ack(mss, cc.cwnd(), no_rtt, at_ms(0));
    }
    cc.on_enter_recovery(60 * mss, at_ms(0));  // app-limited: 60 of 100 in flight
    EXPECT_EQ(cc.ssthresh(), 42 * mss);
    EXPECT_DOUBLE_EQ(cc.w_max_bytes(), 100.0 * mss);
    cc.on_enter_recovery(mss, at_ms(10));
    EXPECT_EQ(cc.ssthresh(), 2 * mss);  // floor
    EXPECT_EQ(cc.cwnd(), 2 * mss);
}

TEST(Cubic, FastConvergenceLowersWmax) {
    Cubic cc;
    grow_then_lose(cc, 100, at_ms(0));
    // Loss again at 80 segments, below the previous W_max of 100:
    // RFC 9438 §4.7 W_max = cwnd * (1 + beta) / 2 = 68.
    Instant now = at_ms(0);
    while (cc.cwnd() < 80 * mss) {
        now = ack_one_round(cc, now, Duration::from_millis(100));
    }
    const double at_loss = cc.cwnd();
    cc.on_enter_recovery(cc.cwnd(), now);
    EXPECT_NEAR(cc.w_max_bytes(), at_loss * 0.85, 1.0);
    EXPECT_NEAR(cc.cwnd(), at_loss * 0.7, 1.0);
}

TEST(Cubic, KFromWmaxAfterLoss) {
    Cubic cc;
    grow_then_lose(cc, 100, at_ms(0));
    EXPECT_FALSE(cc.epoch_started());
    cc.on_ack(mss, cc.cwnd(), Duration::from_millis(100), at_ms(1));
    ASSERT_TRUE(cc.epoch_started());
    // K = cbrt(W_max * (1 - beta) / C) = cbrt(100 * 0.3 / 0.4) = cbrt(75).
    EXPECT_NEAR(cc.k_seconds(), std::cbrt(75.0), 1e-9);
    EXPECT_NEAR(cc.k_seconds(), 4.2172, 1e-4);
}

// The canonical curve: concave up to W_max, a plateau around K, convex
// beyond. W_max = 1000 segments at RTT 100 ms keeps the cubic term above the
// Reno-friendly estimate for the whole run (W_est gains only 0.53 segments
// per RTT from 700), so this is §4.4/§4.5 alone; with W_max = 100 W_est
// would overtake the curve after ~6 s (see RenoFriendlyTakesOverAfterThePlateau).
TEST(Cubic, ConcaveToWmaxAroundKThenConvex) {
    Cubic cc;
    const Instant start = at_ms(1000);
    grow_then_lose(cc, 1000, start);
    ASSERT_EQ(cc.cwnd(), 700 * mss);
    const Duration rtt = Duration::from_millis(100);
    const double k = std::cbrt(750.0);  // 9.09 s

    // cwnd (segments) at the end of each 100 ms round, for 16 s.
    std::vector<double> by_round;
    Instant now = start;
    for (int round = 0; round < 160; ++round) {
        now = ack_one_round(cc, now, rtt);
        by_round.push_back(segments(cc.cwnd()));
        ASSERT_GT(w_cubic(0.1 * (round + 1), k, 1000.0), segments(static_cast<uint32_t>(cc.w_est_bytes())));
    }
    ASSERT_NEAR(cc.k_seconds(), k, 1e-9);

    // The window follows W_cubic(t): it aims one RTT ahead and closes most
    // of the gap within the RTT, so it stays within 0.5% of the curve.
    for (int round = 0; round < 160; ++round) {
        const double t = 0.1 * (round + 1);
        EXPECT_NEAR(by_round[round], w_cubic(t, k, 1000.0), 5.0) << "t=" << t;
    }

    // Around K the window is at W_max, and it did not overshoot on the way.
    const int k_round = static_cast<int>(std::lround(k * 10)) - 1;
    EXPECT_NEAR(by_round[k_round], 1000.0, 5.0);
    for (int round = 0; round < k_round - 10; ++round) {
        EXPECT_LT(by_round[round], 1000.0);
    }

    // Concave before K: growth per second shrinks. Convex after: it grows.
    auto growth = [&](int from_s, int to_s) { return by_round[to_s * 10 - 1] - by_round[from_s * 10 - 1]; };
    EXPECT_GT(growth(1, 2), growth(3, 4));
    EXPECT_GT(growth(3, 4), growth(5, 6));
    EXPECT_GT(growth(5, 6), growth(7, 8));
    EXPECT_LT(growth(10, 11), growth(12, 13));
    EXPECT_LT(growth(12, 13), growth(14, 15));
    EXPECT_GT(by_round.back(), 1100.0);  // well past W_max
}

TEST(Cubic, RenoFriendlyTakesOverAfterThePlateau) {
    // W_max = 100 at RTT 100 ms: W_est reaches cwnd_prior (100) after
    // ~5.7 s and then gains 1 segment per RTT, faster than the flat curve
    // near K = 4.2 s, so cwnd = max(W_cubic, W_est) switches region.
    Cubic cc;
    grow_then_lose(cc, 100, at_ms(0));
    const Duration rtt = Duration::from_millis(100);
    const double k = std::cbrt(75.0);
    Instant now = at_ms(0);
    double max_gap = 0.0;
    for (int round = 0; round < 80; ++round) {
        now = ack_one_round(cc, now, rtt);
        const double t = 0.1 * (round + 1);
        const double est = cc.w_est_bytes() / mss;
        const double expected = std::max(w_cubic(t, k, 100.0), est);
        max_gap = std::max(max_gap, std::abs(segments(cc.cwnd()) - expected));
        if (round == 39) {
            EXPECT_GT(w_cubic(t, k, 100.0), est) << "cubic region at 4 s";
        }
        if (round == 69) {
            EXPECT_LT(w_cubic(t, k, 100.0), est) << "Reno-friendly region at 7 s";
            EXPECT_NEAR(segments(cc.cwnd()), est, 1.0);
        }
    }
    EXPECT_LT(max_gap, 2.0);
}

TEST(Cubic, OnlyTheNowArgumentsMatter) {
    // Same ACK pattern at two different absolute times: same windows.
    Cubic a;
    Cubic b;
    grow_then_lose(a, 50, at_ms(0));
    grow_then_lose(b, 50, Instant::from_secs(86400));
    Instant ta = at_ms(0);
    Instant tb = Instant::from_secs(86400);
    for (int round = 0; round < 30; ++round) {
        ta = ack_one_round(a, ta, Duration::from_millis(40));
        tb = ack_one_round(b, tb, Duration::from_millis(40));
        ASSERT_EQ(a.cwnd(), b.cwnd());
    }
}

TEST(Cubic, RenoFriendlyRegionAtSmallRtt) {
    // With a 1 ms RTT the cubic curve (a function of seconds) barely moves
    // in 30 rounds, while Reno's AIMD grows per RTT: RFC 9438 §4.3 makes
    // cwnd follow W_est, which gains alpha_cubic = 0.529 segments per RTT
    // until it reaches cwnd_prior (100), then 1 segment per RTT.
    Cubic cc;
    grow_then_lose(cc, 100, at_ms(0));
    const Duration rtt = Duration::from_millis(1);
    Instant now = at_ms(0);
    for (int round = 0; round < 30; ++round) {
        now = ack_one_round(cc, now, rtt);
    }
    const double t = (now - at_ms(0)).micros() / 1e6;
    const double cubic = w_cubic(t, std::cbrt(75.0), 100.0);
    EXPECT_LT(cubic, 71.0);
    EXPECT_NEAR(segments(cc.cwnd()), 70.0 + 30 * Cubic::alpha_cubic, 1.0);
    EXPECT_NEAR(cc.w_est_bytes(), cc.cwnd(), 1.0);

    // Past cwnd_prior alpha becomes 1: 20 more rounds, ~20 more segments.
    while (cc.w_est_bytes() < 100.0 * mss) {
        now = ack_one_round(cc, now, rtt);
    }
    const double before = segments(cc.cwnd());
    for (int round = 0; round < 20; ++round) {
        now = ack_one_round(cc, now, rtt);
    }
    EXPECT_NEAR(segments(cc.cwnd()) - before, 20.0, 1.0);
    EXPECT_GT(segments(cc.cwnd()), w_cubic((now - at_ms(0)).micros() / 1e6, std::cbrt(75.0), 100.0));
}

TEST(Cubic, GrowthPerAckBoundedAfterLongIdle) {
    // RFC 9438 §4.4/§4.5: target is at most 1.5 cwnd, so one ACK of one
    // segment adds at most half a segment however far the curve has run.
    Cubic cc;
    grow_then_lose(cc, 100, at_ms(0));
    cc.on_ack(mss, cc.cwnd(), Duration::from_millis(100), at_ms(0));  // starts the epoch
    const uint32_t before = cc.cwnd();
    cc.on_ack(mss, cc.cwnd(), Duration::from_millis(100), Instant::from_secs(100));
    EXPECT_LE(cc.cwnd(), before + mss / 2 + 1);
    EXPECT_GE(cc.cwnd(), before + mss / 2 - 1);
}

TEST(Cubic, RtoCollapsesAndForgetsThePlateau) {
    Cubic cc;
    grow_then_lose(cc, 100, at_ms(0));
    Instant now = ack_one_round(cc, at_ms(0), Duration::from_millis(100));
    const uint32_t flight = cc.cwnd();
    cc.on_rto(flight, now);
    EXPECT_EQ(cc.cwnd(), mss);
    // RFC 9438 §4.8: ssthresh with beta_cubic, as for fast retransmit.
    EXPECT_EQ(cc.ssthresh(), static_cast<uint32_t>(flight * 0.7));
    // A repeated timeout keeps ssthresh (RFC 5681 §3.1).
    cc.on_rto(mss, now + Duration::from_secs(1));
    EXPECT_EQ(cc.ssthresh(), static_cast<uint32_t>(flight * 0.7));
    EXPECT_EQ(cc.w_max_bytes(), 0.0);

    // Slow start back to ssthresh, then the first CA epoch starts with K = 0
    // and W_max = cwnd (§4.8): convex from the start, never below cwnd.
    now += Duration::from_secs(2);
    while (cc.cwnd() < cc.ssthresh()) {
        cc.on_ack(mss, cc.cwnd(), Duration::from_millis(100), now);
    }
    const uint32_t epoch_cwnd = cc.cwnd();
    now = ack_one_round(cc, now, Duration::from_millis(100));
    EXPECT_TRUE(cc.epoch_started());
    EXPECT_EQ(cc.k_seconds(), 0.0);
    EXPECT_GE(cc.cwnd(), epoch_cwnd);
}

TEST(Cubic, SmoothedRttFromSamples) {
    Cubic cc;
    cc.init(mss, at_ms(0));
    cc.on_ack(mss, mss, Duration::from_millis(80), at_ms(0));
    EXPECT_EQ(cc.smoothed_rtt(), Duration::from_millis(80));
    cc.on_ack(mss, mss, Duration::zero(), at_ms(1));  // "no sample"
    EXPECT_EQ(cc.smoothed_rtt(), Duration::from_millis(80));
    cc.on_ack(mss, mss, Duration::from_millis(160), at_ms(2));
    EXPECT_EQ(cc.smoothed_rtt(), Duration::from_millis(90));
}

}  // namespace
}  // namespace ustack::tcp
