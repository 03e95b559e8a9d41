// Closing connections: active, passive and simultaneous close (RFC 9293
// §3.6), half-close, Linux's close() rules (RST on unread data, SO_LINGER
// {1,0}), orphaned FIN_WAIT2 and TIME_WAIT (tcp_timewait_state_process).
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

// RFC 9293 §3.6 case 1 (local close first): FIN-WAIT-1 → FIN-WAIT-2 on the
// ACK of our FIN → TIME-WAIT on the peer's FIN (ACKed) → gone after
// time_wait (2 MSL; Linux's 60 s).
TEST(TcpClose, ActiveCloseThroughTimeWait) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::FinWait1);
    h.send(h.ack(1));
    h.expect_nothing();
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::FinWait2);
    h.send(h.data(0, 1, f::FIN));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(1), h.peer_seq(1));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::TimeWait);
    EXPECT_EQ(h.engine.time_wait_count(), 1u);
    h.advance(Duration::from_secs(60) - Duration::from_millis(1));
    EXPECT_EQ(h.engine.time_wait_count(), 1u);
    h.advance(Duration::from_millis(1));
    EXPECT_EQ(h.engine.time_wait_count(), 0u);
    EXPECT_FALSE(h.engine.state_of(h.local, h.remote));
    EXPECT_EQ(h.engine.counters().time_wait_expired, 1u);
}

TEST(TcpClose, TimeWaitLengthIsASetting) {
    TcpConfig config = test_config();
    config.time_wait = Duration::from_secs(2);
    Harness h(config);
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.send(h.data(0, 1, f::FIN));
    h.advance(Duration::from_secs(2));
    EXPECT_EQ(h.engine.time_wait_count(), 0u);
}

// RFC 9293 §3.6 case 2 (remote close first): CLOSE-WAIT; the ACK of the FIN
// is delayed (Linux enters ping-pong mode in tcp_fin) and goes with our FIN
// if the application closes in time; LAST-ACK → CLOSED on its ACK.
TEST(TcpClose, PassiveCloseThroughLastAck) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::FIN));
    EXPECT_EQ(h.engine.state(s), TcpState::CloseWait);
    h.expect_nothing();
    std::vector<uint8_t> buf(10);
    EXPECT_EQ(*h.engine.recv(s, h.now, buf), 0u);  // end of stream
    EXPECT_TRUE(h.engine.readiness(s).rdhup);
    h.advance(Duration::from_millis(40));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq(1));
    h.engine.close(s, h.now);
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.our_seq(), h.peer_seq(1));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::LastAck);
    h.send(h.ack(1, 1));
    h.expect_nothing();
    EXPECT_FALSE(h.engine.state_of(h.local, h.remote));
    EXPECT_EQ(h.engine.socket_count(), 1u);  // only the listener
    EXPECT_EQ(h.engine.time_wait_count(), 0u);  // the passive closer has none
}

TEST(TcpClose, FinAckPiggybacksOnPromptClose) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::FIN));
    h.advance(Duration::from_millis(10));
    h.engine.close(s, h.now);
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.our_seq(), h.peer_seq(1));
    h.advance(Duration::from_millis(100));
    h.expect_nothing();  // the delayed ACK went with the FIN
}

// RFC 9293 §3.6 case 3 (simultaneous close): FIN-WAIT-1 + FIN → CLOSING
// (ACK sent) → TIME-WAIT on the ACK of our FIN. Both ends keep TIME-WAIT.
TEST(TcpClose, SimultaneousCloseThroughClosing) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.recv();
    h.send(h.data(0, 0, f::FIN));  // the peer's FIN does not ack ours
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(1), h.peer_seq(1));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::Closing);
    h.send(h.ack(1, 1));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::TimeWait);
}

// Data and FIN in one segment: the data is read, then end of stream.
TEST(TcpClose, FinWithDataDeliversDataThenEof) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::FIN | f::PSH), "bye");
    EXPECT_EQ(h.engine.state(s), TcpState::CloseWait);
    EXPECT_EQ(h.read_all(s), "bye");
    std::vector<uint8_t> buf(10);
    EXPECT_EQ(*h.engine.recv(s, h.now, buf), 0u);
}

// RFC 9293 §3.6: "CLOSE ... the user ... may continue to RECEIVE until
// told that the remote side has closed" — shutdown(SHUT_WR).
TEST(TcpClose, HalfCloseKeepsReceiving) {
    Harness h;
    const SocketId s = h.accept_established();
    ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.our_seq(), h.peer_seq());
    h.send(h.ack(1));
    EXPECT_EQ(h.engine.state(s), TcpState::FinWait2);
    h.send(h.data(0, 1, f::PSH), "more data");
    EXPECT_EQ(h.read_all(s), "more data");
    auto w = h.engine.send(s, h.now, bytes("x"));
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().value, EPIPE);
    EXPECT_TRUE(h.engine.readiness(s).writable);  // a write would not block: EPIPE
    h.send(h.data(9, 1, f::FIN));
    // tcp_time_wait(): the connection moves to a TIME_WAIT entry; the
    // socket itself is CLOSED.
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::TimeWait);
    std::vector<uint8_t> buf(10);
    EXPECT_EQ(*h.engine.recv(s, h.now, buf), 0u);
}

// shutdown(SHUT_RD): reads return end of stream once the queue is empty;
// the connection itself goes on (Linux sends nothing).
TEST(TcpClose, ShutdownReadReportsEof) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::PSH), "abc");
    h.clear();
    ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Read));
    h.expect_nothing();
    EXPECT_EQ(h.read_all(s), "abc");
    std::vector<uint8_t> buf(10);
    EXPECT_EQ(*h.engine.recv(s, h.now, buf), 0u);
    const Readiness r = h.engine.readiness(s);
    EXPECT_TRUE(r.readable);
    EXPECT_TRUE(r.rdhup);
    EXPECT_FALSE(r.hup);
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
}

// tcp_close(): unread data → RST instead of FIN (RFC 2525 §2.17), the
// socket gone at once.
TEST(TcpClose, CloseWithUnreadDataSendsReset) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::PSH), "unread");
    h.clear();
    h.engine.close(s, h.now);
    EXPECT_SEGMENT(h.recv(), f::RST | f::ACK, h.our_seq(), h.peer_seq(6));
    EXPECT_FALSE(h.engine.state_of(h.local, h.remote));
    EXPECT_EQ(h.engine.counters().aborts_on_close, 1u);
    EXPECT_EQ(h.engine.time_wait_count(), 0u);
}

// SO_LINGER {1, 0}: close() resets and leaves no TIME_WAIT.
TEST(TcpClose, LingerZeroResets) {
    Harness h;
    const SocketId s = h.accept_established();
    ASSERT_TRUE(h.engine.set_linger(s, Linger{true, 0}));
    EXPECT_EQ(*h.engine.get_linger(s), (Linger{true, 0}));
    h.engine.close(s, h.now);
    EXPECT_SEGMENT(h.recv(), f::RST | f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_FALSE(h.engine.state_of(h.local, h.remote));
    EXPECT_EQ(h.engine.time_wait_count(), 0u);
}

TEST(TcpClose, AbortResets) {
    Harness h;
    const SocketId s = h.connect_established();
    h.engine.abort(s, h.now);
    EXPECT_SEGMENT(h.recv(), f::RST | f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_EQ(h.engine.socket_count(), 0u);
}

// SO_LINGER with a timeout: the FIN handshake proceeds as usual.
TEST(TcpClose, LingerWithTimeoutClosesGracefully) {
    Harness h;
    const SocketId s = h.accept_established();
    ASSERT_TRUE(h.engine.set_linger(s, Linger{true, 5}));
    h.engine.close(s, h.now);
    EXPECT_EQ(h.recv().repr.flags, f::FIN | f::ACK);
}

// An orphaned FIN_WAIT2 lives tcp_fin_timeout, then goes without a word.
TEST(TcpClose, OrphanFinWait2ExpiresAfterFinTimeout) {
    TcpConfig config = test_config();
    config.fin_timeout = Duration::from_secs(30);
    Harness h(config);
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.recv();
    h.send(h.ack(1));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::FinWait2);
    h.advance(Duration::from_secs(30) - Duration::from_millis(1));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::FinWait2);
    h.advance(Duration::from_millis(1));
    h.expect_nothing();
    EXPECT_FALSE(h.engine.state_of(h.local, h.remote));
    EXPECT_EQ(h.engine.time_wait_count(), 0u);
}

// A FIN_WAIT2 socket still held by the application (shutdown) waits for
// the peer indefinitely.
TEST(TcpClose, FinWait2WithOwnerDoesNotExpire) {
    Harness h;
    const SocketId s = h.accept_established();
    ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
    h.send(h.ack(1));
    h.advance(Duration::from_secs(3600));
    EXPECT_EQ(h.engine.state(s), TcpState::FinWait2);
}

// tcp_rcv_state_process(): "RFC 793 says to queue data in these states,
// RFC 1122 says we MUST send a reset" — data to a closed (orphaned)
// FIN_WAIT2 socket resets the connection.
TEST(TcpClose, DataToOrphanFinWait2GetsReset) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.recv();
    h.send(h.ack(1));
    h.send(h.data(0, 1, f::PSH), "late");
    Sent rst = h.recv();
    EXPECT_EQ(rst.repr.flags, f::RST);
    EXPECT_EQ(rst.repr.seq, h.our_seq(1));
    EXPECT_FALSE(h.engine.state_of(h.local, h.remote));
    EXPECT_EQ(h.engine.counters().aborts_on_data, 1u);
}

// RFC 9293 §3.10.7.4 TIME-WAIT: "The only thing that can arrive in this
// state is a retransmission of the remote FIN. Acknowledge it, and restart
// the 2 MSL timeout."
TEST(TcpTimeWait, RetransmittedFinIsAckedAndRestartsTimer) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.recv();
    h.send(h.ack(1));
    h.send(h.data(0, 1, f::FIN));
    h.recv();
    h.advance(Duration::from_secs(30));
    h.send(h.data(0, 1, f::FIN));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(1), h.peer_seq(1));
    h.advance(Duration::from_secs(59));
    EXPECT_EQ(h.engine.time_wait_count(), 1u);
    h.advance(Duration::from_secs(1));
    EXPECT_EQ(h.engine.time_wait_count(), 0u);
}

// tcp_timewait_state_process() with tcp_rfc1337 = 0: an in-window RST ends
// TIME_WAIT ("TIME_WAIT assassination", RFC 1337).
TEST(TcpTimeWait, InWindowRstKillsEntry) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.send(h.ack(1));
    h.send(h.data(0, 1, f::FIN));
    h.clear();
    h.send(h.seg(f::RST, h.peer_seq(1)));
    h.expect_nothing();
    EXPECT_EQ(h.engine.time_wait_count(), 0u);
    EXPECT_EQ(h.engine.counters().time_wait_killed, 1u);
}

TEST(TcpTimeWait, Rfc1337IgnoresRst) {
    TcpConfig config = test_config();
    config.rfc1337 = true;
    Harness h(config);
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.send(h.ack(1));
    h.send(h.data(0, 1, f::FIN));
    h.clear();
    h.send(h.seg(f::RST, h.peer_seq(1)));
    EXPECT_EQ(h.engine.time_wait_count(), 1u);
}

// RFC 1122 §4.2.2.13 / tcp_timewait_state_process(): a new SYN with a
// higher sequence number reopens the connection through the listener, with
// ISN = old SND.NXT + 65535 + 2.
TEST(TcpTimeWait, NewSynReopensConnection) {
    Harness h;
    const SocketId l = h.listen();
    const SocketId s = h.accept_established(std::nullopt, l);
    h.engine.close(s, h.now);
    h.send(h.ack(1));
    h.send(h.data(0, 1, f::FIN));
    h.clear();
    const SeqNumber old_snd_nxt = h.our_seq(1);
    h.send(h.syn(remote_iss + 100000));
    Sent synack = h.recv();
    EXPECT_EQ(synack.repr.flags, f::SYN | f::ACK);
    EXPECT_EQ(synack.repr.seq, old_snd_nxt + 65537);
    EXPECT_EQ(synack.repr.ack, SeqNumber(remote_iss + 100001));
    EXPECT_EQ(h.engine.time_wait_count(), 0u);
    EXPECT_EQ(h.engine.counters().time_wait_reopened, 1u);
}

// An old SYN (sequence number below RCV.NXT) is answered with an ACK.
TEST(TcpTimeWait, OldSynGetsAck) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.send(h.ack(1));
    h.send(h.data(0, 1, f::FIN));
    h.clear();
    h.send(h.syn(remote_iss - 5));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(1), h.peer_seq(1));
    EXPECT_EQ(h.engine.time_wait_count(), 1u);
}

// RFC 6298 §5: LAST-ACK's FIN is retransmitted when its ACK does not come.
TEST(TcpClose, LastAckRetransmitsFin) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::FIN));
    h.engine.close(s, h.now);
    h.clear();
    h.advance(Duration::from_millis(200));
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.our_seq(), h.peer_seq(1));
    h.advance(Duration::from_millis(400));
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.our_seq(), h.peer_seq(1));
    EXPECT_EQ(h.engine.counters().rto_timeouts, 2u);
}

TEST(TcpClose, FinWait1RetransmitsFin) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.recv();
    h.advance(Duration::from_millis(200));
    EXPECT_SEGMENT(h.recv(), f::FIN | f::ACK, h.our_seq(), h.peer_seq());
}

// tcp_close_state(): SYN_SENT → CLOSE without a segment.
TEST(TcpClose, CloseWhileConnectingIsSilent) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    h.recv();
    h.engine.close(s, h.now);
    h.expect_nothing();
    EXPECT_EQ(h.engine.socket_count(), 0u);
    h.advance(Duration::from_secs(10));
    h.expect_nothing();
}

// inet_shutdown() on an unconnected socket: ENOTCONN.
TEST(TcpClose, ShutdownUnconnectedIsEnotconn) {
    Harness h;
    const SocketId s = h.engine.open();
    auto r = h.engine.shutdown(s, h.now, ShutdownHow::Both);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, ENOTCONN);
}

// tcp_reset(): a RST in CLOSE-WAIT reports EPIPE, not ECONNRESET.
TEST(TcpClose, ResetInCloseWaitIsEpipe) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::FIN));
    h.send(h.seg(f::RST, h.peer_seq(1)));
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    EXPECT_EQ(h.engine.take_error(s), EPIPE);
}

// Closing both ways from the application side: shutdown(SHUT_RDWR) sends
// the FIN and polls HUP once everything is shut.
TEST(TcpClose, ShutdownBothSignalsHangup) {
    Harness h;
    const SocketId s = h.accept_established();
    ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Both));
    EXPECT_EQ(h.recv().repr.flags, f::FIN | f::ACK);
    EXPECT_TRUE(h.engine.readiness(s).hup);
}

// RFC 9293 §3.10.7.4 FIN-WAIT-1: "If our FIN has been ACKed (perhaps in
// this segment), then enter TIME-WAIT" — a FIN,ACK acknowledging our FIN
// goes straight to TIME-WAIT.
TEST(TcpClose, FinAckingOurFinGoesStraightToTimeWait) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    h.recv();
    h.send(h.data(0, 1, f::FIN));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(1), h.peer_seq(1));
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::TimeWait);
}

// Closing a listener: the listener is gone and its port free again.
TEST(TcpClose, ClosedListenerFreesPort) {
    Harness h;
    const SocketId l = h.listen();
    h.engine.close(l, h.now);
    h.send(h.syn());
    EXPECT_EQ(h.recv().repr.flags, f::RST | f::ACK);
    const SocketId again = h.engine.open();
    EXPECT_TRUE(h.engine.bind(again, Endpoint{local_ip, local_port}));
}

// The FIN waits behind queued data and goes on the last data segment.
TEST(TcpClose, FinRidesOnLastDataSegment) {
    Harness h;
    const SocketId s = h.connect_established(mss_only(), 1460);
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(2000)));
    ASSERT_TRUE(h.engine.shutdown(s, h.now, ShutdownHow::Write));
    EXPECT_EQ(h.recv().repr.flags, f::ACK);
    h.expect_nothing();  // the window is full
    h.send(h.ack(1460, 0, 1460));
    Sent last = h.recv();
    EXPECT_SEGMENT(last, f::ACK | f::PSH | f::FIN, h.our_seq(1460), h.peer_seq());
    EXPECT_EQ(last.payload.size(), 540u);
}

// The orphan's FIN handshake completes with the application gone: the
// socket handle is released at close() (EBADF), the connection lives on.
TEST(TcpClose, HandleIsGoneAfterClose) {
    Harness h;
    const SocketId s = h.accept_established();
    h.engine.close(s, h.now);
    EXPECT_FALSE(h.engine.state(s));
    std::vector<uint8_t> buf(4);
    EXPECT_EQ(h.engine.recv(s, h.now, buf).error().value, EBADF);
    EXPECT_EQ(h.engine.state_of(h.local, h.remote), TcpState::FinWait1);
}

}  // namespace
}  // namespace ustack::tcp::testing
