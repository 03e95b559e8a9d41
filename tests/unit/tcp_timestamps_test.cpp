// RFC 7323: timestamps (TSval clock with a per-host-pair offset, TSecr =
// TS.Recent, the §4.3 update rule) and PAWS (§5), Linux's
// tcp_paws_discard/tcp_disordered_ack details.
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

TcpConfig ts_config() {
    TcpConfig config = test_config();
    config.timestamps = true;
    return config;
}

struct TsConnection {
    Harness h{ts_config()};
    SocketId s = 0;
    uint32_t peer_ts = 5000;
    uint32_t our_offset = 0;

    TsConnection() {
        const SocketId l = h.listen();
        TcpRepr syn = h.syn();
        syn.options.timestamp = wire::TcpTimestamp{peer_ts, 0};
        Sent synack = h.handshake_syn(syn);
        our_offset = synack.repr.options.timestamp->value - ts_clock(h.now);
        TcpRepr ack = h.seg(f::ACK, h.peer_seq(), h.iss + 1);
        ack.options.timestamp = wire::TcpTimestamp{++peer_ts, synack.repr.options.timestamp->value};
        h.send(ack);
        s = h.engine.accept(l)->id;
    }
    TcpRepr data(uint32_t offset, uint32_t tsval) const {
        TcpRepr r = h.data(offset);
        r.options.timestamp = wire::TcpTimestamp{tsval, 0};
        return r;
    }
};

// RFC 7323 §3.2/§4.3: every segment carries TSval (our clock, in ms, plus
// the offset) and TSecr = TS.Recent, the peer's latest in-order TSval.
TEST(TcpTimestamps, EchoTsRecentAndTickInMilliseconds) {
    TsConnection t;
    t.h.send(t.data(0, 6000), "a");
    Sent ack = t.h.recv();
    ASSERT_TRUE(ack.repr.options.timestamp);
    EXPECT_EQ(ack.repr.options.timestamp->echo, 6000u);
    EXPECT_EQ(ack.repr.options.timestamp->value, ts_clock(t.h.now) + t.our_offset);
    t.h.advance(Duration::from_millis(1234));
    t.h.send(t.data(1, 7000), "b");
    Sent later = t.h.recv();
    EXPECT_EQ(later.repr.options.timestamp->value - ack.repr.options.timestamp->value, 1234u);
    EXPECT_EQ(later.repr.options.timestamp->echo, 7000u);
}

// RFC 7323 §5.3 R1: a segment with SEG.TSval < TS.Recent is not
// acceptable: "an acknowledgment is sent in reply" and the segment dropped.
TEST(TcpTimestamps, PawsRejectsOldTimestamp) {
    TsConnection t;
    t.h.send(t.data(0, 6000), "new");
    t.h.recv();
    t.h.send(t.data(3, 5900), "replay");
    Sent dup = t.h.recv();
    EXPECT_SEGMENT(dup, f::ACK, t.h.our_seq(), t.h.peer_seq(3));
    EXPECT_EQ(t.h.engine.counters().paws_rejected, 1u);
    EXPECT_EQ(t.h.read_all(t.s), "new");
}

// Linux TCP_PAWS_WINDOW: one tick of slack.
TEST(TcpTimestamps, PawsAllowsOneTickOfSlack) {
    TsConnection t;
    t.h.send(t.data(0, 6000), "a");
    t.h.send(t.data(1, 5999), "b");
    EXPECT_EQ(t.h.engine.counters().paws_rejected, 0u);
    EXPECT_EQ(t.h.read_all(t.s), "ab");
}

// tcp_validate_incoming(): "Reset is accepted even if it did not pass PAWS."
TEST(TcpTimestamps, RstPassesPaws) {
    TsConnection t;
    t.h.send(t.data(0, 6000), "a");
    t.h.clear();
    TcpRepr rst = t.h.seg(f::RST, t.h.peer_seq(1));
    rst.options.timestamp = wire::TcpTimestamp{10, 0};
    t.h.send(rst);
    EXPECT_EQ(t.h.engine.state(t.s), TcpState::Closed);
}

// RFC 7323 §4.3 (2): TS.Recent is only updated from a segment that
// starts at or before Last.ACK.sent — an out-of-order segment does not
// move it.
TEST(TcpTimestamps, OutOfOrderSegmentDoesNotUpdateTsRecent) {
    TsConnection t;
    t.h.send(t.data(100, 9000), "later");
    Sent ack = t.h.recv();
    EXPECT_EQ(ack.repr.options.timestamp->echo, t.peer_ts);
    t.h.send(t.data(0, 8000), "first");
    Sent ack2 = t.h.recv();
    EXPECT_EQ(ack2.repr.options.timestamp->echo, 8000u);
}

// RFC 7323 §5.5: a TS.Recent idle for more than 24 days is invalid, so an
// older TSval is accepted then.
TEST(TcpTimestamps, StaleTsRecentIsNotEnforced) {
    TsConnection t;
    t.h.send(t.data(0, 6000), "a");
    t.h.recv();
    t.h.now = t.h.now + Duration::from_secs(25 * 24 * 3600);
    t.h.send(t.data(1, 100), "b");
    EXPECT_EQ(t.h.engine.counters().paws_rejected, 0u);
    EXPECT_EQ(t.h.read_all(t.s), "ab");
}

// RFC 7323 §5.4 / secure_tcp_ts_off(): connections between the same two
// hosts share one offset (a monotonic TSval per host pair), another host
// pair gets another.
TEST(TcpTimestamps, OffsetIsPerAddressPair) {
    Harness h(ts_config());
    h.listen();
    TcpRepr syn = h.syn();
    syn.options.timestamp = wire::TcpTimestamp{1, 0};
    const uint32_t a = h.handshake_syn(syn).repr.options.timestamp->value;
    h.remote.port = 50000;
    syn.src_port = 50000;
    const uint32_t b = h.handshake_syn(syn).repr.options.timestamp->value;
    EXPECT_EQ(a, b);
    h.remote.addr = wire::Ipv4Address(10, 0, 0, 3);
    const uint32_t c = h.handshake_syn(syn).repr.options.timestamp->value;
    EXPECT_NE(a, c);
}

// RFC 7323 §4.1: the echoed timestamp measures the RTT — here 300 ms, so
// the RTO becomes SRTT + 4 * RTTVAR = 300 + 600 ms (RFC 6298 §2.2).
TEST(TcpTimestamps, RttFromEchoSetsRto) {
    TsConnection t;
    ASSERT_TRUE(t.h.engine.send(t.s, t.h.now, bytes("x")));
    Sent seg = t.h.recv();
    t.h.advance(Duration::from_millis(300));
    TcpRepr ack = t.h.ack(1);
    ack.options.timestamp = wire::TcpTimestamp{++t.peer_ts, seg.repr.options.timestamp->value};
    t.h.send(ack);
    const TcpInfo info = *t.h.engine.info(t.s);
    EXPECT_GE(info.srtt.millis(), 30);  // first real sample after the handshake's
    EXPECT_GE(info.rto.millis(), 200);
}

// Timestamps on every segment once negotiated, including our FIN and RST.
TEST(TcpTimestamps, CarriedOnFinAndRst) {
    TsConnection t;
    ASSERT_TRUE(t.h.engine.shutdown(t.s, t.h.now, ShutdownHow::Write));
    EXPECT_TRUE(t.h.recv().repr.options.timestamp);
    t.h.engine.abort(t.s, t.h.now);
    Sent rst = t.h.recv();
    EXPECT_TRUE(rst.has(f::RST));
    EXPECT_TRUE(rst.repr.options.timestamp);
}

// The payload of a full segment shrinks by the 12 option bytes.
TEST(TcpTimestamps, MssLeavesRoomForTheOption) {
    TsConnection t;
    ASSERT_TRUE(t.h.engine.send(t.s, t.h.now, pattern(3000)));
    EXPECT_EQ(t.h.recv().payload.size(), 1448u);
    EXPECT_EQ(*t.h.engine.get_option(t.s, SockOpt::MaxSeg), 1448);
}

// PAWS in TIME_WAIT (tcp_timewait_state_process): an old TSval is
// rejected and answered with an ACK.
TEST(TcpTimestamps, PawsInTimeWait) {
    TsConnection t;
    t.h.engine.close(t.s, t.h.now);
    TcpRepr ack = t.h.ack(1);
    ack.options.timestamp = wire::TcpTimestamp{6000, 0};
    t.h.send(ack);
    TcpRepr fin = t.h.data(0, 1, f::FIN);
    fin.options.timestamp = wire::TcpTimestamp{6001, 0};
    t.h.send(fin);
    t.h.clear();
    TcpRepr old_fin = fin;
    old_fin.options.timestamp = wire::TcpTimestamp{10, 0};
    t.h.send(old_fin);
    Sent reply = t.h.recv();
    EXPECT_EQ(reply.repr.flags, f::ACK);
    EXPECT_EQ(t.h.engine.counters().paws_rejected, 1u);
}

}  // namespace
}  // namespace ustack::tcp::testing
