// State transitions of RFC 9293 §3.3.2 (figure 5) not covered by the
// handshake, close and RST files: close in SYN-RECEIVED, a FIN on the
// handshake's last ACK, and an acceptable RST in every synchronized state
// with the errno Linux's tcp_reset() gives.
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

// Simultaneous open up to SYN-RECEIVED (our SYN crossed the peer's SYN);
// returns the socket. h.iss is our ISS.
SocketId simultaneous_open_to_syn_received(Harness& h) {
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.iss = syn.repr.seq;
    h.local.port = syn.repr.src_port;
    h.send(h.syn());
    EXPECT_SEGMENT(h.recv(), f::SYN | f::ACK, h.iss, SeqNumber(remote_iss + 1));
    EXPECT_EQ(h.engine.state(s), TcpState::SynReceived);
    return s;
}

// RFC 9293 §3.10.4 CLOSE in SYN-RECEIVED: "If no SENDs have been issued
// and there is no pending data to send, then form a FIN segment and send
// it, and enter FIN-WAIT-1 state" (Linux tcp_close_state: SYN_RECV →
// FIN_WAIT1). The FIN follows the SYN once the handshake's ACK arrives;
// its ACK then moves us to FIN-WAIT-2.
TEST(TcpState, CloseInSynReceivedGoesToFinWait1ThenFinWait2) {
    Harness h;
    const SocketId s = simultaneous_open_to_syn_received(h);
    ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
    EXPECT_EQ(h.engine.state(s), TcpState::FinWait1);
    // The peer's ACK of our SYN lets the FIN go.
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 1));
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.iss + 1, SeqNumber(remote_iss + 1));
    EXPECT_EQ(h.engine.state(s), TcpState::FinWait1);
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 2));
    h.expect_nothing();
    EXPECT_EQ(h.engine.state(s), TcpState::FinWait2);
    // Its FIN: TIME-WAIT.
    h.send(h.seg(f::ACK | f::FIN, SeqNumber(remote_iss + 1), h.iss + 2));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.iss + 2, SeqNumber(remote_iss + 2));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::TimeWait);
}

// The handshake's last ACK carries data and a FIN: the child is
// established and at once in CLOSE-WAIT; accept() returns it with the
// data readable, then end of stream.
TEST(TcpState, HandshakeAckWithFinGoesToCloseWait) {
    Harness h;
    const SocketId l = h.listen();
    h.handshake_syn(h.syn());
    h.send(h.seg(f::ACK | f::PSH | f::FIN, SeqNumber(remote_iss + 1), h.iss + 1), "bye");
    auto accepted = h.engine.accept(l);
    ASSERT_TRUE(accepted);
    EXPECT_EQ(h.engine.state(accepted->id), TcpState::CloseWait);
    EXPECT_EQ(h.read_all(accepted->id), "bye");
    // CLOSE-WAIT ACKs the FIN (delayed: Linux waits for the reply, ping-pong).
    h.advance(Duration::from_millis(40));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.iss + 1, SeqNumber(remote_iss + 5));
    h.engine.close(accepted->id, h.now);
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.iss + 1, SeqNumber(remote_iss + 5));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::LastAck);
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 5), h.iss + 2));
    EXPECT_FALSE(h.engine.state_of(h.local, h.remote));
}

// An acceptable RST (SEQ = RCV.NXT) in each synchronized state the
// application still holds: the connection is CLOSED with tcp_reset()'s
// errno, nothing is sent in answer, and no timer stays armed.
struct RstCase {
    const char* name;
    TcpState state;
    int error;
};

class TcpRstInState : public ::testing::TestWithParam<RstCase> {};

TEST_P(TcpRstInState, AcceptableRstClosesWithLinuxErrno) {
    const RstCase& rc = GetParam();
    Harness h;
    const SocketId s = h.accept_established();
    uint32_t peer_offset = 0;
    switch (rc.state) {
    case TcpState::Established:
        // Data outstanding, so a retransmission timer is armed.
        ASSERT_TRUE(h.engine.send(s, h.now, bytes("unacked")));
        h.recv();
        break;
    case TcpState::FinWait1:
        ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
        h.recv();
        break;
    case TcpState::FinWait2:
        ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
        h.recv();
        h.send(h.ack(1));
        break;
    case TcpState::CloseWait:
        h.send(h.data(0, 0, f::FIN));
        peer_offset = 1;
        h.advance(Duration::from_millis(40));
        h.clear();
        break;
    case TcpState::Closing:
        ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
        h.recv();
        h.send(h.data(0, 0, f::FIN));  // does not ack our FIN
        h.recv();
        peer_offset = 1;
        break;
    case TcpState::LastAck:
        h.send(h.data(0, 0, f::FIN));
        peer_offset = 1;
        ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
        h.clear();
        break;
    default:
        FAIL() << "no setup for this state";
    }
    ASSERT_EQ(h.engine.state(s), rc.state) << rc.name;
    h.send(h.seg(f::RST, h.peer_seq(peer_offset)));
    h.expect_nothing();
    EXPECT_EQ(h.engine.state(s), TcpState::Closed) << rc.name;
    EXPECT_EQ(h.engine.take_error(s), rc.error) << rc.name;
    EXPECT_EQ(h.engine.counters().resets_received, 1u);
    h.advance(Duration::from_secs(300));
    h.expect_nothing();  // no retransmission, probe or keepalive survives
}

INSTANTIATE_TEST_SUITE_P(
    AllSynchronizedStates, TcpRstInState,
    ::testing::Values(RstCase{"Established", TcpState::Established, ECONNRESET},
                      RstCase{"FinWait1", TcpState::FinWait1, ECONNRESET},
                      RstCase{"FinWait2", TcpState::FinWait2, ECONNRESET},
                      RstCase{"CloseWait", TcpState::CloseWait, EPIPE},
                      RstCase{"Closing", TcpState::Closing, ECONNRESET},
                      RstCase{"LastAck", TcpState::LastAck, ECONNRESET}),
    [](const ::testing::TestParamInfo<RstCase>& param_info) { return std::string(param_info.param.name); });

// RFC 5961 §3.2 in the closing states too: an in-window RST that is not
// exactly RCV.NXT gets a challenge ACK and the connection stays.
TEST(TcpState, InWindowRstInFinWait2GetsChallengeAck) {
    Harness h;
    const SocketId s = h.accept_established();
    ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
    h.recv();
    h.send(h.ack(1));
    ASSERT_EQ(h.engine.state(s), TcpState::FinWait2);
    h.send(h.seg(f::RST, h.peer_seq(100)));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(1), h.peer_seq());
    EXPECT_EQ(h.engine.state(s), TcpState::FinWait2);
    EXPECT_EQ(h.engine.counters().challenge_acks, 1u);
}

// SYN-SENT: a RST without an ACK is ignored (RFC 9293 §3.10.7.3: "If the
// ACK bit is off ... drop the segment"), one with an unacceptable ACK too;
// only the SYN is then retransmitted at 1 s.
TEST(TcpState, SynSentIgnoresRstWithoutAcceptableAck) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.local.port = syn.repr.src_port;
    h.send(h.seg(f::RST | f::ACK, SeqNumber(0), syn.repr.seq + 5));
    h.send(h.seg(f::RST, SeqNumber(remote_iss)));
    EXPECT_EQ(h.engine.state(s), TcpState::SynSent);
    h.expect_nothing();
    h.advance(Duration::from_secs(1));
    EXPECT_SEGMENT(h.recv(), f::SYN, syn.repr.seq, SeqNumber());
}

// TIME-WAIT → CLOSED: the entry's timer, not a segment, ends it; an ACK
// arriving after that finds no socket and gets a RST.
TEST(TcpState, AfterTimeWaitSegmentsGetReset) {
    TcpConfig config = test_config();
    config.time_wait = Duration::from_secs(1);
    Harness h(config);
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.recv();
    h.send(h.data(0, 1, f::FIN));
    h.recv();
    ASSERT_EQ(h.engine.state_of(h.local, h.remote), TcpState::TimeWait);
    h.advance(Duration::from_secs(1));
    EXPECT_FALSE(h.engine.state_of(h.local, h.remote));
    h.send(h.ack(1, 1));
    // No listener either (closed above? the listener still exists, so the
    // ACK without SYN is answered by it with a RST: tcp_v4_send_reset).
    Sent rst = h.recv();
    EXPECT_EQ(rst.repr.flags, f::RST);
    EXPECT_EQ(rst.repr.seq, h.our_seq(1));
}


// MSS clamped to the device MTU (RFC 9293 §3.7.1: MSS = MTU - 40;
// tcp_mss_clamp / tcp_advertise_mss): on a 1000-byte MTU we announce 960
// in the SYN and never send more than 960 bytes of payload, even to a
// peer announcing 1460.
TEST(TcpMss, AnnouncedAndSentMssFollowDeviceMtu) {
    TcpConfig config = test_config();
    config.mtu = 1000;
    Harness h(config);
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    ASSERT_TRUE(syn.repr.options.mss);
    EXPECT_EQ(*syn.repr.options.mss, 960);
    h.iss = syn.repr.seq;
    h.local.port = syn.repr.src_port;
    TcpRepr synack = h.seg(f::SYN | f::ACK, SeqNumber(remote_iss), h.iss + 1);
    synack.options = mss_only(1460);
    h.send(synack);
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq());
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(2000)));
    Sent first = h.recv();
    EXPECT_SEGMENT(first, f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_EQ(first.payload.size(), 960u);
    EXPECT_EQ(h.recv().payload.size(), 960u);
    EXPECT_EQ(h.recv().payload.size(), 80u);
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::MaxSeg), 960);
}

// The listener side: the SYN-ACK announces the MTU's MSS, and a peer
// without an MSS option gets RFC 9293's default 536.
TEST(TcpMss, SynAckAnnouncesMtuMssAndPeerDefaultIs536) {
    TcpConfig config = test_config();
    config.mtu = 1280;
    Harness h(config);
    const SocketId l = h.listen();
    Sent synack = h.handshake_syn(h.syn(remote_iss, std::nullopt));
    ASSERT_TRUE(synack.repr.options.mss);
    EXPECT_EQ(*synack.repr.options.mss, 1240);
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 1));
    auto accepted = h.engine.accept(l);
    ASSERT_TRUE(accepted);
    EXPECT_EQ(*h.engine.get_option(accepted->id, SockOpt::MaxSeg), 536);
    ASSERT_TRUE(h.engine.send(accepted->id, h.now, pattern(600)));
    EXPECT_EQ(h.recv().payload.size(), 536u);
    EXPECT_EQ(h.recv().payload.size(), 64u);
}

}  // namespace
}  // namespace ustack::tcp::testing
