// Data transfer: segmentation, Nagle and TCP_CORK, send buffer limits,
// receive windows (RFC 9293 §3.8.6, RFC 7323 scaling), zero window and
// probes, delayed ACK (RFC 9293 §3.8.6.3), out-of-order data and SACK
// blocks (RFC 2018), recv()/send() error rules.
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

TcpConfig no_quickack_config() {
    TcpConfig config = test_config();
    config.max_quickacks = 0;
    return config;
}

// ---------------------------------------------------------------- sending

// RFC 9293 §3.7.1/§3.8.6.2.1: full-sized segments of SMSS (MTU 1500 - 40),
// the tail with PSH.
TEST(TcpSend, SegmentsAtMss) {
    Harness h;
    const SocketId s = h.connect_established();
    const auto payload = pattern(3000);
    ASSERT_EQ(*h.engine.send(s, h.now, payload), 3000u);
    Sent a = h.recv();
    Sent b = h.recv();
    Sent c = h.recv();
    h.expect_nothing();
    EXPECT_SEGMENT(a, f::ACK, h.our_seq(0), h.peer_seq());
    EXPECT_SEGMENT(b, f::ACK, h.our_seq(1460), h.peer_seq());
    EXPECT_SEGMENT(c, f::ACK | f::PSH, h.our_seq(2920), h.peer_seq());
    EXPECT_EQ(a.payload.size(), 1460u);
    EXPECT_EQ(b.payload.size(), 1460u);
    EXPECT_EQ(c.payload.size(), 80u);
    std::vector<uint8_t> joined = a.payload;
    joined.insert(joined.end(), b.payload.begin(), b.payload.end());
    joined.insert(joined.end(), c.payload.begin(), c.payload.end());
    EXPECT_EQ(joined, payload);
}

// The peer's MSS option bounds our segments (RFC 9293 §3.7.1).
TEST(TcpSend, PeerMssBoundsSegments) {
    Harness h;
    const SocketId s = h.connect_established(mss_only(536));
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(1000)));
    EXPECT_EQ(h.recv().payload.size(), 536u);
    EXPECT_EQ(h.recv().payload.size(), 464u);
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::MaxSeg), 536);
}

// RFC 9293 §3.8.6.2.1: no more than the offered window; the rest follows
// the ACK that opens it.
TEST(TcpSend, LimitedByPeerWindow) {
    Harness h;
    const SocketId s = h.connect_established(mss_only(), 2000);
    ASSERT_EQ(*h.engine.send(s, h.now, pattern(3000)), 3000u);
    EXPECT_EQ(h.recv().payload.size(), 1460u);
    Sent b = h.recv();
    EXPECT_EQ(b.payload.size(), 540u);
    h.expect_nothing();
    h.send(h.ack(2000, 0, 2000));
    Sent c = h.recv();
    EXPECT_SEGMENT(c, f::ACK | f::PSH, h.our_seq(2000), h.peer_seq());
    EXPECT_EQ(c.payload.size(), 1000u);
}

// SO_SNDBUF bounds what send() takes; a full buffer is EAGAIN and the
// socket stops polling writable.
TEST(TcpSend, FullSendBufferIsEagain) {
    Harness h;
    const SocketId l = h.listen();
    ASSERT_TRUE(h.engine.set_option(l, h.now, SockOpt::SndBuf, 4096));
    EXPECT_EQ(*h.engine.get_option(l, SockOpt::SndBuf), 8192);  // doubled, as Linux reports
    TcpRepr syn = h.syn();
    syn.window = 0;
    h.handshake_syn(syn);
    h.send(h.seg(f::ACK, h.peer_seq(), h.iss + 1, 0));
    const SocketId s = h.engine.accept(l)->id;
    EXPECT_EQ(*h.engine.send(s, h.now, pattern(10000)), 4096u);
    auto again = h.engine.send(s, h.now, pattern(10));
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().value, EAGAIN);
    EXPECT_FALSE(h.engine.readiness(s).writable);
}

// RFC 9293 §3.7.4 Nagle (Minshall's variant, Linux tcp_nagle_check): a
// small segment waits while another small one is unacknowledged.
TEST(TcpSend, NagleHoldsSmallSegmentWhileSmallOneUnacked) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("a")));
    EXPECT_EQ(h.recv().text(), "a");
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("b")));
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("c")));
    h.expect_nothing();
    h.send(h.ack(1));
    Sent bc = h.recv();
    EXPECT_SEGMENT(bc, f::ACK | f::PSH, h.our_seq(1), h.peer_seq());
    EXPECT_EQ(bc.text(), "bc");
}

// TCP_NODELAY: every write goes at once.
TEST(TcpSend, NoDelaySendsImmediately) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::NoDelay, 1));
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("a")));
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("b")));
    EXPECT_EQ(h.recv().text(), "a");
    EXPECT_EQ(h.recv().text(), "b");
}

// Setting TCP_NODELAY pushes what Nagle held (tcp_push_pending_frames).
TEST(TcpSend, SettingNoDelayFlushesHeldData) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("a")));
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("b")));
    h.recv();
    h.expect_nothing();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::NoDelay, 1));
    EXPECT_EQ(h.recv().text(), "b");
}

// TCP_CORK: partial segments wait until the cork is removed; full ones go.
TEST(TcpSend, CorkHoldsPartialSegmentsUntilUncorked) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::Cork, 1));
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(1500)));
    EXPECT_EQ(h.recv().payload.size(), 1460u);
    h.expect_nothing();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::Cork, 0));
    EXPECT_EQ(h.recv().payload.size(), 40u);
}

// TCP_CORK's 200 ms ceiling (tcp(7)): the probe timer sends corked data.
TEST(TcpSend, CorkedDataGoesAfter200ms) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::Cork, 1));
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("abc")));
    h.advance(Duration::from_millis(199));
    h.expect_nothing();
    h.advance(Duration::from_millis(1));
    Sent seg = h.recv();
    EXPECT_SEGMENT(seg, f::ACK | f::PSH, h.our_seq(), h.peer_seq());
    EXPECT_EQ(seg.text(), "abc");
}

// tcp_sendmsg_locked(): send before connect is EPIPE, while connecting
// EAGAIN (non-blocking).
TEST(TcpSend, SendBeforeConnectIsEpipeAndWhileConnectingEagain) {
    Harness h;
    const SocketId s = h.engine.open();
    auto r = h.engine.send(s, h.now, bytes("x"));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EPIPE);
    (void)h.engine.connect(s, h.now, h.remote);
    auto r2 = h.engine.send(s, h.now, bytes("x"));
    ASSERT_FALSE(r2);
    EXPECT_EQ(r2.error().value, EAGAIN);
}

// Data is ACKed by the peer: the send buffer frees and the RTO timer stops
// (RFC 6298 §5.2).
TEST(TcpSend, AckFreesBufferAndStopsTimer) {
    Harness h;
    const SocketId s = h.connect_established();
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(100)));
    h.recv();
    EXPECT_EQ(h.engine.info(s)->send_queued, 100u);
    EXPECT_TRUE(h.engine.poll_at());
    h.send(h.ack(100));
    EXPECT_EQ(h.engine.info(s)->send_queued, 0u);
    EXPECT_FALSE(h.engine.poll_at());
}

// ---------------------------------------------------------------- receiving

// Linux starts in quick-ACK mode: the first segments are ACKed at once.
TEST(TcpReceive, FirstSegmentsAreAckedAtOnce) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::PSH), "hello");
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq(5));
    EXPECT_EQ(h.read_all(s), "hello");
    EXPECT_TRUE(h.engine.readiness(s).writable);
    EXPECT_FALSE(h.engine.readiness(s).readable);
}

// RFC 9293 §3.8.6.3: "an ACK should not be excessively delayed; in
// particular, the delay MUST be less than 0.5 seconds" — 40 ms here.
TEST(TcpReceive, DelayedAckAfter40ms) {
    Harness h(no_quickack_config());
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::PSH), "x");
    h.advance(Duration::from_millis(39));
    h.expect_nothing();
    h.advance(Duration::from_millis(1));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq(1));
    EXPECT_EQ(h.engine.counters().delayed_acks, 1u);
    EXPECT_EQ(h.read_all(s), "x");
}

// RFC 9293 §3.8.6.3: "an ACK SHOULD be generated for at least every second
// full-sized segment".
TEST(TcpReceive, AckEverySecondFullSegment) {
    Harness h(no_quickack_config());
    h.accept_established();
    h.send(h.data(0), pattern(1460));
    h.expect_nothing();
    h.send(h.data(1460), pattern(1460));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq(2920));
    h.send(h.data(2920), pattern(1460));
    h.expect_nothing();
}

// A reply sent within the delayed-ACK time carries the ACK (piggyback).
TEST(TcpReceive, ReplyCarriesTheDelayedAck) {
    Harness h(no_quickack_config());
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::PSH), "ping");
    h.advance(Duration::from_millis(10));
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("pong")));
    Sent reply = h.recv();
    EXPECT_SEGMENT(reply, f::ACK | f::PSH, h.our_seq(), h.peer_seq(4));
    h.advance(Duration::from_millis(100));
    h.expect_nothing();
}

// RFC 5681 §4.2: "an immediate duplicate ACK SHOULD be sent when an out-
// of-order segment arrives"; RFC 2018 §4: with SACK blocks.
TEST(TcpReceive, OutOfOrderSegmentGetsImmediateSackAck) {
    TcpConfig config = no_quickack_config();
    config.sack = true;
    Harness h(config);
    TcpRepr syn = h.syn();
    syn.options.sack_permitted = true;
    const SocketId s = h.accept_established(syn);
    const auto payload = pattern(2920);
    h.send(h.data(1460), std::vector<uint8_t>(payload.begin() + 1460, payload.end()));
    Sent dup = h.recv();
    EXPECT_SEGMENT(dup, f::ACK, h.our_seq(), h.peer_seq(0));
    ASSERT_EQ(dup.repr.options.sack_count, 1);
    EXPECT_EQ(dup.repr.options.sack_blocks[0], (wire::SackBlock{h.peer_seq(1460), h.peer_seq(2920)}));
    EXPECT_EQ(h.engine.counters().ooo_queued, 1u);
    EXPECT_FALSE(h.engine.readiness(s).readable);
    // RFC 5681 §4.2: "an immediate ACK SHOULD be sent when the incoming
    // segment fills in all or part of a gap".
    h.send(h.data(0), std::vector<uint8_t>(payload.begin(), payload.begin() + 1460));
    Sent full = h.recv();
    EXPECT_SEGMENT(full, f::ACK, h.our_seq(), h.peer_seq(2920));
    EXPECT_EQ(full.repr.options.sack_count, 0);
    std::vector<uint8_t> buf(4000);
    EXPECT_EQ(*h.engine.recv(s, h.now, buf), 2920u);
    buf.resize(2920);
    EXPECT_EQ(buf, payload);
}

// RFC 2018 §4: "The first SACK block ... MUST specify the contiguous block
// of data containing the segment which triggered this ACK".
TEST(TcpReceive, SackBlocksMostRecentFirst) {
    TcpConfig config = test_config();
    config.sack = true;
    Harness h(config);
    TcpRepr syn = h.syn();
    syn.options.sack_permitted = true;
    h.accept_established(syn);
    h.send(h.data(1000), pattern(100));
    h.recv();
    h.send(h.data(3000), pattern(100));
    Sent ack = h.recv();
    ASSERT_EQ(ack.repr.options.sack_count, 2);
    EXPECT_EQ(ack.repr.options.sack_blocks[0].left, h.peer_seq(3000));
    EXPECT_EQ(ack.repr.options.sack_blocks[1].left, h.peer_seq(1000));
}

// Without SACK negotiated the ACK carries no blocks.
TEST(TcpReceive, NoSackBlocksWithoutPermission) {
    TcpConfig config = test_config();
    config.sack = true;
    Harness h(config);
    h.accept_established();
    h.send(h.data(1000), pattern(100));
    Sent ack = h.recv();
    EXPECT_EQ(ack.repr.options.sack_count, 0);
    EXPECT_EQ(ack.repr.ack, h.peer_seq());
}

// tcp_data_queue(): "A retransmit, 2nd most common case. Force an
// immediate ack."
TEST(TcpReceive, DuplicateDataIsAckedAtOnce) {
    Harness h(no_quickack_config());
    const SocketId s = h.accept_established();
    h.send(h.data(0, 0, f::PSH), "abc");
    h.advance(Duration::from_millis(40));
    h.clear();
    h.send(h.data(0, 0, f::PSH), "abc");
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq(3));
    EXPECT_EQ(h.read_all(s), "abc");
}

// Overlapping retransmission: only the new bytes are kept.
TEST(TcpReceive, OverlappingSegmentKeepsNewBytesOnly) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(0), "hello");
    h.send(h.data(3), "lo world");
    EXPECT_EQ(h.read_all(s), "hello world");
}

// RFC 9293 §3.10.7.4 first check: a segment beyond the window is not
// acceptable: "an acknowledgment should be sent in reply".
TEST(TcpReceive, SegmentBeyondWindowGetsAckAndIsDropped) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(200000), "far");
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_EQ(h.engine.counters().out_of_window, 1u);
    EXPECT_EQ(h.engine.info(s)->ooo_ranges, 0u);
}

// The receive window is the free buffer space (SO_RCVBUF, half for data as
// Linux's default tcp_adv_win_scale); a full buffer announces zero and
// data arriving into a zero window is dropped with an ACK (tcp_data_queue).
TEST(TcpReceive, WindowClosesAsBufferFillsAndDropsIntoZeroWindow) {
    Harness h;
    const SocketId l = h.listen();
    ASSERT_TRUE(h.engine.set_option(l, h.now, SockOpt::RcvBuf, 2048));
    EXPECT_EQ(*h.engine.get_option(l, SockOpt::RcvBuf), 4096);
    Sent synack = h.handshake_syn(h.syn());
    EXPECT_EQ(synack.repr.window, 1460);  // 2048 rounded down to one segment
    h.send(h.seg(f::ACK, h.peer_seq(), h.iss + 1));
    const SocketId s = h.engine.accept(l)->id;
    h.send(h.data(0), pattern(1460));
    Sent ack = h.recv();
    EXPECT_EQ(ack.repr.ack, h.peer_seq(1460));
    // 588 bytes free, less than half the buffer and less than a segment:
    // RFC 9293 §3.8.6.2.2 receiver SWS avoidance offers zero.
    EXPECT_EQ(ack.repr.window, 0);
    h.send(h.data(1460), "z");
    Sent zero = h.recv();
    EXPECT_EQ(zero.repr.ack, h.peer_seq(1460));
    EXPECT_EQ(zero.repr.window, 0);
    EXPECT_EQ(h.engine.counters().zero_window_drops, 1u);
    // Reading opens the window: tcp_cleanup_rbuf() sends a window update.
    std::vector<uint8_t> buf(2000);
    EXPECT_EQ(*h.engine.recv(s, h.now, buf), 1460u);
    Sent update = h.recv();
    EXPECT_SEGMENT(update, f::ACK, h.our_seq(), h.peer_seq(1460));
    EXPECT_EQ(update.repr.window, 1460);
}

// RFC 7323 §2.3: with window scaling both ways, our window field is the
// window >> our shift, and the peer's field is scaled by its shift.
TEST(TcpReceive, WindowScalingAppliesBothWays) {
    TcpConfig config = test_config();
    config.window_scaling = true;
    Harness h(config);
    const SocketId l = h.listen();
    TcpRepr syn = h.syn();
    syn.options.window_scale = 2;
    h.handshake_syn(syn);
    h.send(h.seg(f::ACK, h.peer_seq(), h.iss + 1, 1000));  // 1000 << 2 = 4000 bytes
    const SocketId s = h.engine.accept(l)->id;
    EXPECT_EQ(h.engine.info(s)->snd_wnd, 4000u);
    EXPECT_EQ(h.engine.info(s)->rcv_wscale, 7);
    ASSERT_TRUE(h.engine.send(s, h.now, pattern(8000)));
    EXPECT_EQ(h.recv().payload.size(), 1460u);
    EXPECT_EQ(h.recv().payload.size(), 1460u);
    Sent last = h.recv();
    EXPECT_EQ(last.payload.size(), 1080u);
    h.expect_nothing();
    // Our window: 64 KiB free >> 7.
    EXPECT_EQ(last.repr.window, 65536 >> 7);
}

// RFC 7323 §2.2: scaling is used only if both SYNs carried the option.
TEST(TcpReceive, NoScalingWhenPeerDoesNotOfferIt) {
    TcpConfig config = test_config();
    config.window_scaling = true;
    Harness h(config);
    const SocketId s = h.accept_established();
    EXPECT_EQ(h.engine.info(s)->rcv_wscale, 0);
    EXPECT_FALSE(h.engine.info(s)->window_scaling);
    h.send(h.data(0), "x");
    EXPECT_GT(h.recv().repr.window, 60000);
}

// RFC 9293 §3.8.6.1 zero-window probing: with the peer's window at zero
// the sender probes (Linux: <SEQ=SND.UNA-1>, no data) with exponential
// backoff; the probe's answer opening the window releases the data.
TEST(TcpSend, ZeroWindowProbesBackOffUntilWindowOpens) {
    Harness h;
    const SocketId s = h.connect_established(mss_only(), 0);
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("abc")));
    h.expect_nothing();
    h.advance(Duration::from_millis(200));
    Sent p1 = h.recv();
    EXPECT_SEGMENT(p1, f::ACK, h.our_seq() - 1, h.peer_seq());
    EXPECT_TRUE(p1.payload.empty());
    h.advance(Duration::from_millis(399));
    h.expect_nothing();
    h.advance(Duration::from_millis(1));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.our_seq() - 1, h.peer_seq());
    h.send(h.ack(0, 0, 0));  // still closed
    h.expect_nothing();
    h.advance(Duration::from_millis(800));
    EXPECT_EQ(h.recv().repr.seq, h.our_seq() - 1);
    EXPECT_EQ(h.engine.counters().zero_window_probes, 3u);
    h.send(h.ack(0, 0, 100));
    Sent data = h.recv();
    EXPECT_SEGMENT(data, f::ACK | f::PSH, h.our_seq(), h.peer_seq());
    EXPECT_EQ(data.text(), "abc");
}

// A zero-window probe carrying data is answered but the data is not taken.
TEST(TcpReceive, ZeroWindowProbeWithDataIsAnsweredNotTaken) {
    Harness h;
    const SocketId l = h.listen();
    ASSERT_TRUE(h.engine.set_option(l, h.now, SockOpt::RcvBuf, 1460));  // 1460 bytes of payload
    h.handshake_syn(h.syn());
    h.send(h.seg(f::ACK, h.peer_seq(), h.iss + 1));
    const SocketId s = h.engine.accept(l)->id;
    h.send(h.data(0), pattern(1460));
    EXPECT_EQ(h.recv().repr.window, 0);
    h.send(h.data(1460), "p");
    Sent ack = h.recv();
    EXPECT_EQ(ack.repr.ack, h.peer_seq(1460));
    EXPECT_EQ(ack.repr.window, 0);
    EXPECT_EQ(h.engine.info(s)->recv_queued, 1460u);
}

// recv() rules (tcp_recvmsg): EAGAIN with nothing queued, ENOTCONN on a
// listener, MSG_PEEK leaves the data.
TEST(TcpReceive, RecvErrorsAndPeek) {
    Harness h;
    const SocketId s = h.accept_established();
    std::vector<uint8_t> buf(10);
    auto empty = h.engine.recv(s, h.now, buf);
    ASSERT_FALSE(empty);
    EXPECT_EQ(empty.error().value, EAGAIN);
    auto on_listener = h.engine.recv(h.listener_id, h.now, buf);
    ASSERT_FALSE(on_listener);
    EXPECT_EQ(on_listener.error().value, ENOTCONN);
    h.send(h.data(0), "peek");
    EXPECT_EQ(*h.engine.recv(s, h.now, buf, true), 4u);
    EXPECT_EQ(h.read_all(s), "peek");
}

TEST(TcpReceive, RecvOnUnconnectedIsEnotconn) {
    Harness h;
    const SocketId s = h.engine.open();
    std::vector<uint8_t> buf(10);
    auto r = h.engine.recv(s, h.now, buf);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, ENOTCONN);
}

// Out-of-order ranges are bounded: past the limit segments are dropped and
// counted (TCPOFODrop).
TEST(TcpReceive, OutOfOrderRangeLimit) {
    TcpConfig config = test_config();
    config.max_ooo_ranges = 2;
    Harness h(config);
    h.accept_established();
    h.send(h.data(100), "a");
    h.send(h.data(200), "b");
    h.send(h.data(300), "c");
    EXPECT_EQ(h.engine.counters().ooo_queued, 2u);
    EXPECT_EQ(h.engine.counters().ooo_dropped, 1u);
}

// A FIN that arrives out of order is processed once the gap is filled.
TEST(TcpReceive, OutOfOrderFinWaitsForTheGap) {
    Harness h;
    const SocketId s = h.accept_established();
    h.send(h.data(3, 0, f::FIN), "def");
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    h.send(h.data(0), "abc");
    EXPECT_EQ(h.engine.state(s), TcpState::CloseWait);
    EXPECT_EQ(h.read_all(s), "abcdef");
}

// tcp_event_data_recv(): after the peer was silent longer than an RTO the
// receiver ACKs quickly again ("sender failed to restart window").
TEST(TcpReceive, QuickAckAgainAfterIdle) {
    TcpConfig config = test_config();
    config.max_quickacks = 2;
    Harness h(config);
    h.accept_established();
    for (uint32_t i = 0; i < 3; ++i) {
        h.send(h.data(i), "x");
    }
    EXPECT_EQ(h.pending(), 2u);  // two quick ACKs, then delayed
    h.advance(Duration::from_secs(2));
    h.clear();
    h.send(h.data(3), "y");
    EXPECT_EQ(h.recv().repr.ack, h.peer_seq(4));
}

// Segments and counters: every segment in and out is counted.
TEST(TcpReceive, SegmentCounters) {
    Harness h;
    h.accept_established();
    h.send(h.data(0), "abc");
    h.recv();
    EXPECT_EQ(h.engine.counters().segments_in, 3u);   // SYN, ACK, data
    EXPECT_EQ(h.engine.counters().segments_out, 2u);  // SYN-ACK, ACK
}

// TCP_QUICKACK = 0 enters ping-pong mode: ACKs wait for the timer.
TEST(TcpReceive, QuickAckOffDelaysAcks) {
    Harness h;
    const SocketId s = h.accept_established();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::QuickAck, 0));
    h.send(h.data(0), "x");
    h.expect_nothing();
    h.advance(Duration::from_millis(40));
    EXPECT_EQ(h.recv().repr.ack, h.peer_seq(1));
}

}  // namespace
}  // namespace ustack::tcp::testing
