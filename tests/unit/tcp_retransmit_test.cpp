// Retransmission: RTO with exponential backoff (RFC 6298 §5), Karn's
// algorithm, Linux's give-up rule (tcp_retries2, tcp_model_timeout,
// TCP_USER_TIMEOUT), fast retransmit and NewReno recovery (RFC 5681 §3.2,
// RFC 6582), SACK-based recovery (RFC 6675), ICMP soft errors and path MTU.
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

wire::TcpOptions sack_options() {
    wire::TcpOptions o = mss_only();
    o.sack_permitted = true;
    return o;
}

TcpConfig sack_config() {
    TcpConfig config = test_config();
    config.sack = true;
    return config;
}

TcpRepr sack_ack(const Harness& h, uint32_t ack_offset, std::initializer_list<std::pair<uint32_t, uint32_t>> blocks) {
    TcpRepr r = h.ack(ack_offset);
    for (auto [l, rr] : blocks) {
        r.options.sack_blocks[r.options.sack_count++] = wire::SackBlock{h.our_seq(l), h.our_seq(rr)};
    }
    return r;
}

// RFC 6298 §5.4-5.6: on timeout retransmit the earliest unacknowledged
// segment and double the RTO (200 ms minimum after the handshake sample).
TEST(TcpRetransmit, RtoRetransmitsHeadWithBackoff) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("hello")));
    Sent first = h.recv();
    const Instant t0 = h.now;
    for (int64_t at : {200, 600, 1400, 3000}) {
        h.advance_to(t0 + Duration::from_millis(at) - Duration::from_micros(1));
        h.expect_nothing();
        h.advance_to(t0 + Duration::from_millis(at));
        Sent again = h.recv();
        EXPECT_SEGMENT(again, f::ACK | f::PSH, h.our_seq(), h.peer_seq());
        EXPECT_EQ(again.payload, first.payload) << "at " << at;
    }
    EXPECT_EQ(h.engine.counters().rto_timeouts, 4u);
    EXPECT_EQ(h.engine.info(s)->backoff, 4u);
    EXPECT_EQ(h.engine.info(s)->retransmits, 4u);
}

// tcp_write_timeout(): tcp_retries2 = 3 means tcp_model_timeout(3, 200 ms) =
// 3 s from the first transmission: retransmissions at 0.2, 0.6, 1.4 s,
// ETIMEDOUT at 3.0 s.
TEST(TcpRetransmit, GivesUpAfterRetries2WithEtimedout) {
    TcpConfig config = test_config();
    config.retries2 = 3;
    Harness h(config);
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("x")));
    h.recv();
    const Instant t0 = h.now;
    h.advance_to(t0 + Duration::from_millis(2999));
    EXPECT_EQ(h.pending(), 3u);
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    h.clear();
    h.advance_to(t0 + Duration::from_millis(3000));
    h.expect_nothing();  // Linux gives up silently (tcp_write_err)
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    std::vector<uint8_t> buf(10);
    auto r = h.engine.recv(s, h.now, buf);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, ETIMEDOUT);
    EXPECT_EQ(h.engine.counters().timeouts_established, 1u);
}

// The peer vanishes: with the default tcp_retries2 = 15 the connection
// gives up after 924.6 s (0.2 s doubling to the 120 s cap), having
// retransmitted 15 times — all in simulated time.
TEST(TcpRetransmit, PeerVanishesEndsWithEtimedoutAfter924s) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("anyone there?")));
    h.recv();
    const Instant t0 = h.now;
    h.advance_to(t0 + Duration::from_millis(924600) - Duration::from_millis(1));
    EXPECT_EQ(h.pending(), 15u);
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    h.advance_to(t0 + Duration::from_millis(924600));
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    EXPECT_EQ(h.engine.take_error(s), ETIMEDOUT);
    // The last gaps are the 120 s TCP_RTO_MAX.
    const Sent last = h.out.segments.back();
    const Sent before = h.out.segments[h.out.segments.size() - 2];
    EXPECT_EQ((last.at - before.at).secs(), 120);
}

// TCP_USER_TIMEOUT bounds the retransmission time (and the RTO timer is
// clamped to it, tcp_clamp_rto_to_user_timeout).
TEST(TcpRetransmit, UserTimeoutEndsConnectionEarly) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::UserTimeout, 1000));
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::UserTimeout), 1000);
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("x")));
    h.recv();
    const Instant t0 = h.now;
    h.advance_to(t0 + Duration::from_millis(999));
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    h.advance_to(t0 + Duration::from_millis(1000));
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    EXPECT_EQ(h.engine.take_error(s), ETIMEDOUT);
}

// tcp_v4_err(): on an established connection an ICMP error is soft; it
// replaces ETIMEDOUT when the connection times out (tcp_write_err).
TEST(TcpRetransmit, IcmpSoftErrorReportedOnTimeout) {
    TcpConfig config = test_config();
    config.retries2 = 1;
    Harness h(config);
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("x")));
    h.recv();
    h.engine.icmp_error(h.now, IcmpError{h.local, h.remote, h.our_seq(), EHOSTUNREACH, 0});
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    EXPECT_FALSE(h.engine.readiness(s).error);
    h.advance(Duration::from_secs(1));
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    auto r = h.engine.send(s, h.now, bytes("y"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EHOSTUNREACH);
}

// An ACK for new data clears the soft error ("Something worked...").
TEST(TcpRetransmit, AckClearsSoftError) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("x")));
    h.engine.icmp_error(h.now, IcmpError{h.local, h.remote, h.our_seq(), EHOSTUNREACH, 0});
    h.send(h.ack(1));
    EXPECT_EQ(h.engine.take_error(s), 0);
}

// Karn's algorithm (RFC 6298 §3): an ACK of retransmitted data gives no RTT
// sample, so the backed-off RTO stays for the next segment.
TEST(TcpRetransmit, KarnKeepsBackoffWithoutSample) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("a")));
    h.recv();
    h.advance(Duration::from_millis(200));
    h.recv();
    h.send(h.ack(1));
    EXPECT_EQ(h.engine.info(s)->backoff, 1u);
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("b")));
    h.recv();
    h.advance(Duration::from_millis(399));
    h.expect_nothing();
    h.advance(Duration::from_millis(1));
    EXPECT_EQ(h.recv().text(), "b");
}

// RFC 6298 §2: a measured RTT sets the RTO: SRTT + 4 * RTTVAR, at least
// 200 ms (TCP_RTO_MIN).
TEST(TcpRetransmit, RttSampleSetsRto) {
    Harness h;
    const SocketId s = h.connect_established();
    for (int i = 0; i < 8; ++i) {
        ASSERT_TRUE(h.engine.send(s, h.now, bytes("x")));
        h.recv();
        h.advance(Duration::from_millis(100));
        h.send(h.ack(static_cast<uint32_t>(i + 1)));
    }
    const TcpInfo info = *h.engine.info(s);
    EXPECT_GT(info.srtt.millis(), 50);
    EXPECT_LE(info.srtt.millis(), 100);
    EXPECT_GE(info.rto.millis(), 200);
}

// RFC 5681 §3.2: "The fast retransmit algorithm uses the arrival of 3
// duplicate ACKs ... as an indication that a segment has been lost."
TEST(TcpRetransmit, FastRetransmitOnThirdDuplicateAck) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(14600)));
    EXPECT_EQ(h.pending(), 10u);  // RFC 6928 initial window: 10 segments
    h.clear();
    h.send(h.ack(1460));
    h.send(h.ack(1460));
    h.send(h.ack(1460));
    h.expect_nothing();
    h.send(h.ack(1460));
    Sent rexmit = h.recv();
    EXPECT_SEGMENT(rexmit, f::ACK, h.our_seq(1460), h.peer_seq());
    EXPECT_EQ(rexmit.payload.size(), 1460u);
    EXPECT_EQ(h.engine.counters().fast_retransmits, 1u);
    EXPECT_EQ(h.engine.counters().dup_acks_received, 3u);
    EXPECT_TRUE(h.engine.info(s)->in_recovery);
}

// RFC 6582 §3.2 step 4: a partial ACK retransmits the first unacknowledged
// segment at once; the full ACK (of "recover") ends recovery.
TEST(TcpRetransmit, NewRenoPartialAckRetransmitsNextHole) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(14600)));
    h.clear();
    for (int i = 0; i < 4; ++i) {
        h.send(h.ack(1460));
    }
    h.recv();  // fast retransmit of 1460
    h.send(h.ack(4380));  // partial: 4380 is lost too
    Sent next = h.recv();
    EXPECT_EQ(next.repr.seq, h.our_seq(4380));
    EXPECT_TRUE(h.engine.info(s)->in_recovery);
    h.send(h.ack(14600));
    EXPECT_FALSE(h.engine.info(s)->in_recovery);
    const TcpInfo info = *h.engine.info(s);
    EXPECT_EQ(info.cwnd, info.ssthresh);  // deflated to ssthresh
}

// RFC 6675: SACK blocks show which segments arrived; with three SACKed
// above it, the first segment is lost (IsLost) and retransmitted; a hole
// further up with three SACKed segments above is retransmitted next, and
// only the holes are.
TEST(TcpRetransmit, SackRecoveryRetransmitsOnlyTheHoles) {
    Harness h(sack_config());
    const SocketId s = h.connect_established(sack_options());
    ASSERT_TRUE(h.engine.info(s)->sack);
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(14600)));
    h.clear();
    // Segment 0 (0..1460) and segment 4 (5840..7300) are lost.
    h.send(sack_ack(h, 0, {{1460, 2920}}));
    h.send(sack_ack(h, 0, {{1460, 4380}}));
    h.expect_nothing();
    h.send(sack_ack(h, 0, {{1460, 5840}}));
    Sent first = h.recv();
    EXPECT_EQ(first.repr.seq, h.our_seq(0));
    h.expect_nothing();
    // Two segments SACKed above 5840 are not enough (RFC 6675 IsLost)...
    h.send(sack_ack(h, 0, {{7300, 10220}, {1460, 5840}}));
    h.expect_nothing();
    // ... three are.
    h.send(sack_ack(h, 0, {{7300, 11680}, {1460, 5840}}));
    Sent second = h.recv();
    EXPECT_EQ(second.repr.seq, h.our_seq(5840));
    h.send(sack_ack(h, 0, {{7300, 14600}, {1460, 5840}}));
    h.expect_nothing();
    h.send(h.ack(14600));
    EXPECT_FALSE(h.engine.info(s)->in_recovery);
    EXPECT_EQ(h.engine.counters().sack_retransmits, 2u);
    EXPECT_EQ(h.engine.counters().retransmitted_segments, 2u);
}

// RFC 5681 §3.1: after an RTO, cwnd is one segment (loss window) and
// ssthresh comes from the flight; the rest is resent as ACKs open cwnd.
TEST(TcpRetransmit, RtoCollapsesCwndAndResendsInSlowStart) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(5840)));
    h.clear();
    h.advance(Duration::from_millis(200));
    Sent first = h.recv();
    EXPECT_EQ(first.repr.seq, h.our_seq(0));
    h.expect_nothing();
    EXPECT_EQ(h.engine.info(s)->cwnd, 1460u);
    h.send(h.ack(1460));
    // Slow start: cwnd 2 segments, the next two lost ones go.
    EXPECT_EQ(h.recv().repr.seq, h.our_seq(1460));
    EXPECT_EQ(h.recv().repr.seq, h.our_seq(2920));
    h.expect_nothing();
}

// RFC 1191 path MTU discovery: ICMP "fragmentation needed" shrinks the
// MSS and what no longer fits is sent again in smaller segments.
TEST(TcpRetransmit, FragmentationNeededShrinksSegments) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(2920)));
    h.clear();
    h.engine.icmp_error(h.now, IcmpError{h.local, h.remote, h.our_seq(), EMSGSIZE, 1000});
    EXPECT_EQ(h.engine.info(s)->snd_mss, 960u);
    const uint32_t expect[][2] = {{0, 960}, {960, 500}, {1460, 960}, {2420, 500}};
    for (const auto& e : expect) {
        Sent seg = h.recv();
        EXPECT_EQ(seg.repr.seq, h.our_seq(e[0]));
        EXPECT_EQ(seg.payload.size(), e[1]);
    }
    h.expect_nothing();
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(1000)));
    EXPECT_EQ(h.recv().payload.size(), 960u);
}

// Retransmitted data is byte-identical to the original.
TEST(TcpRetransmit, RetransmissionCarriesSameBytes) {
    Harness h;
    const SocketId s = h.connect_established();
    const auto payload = pattern(2000, 3);
    ASSERT_TRUE(h.engine.send(s, h.now, payload));
    h.clear();
    h.send(h.ack(1460));
    h.advance(Duration::from_millis(200));
    Sent again = h.recv();
    EXPECT_EQ(again.repr.seq, h.our_seq(1460));
    EXPECT_EQ(again.payload, std::vector<uint8_t>(payload.begin() + 1460, payload.end()));
}

// LAST-ACK with data still queued behind the peer's FIN: the data and our
// FIN keep going out as ACKs arrive.
TEST(TcpRetransmit, DataQueuedInLastAckStillFlows) {
    Harness h;
    const SocketId s = h.connect_established(mss_only(), 2000);
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(5000)));
    h.clear();
    h.send(h.seg(f::ACK | f::FIN, h.peer_seq(), h.our_seq(2000), 2000));
    ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
    EXPECT_EQ(h.engine.state(s), TcpState::LastAck);
    h.clear();
    h.send(h.seg(f::ACK, h.peer_seq(1), h.our_seq(4000), 2000));
    Sent last = h.recv();
    EXPECT_SEGMENT(last, f::ACK | f::PSH | f::FIN, h.our_seq(4000), h.peer_seq(1));
    EXPECT_EQ(last.payload.size(), 1000u);
    h.send(h.seg(f::ACK, h.peer_seq(1), h.our_seq(5001), 2000));
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
}

}  // namespace
}  // namespace ustack::tcp::testing
