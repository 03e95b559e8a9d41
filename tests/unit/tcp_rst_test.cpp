// Resets and blind-attack mitigations: RFC 9293 §3.10.7.4 (second and
// fourth checks), RFC 5961 §3 (RST), §4 (SYN), §5 (ACK) with Linux's
// challenge-ACK rate limit, and how errors surface to the application
// (ECONNRESET, EPIPE) as tcp_reset()/tcp_sendmsg()/tcp_recvmsg() do.
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

// RFC 5961 §3.2: "If the RST bit is set and the sequence number exactly
// matches the next expected sequence number (RCV.NXT), then TCP MUST reset
// the connection."
TEST(TcpRst, ExactSequenceResetsConnection) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::RST, h.peer_seq()));
    h.expect_nothing();
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    const Readiness r = h.engine.readiness(s);
    EXPECT_TRUE(r.error);
    EXPECT_TRUE(r.hup);
    EXPECT_TRUE(r.readable);
    EXPECT_EQ(h.engine.counters().resets_received, 1u);
    EXPECT_EQ(h.engine.counters().established_resets, 1u);
}

// RFC 5961 §3.2: "If the RST bit is set and the sequence number does not
// exactly match the next expected sequence value, yet is within the
// current receive window, TCP MUST send an acknowledgment (challenge ACK)".
TEST(TcpRst, InWindowRstGetsChallengeAck) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::RST, h.peer_seq(100)));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    EXPECT_EQ(h.engine.counters().challenge_acks, 1u);
}

// RFC 5961 §3.2: "If the RST bit is set and the sequence number is outside
// the current receive window, silently drop the segment."
TEST(TcpRst, OutOfWindowRstIsDropped) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::RST, h.peer_seq(200000)));
    h.send(h.seg(f::RST, h.peer_seq() - 10));
    h.expect_nothing();
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
}

// RFC 5961 §7 / tcp_send_challenge_ack(): at most one challenge ACK per
// tcp_invalid_ratelimit (500 ms) per connection.
TEST(TcpRst, ChallengeAcksAreRateLimited) {
    Harness h;
    h.accept_established();
    h.send(h.seg(f::RST, h.peer_seq(100)));
    EXPECT_EQ(h.recv().repr.flags, f::ACK);
    h.advance(Duration::from_millis(100));
    h.send(h.seg(f::RST, h.peer_seq(100)));
    h.expect_nothing();
    h.advance(Duration::from_millis(400));
    h.send(h.seg(f::RST, h.peer_seq(100)));
    EXPECT_EQ(h.recv().repr.flags, f::ACK);
    EXPECT_EQ(h.engine.counters().acks_rate_limited, 1u);
}

// RFC 5961 §4.2: "If the SYN bit is set, irrespective of the sequence
// number, TCP MUST send an ACK (also referred to as challenge ACK)".
TEST(TcpRst, SynInEstablishedGetsChallengeAck) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.syn(remote_iss + 50));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq());
    h.advance(Duration::from_secs(1));
    h.send(h.syn(remote_iss + 5000000));  // out of window too
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    EXPECT_EQ(h.engine.counters().syn_challenges, 2u);
}

// tcp_ack(): "If the ack includes data we haven't sent yet, discard this
// segment" (RFC 9293 §3.10.7.4 fifth check) — the data goes too.
TEST(TcpRst, AckOfUnsentDataIsDropped) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::ACK | f::PSH, h.peer_seq(), h.our_seq(1000)), "data");
    h.expect_nothing();
    EXPECT_EQ(h.engine.info(s)->recv_queued, 0u);
    EXPECT_EQ(h.engine.counters().old_acks_dropped, 1u);
}

// RFC 5961 §5.2: an ACK below SND.UNA - MAX.SND.WND is a blind data
// injection attempt: challenge ACK, drop.
TEST(TcpRst, AckFarBelowSndUnaGetsChallengeAck) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::ACK | f::PSH, h.peer_seq(), h.our_seq() - 70000), "inject");
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_EQ(h.engine.info(s)->recv_queued, 0u);
}

// An old ACK inside the window is harmless: its data is taken.
TEST(TcpRst, SlightlyOldAckStillDeliversData) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::ACK | f::PSH, h.peer_seq(), h.our_seq() - 100), "ok");
    EXPECT_EQ(h.read_all(s), "ok");
}

// tcp_recvmsg(): queued data is read first, then the error once
// (ECONNRESET), then end of stream.
TEST(TcpRst, ReadDataThenResetErrorThenEof) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::PSH), "last words");
    h.send(h.seg(f::RST, h.peer_seq(10)));
    std::vector<uint8_t> buf(100);
    EXPECT_EQ(*h.engine.recv(s, h.now, buf), 10u);
    auto e = h.engine.recv(s, h.now, buf);
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().value, ECONNRESET);
    EXPECT_EQ(*h.engine.recv(s, h.now, buf), 0u);
}

// tcp_sendmsg() after a reset: the pending error once (ECONNRESET), then
// EPIPE ("EPIPE after peer reset on write").
TEST(TcpRst, SendAfterResetIsEconnresetThenEpipe) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::RST, h.peer_seq()));
    auto first = h.engine.send(s, h.now, bytes("x"));
    ASSERT_FALSE(first);
    EXPECT_EQ(first.error().value, ECONNRESET);
    auto second = h.engine.send(s, h.now, bytes("x"));
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().value, EPIPE);
    EXPECT_EQ(h.engine.take_error(s), 0);
}

// SO_ERROR takes the pending error.
TEST(TcpRst, SoErrorReportsResetOnce) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::RST | f::ACK, h.peer_seq(), h.our_seq()));
    EXPECT_EQ(h.engine.take_error(s), ECONNRESET);
    EXPECT_EQ(h.engine.take_error(s), 0);
    EXPECT_FALSE(h.engine.readiness(s).error);
}

// A reset throws away unsent data and stops every timer.
TEST(TcpRst, ResetDropsUnsentDataAndTimers) {
    Harness h;
    const SocketId s = h.accept_established();
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(5000)));
    h.clear();
    h.send(h.seg(f::RST, h.peer_seq()));
    EXPECT_EQ(h.engine.info(s)->send_queued, 0u);
    EXPECT_FALSE(h.engine.poll_at());
    h.advance(Duration::from_secs(10));
    h.expect_nothing();
}

// tcp_reset_check(): after the peer's FIN, a RST at RCV.NXT - 1 is
// accepted (it may have been sent before our ACK of the FIN arrived).
TEST(TcpRst, RstJustBeforeRcvNxtAfterFinIsAccepted) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::FIN));
    h.send(h.seg(f::RST, h.peer_seq()));  // = RCV.NXT - 1
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
}

// RFC 9293 §3.10.7.4 first check: an unacceptable segment gets an ACK
// (Linux tcp_send_dupack), a pure ACK at most once per 500 ms.
TEST(TcpRst, OutOfWindowSegmentsGetRateLimitedAcks) {
    Harness h;
    h.accept_established();
    h.send(h.seg(f::ACK, h.peer_seq() - 100000, h.our_seq()));
    EXPECT_EQ(h.recv().repr.ack, h.peer_seq());
    h.send(h.seg(f::ACK, h.peer_seq() - 100000, h.our_seq()));
    h.expect_nothing();
    // Data segments are not rate limited ("Data packets without SYNs are
    // not likely part of an ACK loop").
    h.send(h.seg(f::ACK, h.peer_seq() - 100000, h.our_seq()), "old");
    EXPECT_EQ(h.recv().repr.ack, h.peer_seq());
}

// RFC 9293 §3.10.7.4 fifth check: "if the ACK bit is off, drop the
// segment and return".
TEST(TcpRst, SegmentWithoutAckIsDropped) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.seg(f::PSH, h.peer_seq()), "noack");
    h.expect_nothing();
    EXPECT_EQ(h.engine.info(s)->recv_queued, 0u);
}

// A connection reset while waiting in the accept queue is still accepted;
// its first read reports the reset (Linux keeps the child queued).
TEST(TcpRst, ResetBeforeAcceptIsReportedAfterAccept) {
    Harness h;
    const SocketId l = h.listen();
    h.handshake_syn(h.syn());
    h.send(h.seg(f::ACK, h.peer_seq(), h.iss + 1));
    h.send(h.seg(f::RST, h.peer_seq()));
    auto acc = h.engine.accept(l);
    ASSERT_TRUE(acc);
    std::vector<uint8_t> buf(10);
    auto r = h.engine.recv(acc->id, h.now, buf);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, ECONNRESET);
}

}  // namespace
}  // namespace ustack::tcp::testing
