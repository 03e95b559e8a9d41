// Opening connections: LISTEN, SYN-RECEIVED, SYN-SENT (RFC 9293 §3.5,
// §3.10.7.2, §3.10.7.3), backlog semantics (Linux tcp_conn_request),
// handshake retransmission and ICMP errors during connect.
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

// ---------------------------------------------------------------- LISTEN

// RFC 9293 §3.10.7.2: "An incoming RST segment could not be valid ... An
// incoming RST should be ignored."
TEST(TcpListen, RstIsIgnored) {
    Harness h;
    h.listen();
    h.send(h.seg(f::RST, SeqNumber(5)));
    h.expect_nothing();
}

// RFC 9293 §3.10.7.2: "Any acknowledgment is bad if it arrives on a
// connection still in the LISTEN state. An acceptable reset segment should
// be formed for any arriving ACK-bearing segment. <SEQ=SEG.ACK><CTL=RST>"
TEST(TcpListen, AckGetsReset) {
    Harness h;
    h.listen();
    h.send(h.seg(f::ACK, SeqNumber(5), SeqNumber(777)));
    Sent rst = h.recv();
    EXPECT_EQ(rst.repr.flags, f::RST);
    EXPECT_EQ(rst.repr.seq, SeqNumber(777));
    h.expect_nothing();
}

// RFC 9293 §3.10.7.2 "third check for a SYN": RCV.NXT = SEG.SEQ+1, a
// SYN,ACK <SEQ=ISS><ACK=RCV.NXT> with our MSS (RFC 9293 §3.7.1: MTU - 40).
TEST(TcpListen, SynGetsSynAck) {
    Harness h;
    h.listen();
    Sent synack = h.handshake_syn(h.syn());
    EXPECT_SEGMENT(synack, f::SYN | f::ACK, h.iss, SeqNumber(remote_iss + 1));
    EXPECT_EQ(synack.repr.options.mss, 1460);
    EXPECT_FALSE(synack.repr.options.timestamp);
    EXPECT_FALSE(synack.repr.options.window_scale);
    EXPECT_FALSE(synack.repr.options.sack_permitted);
    // tcp_select_initial_window(): 64 KiB rounded down to whole segments.
    EXPECT_EQ(synack.repr.window, 44 * 1460);
    EXPECT_EQ(synack.src, local_ip);
    EXPECT_EQ(synack.dst, remote_ip);
    EXPECT_EQ(h.engine.counters().passive_opens, 1u);
}

// RFC 9293 §3.10.7.2: "Any other control or text-bearing segment (not
// containing SYN) must have an ACK and thus would have been discarded by
// the ACK processing" — a bare FIN is dropped.
TEST(TcpListen, SegmentWithoutSynOrAckIsDropped) {
    Harness h;
    h.listen();
    h.send(h.seg(f::FIN, SeqNumber(5)));
    h.expect_nothing();
}

// RFC 7323 §2.2/§3.2, RFC 2018 §2: options are answered only when the SYN
// carried them, and the SYN-ACK echoes the peer's TSval.
TEST(TcpListen, SynAckCarriesNegotiatedOptions) {
    TcpConfig config = test_config();
    config.timestamps = config.sack = config.window_scaling = true;
    Harness h(config);
    h.listen();
    TcpRepr syn = h.syn();
    syn.options.window_scale = 7;
    syn.options.sack_permitted = true;
    syn.options.timestamp = wire::TcpTimestamp{4242, 0};
    Sent synack = h.handshake_syn(syn);
    ASSERT_TRUE(synack.repr.options.timestamp);
    EXPECT_EQ(synack.repr.options.timestamp->echo, 4242u);
    ASSERT_TRUE(synack.repr.options.window_scale);
    // tcp_select_initial_window(): shift 7 for a 6 MiB tcp_rmem[2].
    EXPECT_EQ(*synack.repr.options.window_scale, 7);
    EXPECT_TRUE(synack.repr.options.sack_permitted);
}

TEST(TcpListen, SynWithoutOptionsGetsNoOptionsBack) {
    TcpConfig config = test_config();
    config.timestamps = config.sack = config.window_scaling = true;
    Harness h(config);
    h.listen();
    Sent synack = h.handshake_syn(h.syn(remote_iss, std::nullopt));
    EXPECT_FALSE(synack.repr.options.timestamp);
    EXPECT_FALSE(synack.repr.options.window_scale);
    EXPECT_FALSE(synack.repr.options.sack_permitted);
    EXPECT_EQ(synack.repr.options.mss, 1460);
}

// RFC 9293 §3.10.7.4 (SYN-RECEIVED): "If SND.UNA < SEG.ACK =< SND.NXT, then
// enter ESTABLISHED state"; the connection is then in the accept queue.
TEST(TcpListen, AckCompletesHandshakeAndAcceptReturnsPeer) {
    Harness h;
    const SocketId l = h.listen();
    h.handshake_syn(h.syn());
    EXPECT_FALSE(h.engine.readiness(l).readable);
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 1));
    h.expect_nothing();
    EXPECT_TRUE(h.engine.readiness(l).readable);
    auto accepted = h.engine.accept(l);
    ASSERT_TRUE(accepted);
    EXPECT_EQ(accepted->peer, h.remote);
    EXPECT_EQ(h.engine.state(accepted->id), TcpState::Established);
    EXPECT_EQ(*h.engine.local_endpoint(accepted->id), h.local);
    auto none = h.engine.accept(l);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().value, EAGAIN);
}

TEST(TcpListen, AcceptOnNonListenerIsEinval) {
    Harness h;
    const SocketId s = h.engine.open();
    auto r = h.engine.accept(s);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EINVAL);
}

// tcp_check_req(): a retransmitted SYN for a half-open connection gets the
// same SYN-ACK again.
TEST(TcpSynReceived, RetransmittedSynResendsSynAck) {
    Harness h;
    h.listen();
    Sent first = h.handshake_syn(h.syn());
    h.send(h.syn());
    Sent again = h.recv();
    EXPECT_SEGMENT(again, f::SYN | f::ACK, first.repr.seq, SeqNumber(remote_iss + 1));
    h.expect_nothing();
}

// RFC 9293 §3.10.7.4: "If the segment acknowledgment is not acceptable,
// form a reset segment <SEQ=SEG.ACK><CTL=RST> and send it."
TEST(TcpSynReceived, UnacceptableAckGetsReset) {
    Harness h;
    h.listen();
    h.handshake_syn(h.syn());
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 100));
    Sent rst = h.recv();
    EXPECT_EQ(rst.repr.flags, f::RST);
    EXPECT_EQ(rst.repr.seq, h.iss + 100);
}

// RFC 9293 §3.10.7.4 second check: in SYN-RECEIVED from a passive OPEN a
// RST "return[s] this connection to LISTEN state" — the child goes
// silently and nothing is accepted.
TEST(TcpSynReceived, RstDropsHalfOpenConnection) {
    Harness h;
    const SocketId l = h.listen();
    h.handshake_syn(h.syn());
    h.send(h.seg(f::RST, SeqNumber(remote_iss + 1)));
    h.expect_nothing();
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 1));
    Sent rst = h.recv();  // no connection any more: RFC 9293 §3.10.7.1
    EXPECT_EQ(rst.repr.flags, f::RST);
    EXPECT_FALSE(h.engine.accept(l));
}

// Linux reqsk timer: SYN-ACK retransmitted after 1, 2, 4, 8, 16 s
// (tcp_synack_retries = 5), then the half-open connection is dropped.
TEST(TcpSynReceived, SynAckRetransmitsWithBackoffThenGivesUp) {
    Harness h;
    h.listen();
    h.handshake_syn(h.syn());
    const Instant start = h.now;
    const int64_t expected_secs[] = {1, 3, 7, 15, 31};
    for (int64_t t : expected_secs) {
        h.advance_to(start + Duration::from_secs(t) - Duration::from_millis(1));
        h.expect_nothing();
        h.advance_to(start + Duration::from_secs(t));
        Sent again = h.recv();
        EXPECT_EQ(again.repr.flags, f::SYN | f::ACK) << "at " << t;
    }
    h.advance(Duration::from_secs(64));
    h.expect_nothing();
    // Gone: the final ACK now finds nothing.
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 1));
    EXPECT_EQ(h.recv().repr.flags, f::RST);
}

// Linux tcp_conn_request(): "sk_acceptq_is_full" (more than backlog
// connections waiting) drops the SYN silently — no RST, the client retries.
TEST(TcpListen, FullAcceptQueueDropsSyn) {
    Harness h;
    h.listen(0);
    // backlog 0 still holds one connection (the test is "> backlog").
    h.handshake_syn(h.syn(1000));
    h.send(h.seg(f::ACK, SeqNumber(1001), h.iss + 1));
    h.remote.port = 49501;
    h.send(h.syn(5000));
    h.expect_nothing();
    EXPECT_EQ(h.engine.counters().listen_drops, 1u);
    EXPECT_EQ(h.engine.counters().resets_sent, 0u);
}

// inet_csk_complete_hashdance() with a full queue: the final ACK is dropped
// (tcp_abort_on_overflow = 0); once the application accepts, the next ACK
// completes the handshake.
TEST(TcpListen, FullAcceptQueueDropsFinalAckUntilAccepted) {
    Harness h;
    const SocketId l = h.listen(0);
    // First connection fills the queue (backlog 0 holds one).
    h.handshake_syn(h.syn(1000));
    h.send(h.seg(f::ACK, SeqNumber(1001), h.iss + 1));
    // Second: SYN accepted into the SYN queue (queue has 1 = backlog+1? no:
    // the SYN test is "> backlog", 1 > 0 is full) — so open it first.
    h.remote.port = 49501;
    h.send(h.syn(5000));
    h.expect_nothing();  // dropped: the accept queue is full
    ASSERT_TRUE(h.engine.accept(l));
    h.send(h.syn(5000));
    Sent synack = h.recv();
    ASSERT_EQ(synack.repr.flags, f::SYN | f::ACK);
    // Fill the queue again with a third connection before the second's ACK.
    h.remote.port = 49502;
    h.send(h.syn(9000));
    Sent synack3 = h.recv();
    h.send(h.seg(f::ACK, SeqNumber(9001), synack3.repr.seq + 1));
    h.remote.port = 49501;
    h.send(h.seg(f::ACK, SeqNumber(5001), synack.repr.seq + 1));
    h.expect_nothing();
    EXPECT_GE(h.engine.counters().listen_overflows, 1u);
    ASSERT_TRUE(h.engine.accept(l));  // the third
    EXPECT_FALSE(h.engine.accept(l));
    h.send(h.seg(f::ACK, SeqNumber(5001), synack.repr.seq + 1));
    auto second = h.engine.accept(l);
    ASSERT_TRUE(second);
    EXPECT_EQ(second->peer.port, 49501);
}

// inet_csk_listen_stop(): closing a listener resets the connections nobody
// accepted.
TEST(TcpListen, ClosingListenerResetsUnacceptedConnections) {
    Harness h;
    const SocketId l = h.listen();
    h.handshake_syn(h.syn());
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 1));
    h.engine.close(l, h.now);
    Sent rst = h.recv();
    EXPECT_SEGMENT(rst, f::RST | f::ACK, h.iss + 1, SeqNumber(remote_iss + 1));
    EXPECT_EQ(h.engine.socket_count(), 0u);
}

// listen() on an unbound socket binds an ephemeral port.
TEST(TcpListen, UnboundListenGetsEphemeralPort) {
    Harness h;
    const SocketId s = h.engine.open();
    ASSERT_TRUE(h.engine.listen(s, 5));
    const uint16_t port = h.engine.local_endpoint(s)->port;
    EXPECT_GE(port, 32768);
    EXPECT_LE(port, 60999);
}

TEST(TcpBind, ErrorsFollowInetBind) {
    Harness h;
    const SocketId a = h.engine.open();
    auto foreign = h.engine.bind(a, Endpoint{wire::Ipv4Address(192, 168, 1, 1), 80});
    ASSERT_FALSE(foreign);
    EXPECT_EQ(foreign.error().value, EADDRNOTAVAIL);
    ASSERT_TRUE(h.engine.bind(a, Endpoint{local_ip, 8080}));
    auto twice = h.engine.bind(a, Endpoint{local_ip, 8081});
    ASSERT_FALSE(twice);
    EXPECT_EQ(twice.error().value, EINVAL);
    const SocketId b = h.engine.open();
    auto in_use = h.engine.bind(b, Endpoint{wire::Ipv4Address::unspecified(), 8080});
    ASSERT_FALSE(in_use);
    EXPECT_EQ(in_use.error().value, EADDRINUSE);
}

// A port below 1024 needs CAP_NET_BIND_SERVICE: EACCES, after the address
// check and before "already bound" (SEMANTICS.md, __inet_bind).
TEST(TcpBind, PrivilegedPortNeedsPrivilege) {
    Harness h;
    const SocketId user = h.engine.open(1000, false);
    auto foreign = h.engine.bind(user, Endpoint{wire::Ipv4Address(192, 168, 1, 1), 80});
    ASSERT_FALSE(foreign);
    EXPECT_EQ(foreign.error().value, EADDRNOTAVAIL);
    auto privileged = h.engine.bind(user, Endpoint{local_ip, 1023});
    ASSERT_FALSE(privileged);
    EXPECT_EQ(privileged.error().value, EACCES);
    ASSERT_TRUE(h.engine.bind(user, Endpoint{local_ip, 1024}));
    auto bound_then_privileged = h.engine.bind(user, Endpoint{local_ip, 80});
    ASSERT_FALSE(bound_then_privileged);
    EXPECT_EQ(bound_then_privileged.error().value, EACCES);
    const SocketId root = h.engine.open(0, true);
    EXPECT_TRUE(h.engine.bind(root, Endpoint{local_ip, 80}));
}

// SO_REUSEPORT listeners on one address form a group; connections are
// spread over the members by a hash of the 4-tuple.
TEST(TcpListen, ReusePortGroupSpreadsConnections) {
    Harness h;
    SocketId listeners[2];
    for (SocketId& l : listeners) {
        l = h.engine.open();
        ASSERT_TRUE(h.engine.set_option(l, h.now, SockOpt::ReusePort, 1));
        ASSERT_TRUE(h.engine.bind(l, Endpoint{local_ip, local_port}));
        ASSERT_TRUE(h.engine.listen(l, 64));
    }
    for (uint16_t port = 40000; port < 40040; ++port) {
        h.remote.port = port;
        h.handshake_syn(h.syn(port * 10));
        h.send(h.seg(f::ACK, SeqNumber(port * 10 + 1), h.iss + 1));
    }
    int counts[2] = {0, 0};
    for (int i = 0; i < 2; ++i) {
        while (h.engine.accept(listeners[i])) {
            ++counts[i];
        }
    }
    EXPECT_EQ(counts[0] + counts[1], 40);
    EXPECT_GT(counts[0], 5);
    EXPECT_GT(counts[1], 5);
}

// RFC 6528: ISN = M + F(4-tuple, key): different 4-tuples get unrelated
// ISNs, and the same 4-tuple later gets a larger one (M runs at 1/64 ns).
TEST(TcpIsn, KeyedHashPlusClock) {
    Harness h;
    h.listen();
    const SeqNumber a = h.handshake_syn(h.syn()).repr.seq;
    h.remote.port = 50001;
    const SeqNumber b = h.handshake_syn(h.syn()).repr.seq;
    EXPECT_NE(a, b);
    h.remote.port = remote_port;
    h.send(h.seg(f::RST, SeqNumber(remote_iss + 1)));  // drop the first child
    h.advance(Duration::from_secs(1));
    h.clear();
    const SeqNumber later = h.handshake_syn(h.syn()).repr.seq;
    // 1 s later: 10^9 ns >> 6 = 15625000 more, modulo the hash (same tuple).
    EXPECT_EQ(later - a, 15625000);
}

// ---------------------------------------------------------------- SYN-SENT

// RFC 9293 §3.10.7.3 / Linux tcp_connect(): the SYN carries MSS, and the
// options the configuration enables; connect() reports EINPROGRESS.
TEST(TcpConnect, SendsSynWithOptions) {
    TcpConfig config = test_config();
    config.timestamps = config.sack = config.window_scaling = true;
    Harness h(config);
    const SocketId s = h.engine.open();
    auto r = h.engine.connect(s, h.now, h.remote);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EINPROGRESS);
    EXPECT_EQ(h.engine.state(s), TcpState::SynSent);
    Sent syn = h.recv();
    EXPECT_EQ(syn.repr.flags, f::SYN);
    EXPECT_EQ(syn.repr.options.mss, 1460);
    EXPECT_TRUE(syn.repr.options.sack_permitted);
    ASSERT_TRUE(syn.repr.options.window_scale);
    EXPECT_EQ(*syn.repr.options.window_scale, 7);
    ASSERT_TRUE(syn.repr.options.timestamp);
    EXPECT_EQ(syn.repr.options.timestamp->echo, 0u);
    EXPECT_EQ(syn.repr.window, 44 * 1460);
    EXPECT_EQ(syn.dst, remote_ip);
    EXPECT_EQ(syn.repr.dst_port, remote_port);
    EXPECT_GE(syn.repr.src_port, 32768);
    EXPECT_FALSE(h.engine.readiness(s).writable);  // not until established
}

// RFC 9293 §3.10.7.3: SYN,ACK acceptable → ESTABLISHED and
// <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>. inet_stream_connect: the next
// connect() returns 0, the one after EISCONN.
TEST(TcpConnect, SynAckEstablishes) {
    Harness h;
    const SocketId s = h.connect_established();
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    EXPECT_TRUE(h.engine.readiness(s).writable);
    EXPECT_EQ(h.engine.take_error(s), 0);
    EXPECT_TRUE(h.engine.connect(s, h.now, h.remote));
    auto again = h.engine.connect(s, h.now, h.remote);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().value, EISCONN);
    EXPECT_EQ(*h.engine.remote_endpoint(s), h.remote);
}

TEST(TcpConnect, SecondConnectWhileConnectingIsEalready) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    auto again = h.engine.connect(s, h.now, h.remote);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().value, EALREADY);
}

// RFC 9293 §3.10.7.3: "If the ACK was acceptable, then signal to the user
// 'error: connection reset'" — Linux reports ECONNREFUSED (tcp_reset in
// SYN_SENT), through SO_ERROR and the next connect().
TEST(TcpConnect, RstWithAcceptableAckIsConnectionRefused) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.local.port = syn.repr.src_port;
    h.send(h.seg(f::RST | f::ACK, SeqNumber(0), syn.repr.seq + 1));
    h.expect_nothing();
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    const Readiness r = h.engine.readiness(s);
    EXPECT_TRUE(r.error);
    EXPECT_TRUE(r.hup);
    auto c = h.engine.connect(s, h.now, h.remote);
    ASSERT_FALSE(c);
    EXPECT_EQ(c.error().value, ECONNREFUSED);
    EXPECT_EQ(h.engine.take_error(s), 0);
    EXPECT_EQ(h.engine.counters().attempt_fails, 1u);
}

// RFC 9293 §3.10.7.3: "Otherwise (no ACK), drop the segment and return."
TEST(TcpConnect, RstWithoutAckIsIgnored) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.local.port = syn.repr.src_port;
    h.send(h.seg(f::RST, SeqNumber(0)));
    EXPECT_EQ(h.engine.state(s), TcpState::SynSent);
}

// RFC 9293 §3.10.7.3: "If SEG.ACK =< ISS or SEG.ACK > SND.NXT, send a reset
// <SEQ=SEG.ACK><CTL=RST>".
TEST(TcpConnect, UnacceptableAckGetsReset) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.local.port = syn.repr.src_port;
    h.send(h.seg(f::SYN | f::ACK, SeqNumber(remote_iss), syn.repr.seq));  // = ISS
    Sent rst = h.recv();
    EXPECT_EQ(rst.repr.flags, f::RST);
    EXPECT_EQ(rst.repr.seq, syn.repr.seq);
    h.send(h.seg(f::ACK, SeqNumber(remote_iss), syn.repr.seq + 5));  // > SND.NXT
    EXPECT_EQ(h.recv().repr.seq, syn.repr.seq + 5);
    EXPECT_EQ(h.engine.state(s), TcpState::SynSent);
}

// tcp_syn_retries = 6 with TCP_TIMEOUT_INIT = 1 s: SYNs at 0, 1, 3, 7, 15,
// 31, 63 s; at 127 s connect fails with ETIMEDOUT. The peer never answers.
TEST(TcpConnect, SynRetransmitsWithBackoffThenTimesOut) {
    Harness h;
    const SocketId s = h.engine.open();
    const Instant start = h.now;
    (void)h.engine.connect(s, h.now, h.remote);
    h.recv();
    for (int64_t t : {1, 3, 7, 15, 31, 63}) {
        h.advance_to(start + Duration::from_secs(t) - Duration::from_millis(1));
        h.expect_nothing();
        h.advance_to(start + Duration::from_secs(t));
        EXPECT_EQ(h.recv().repr.flags, f::SYN) << "at " << t;
    }
    h.advance_to(start + Duration::from_secs(127) - Duration::from_millis(1));
    EXPECT_EQ(h.engine.state(s), TcpState::SynSent);
    h.advance_to(start + Duration::from_secs(127));
    h.expect_nothing();
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    EXPECT_EQ(h.engine.take_error(s), ETIMEDOUT);
    EXPECT_EQ(h.engine.counters().syn_retransmits, 6u);
    EXPECT_FALSE(h.engine.poll_at());
}

TEST(TcpConnect, SynRetriesIsConfigurable) {
    TcpConfig config = test_config();
    config.syn_retries = 2;
    Harness h(config);
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    h.advance(Duration::from_secs(7));
    EXPECT_EQ(h.pending(), 3u);  // SYN + 2 retransmissions
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    auto r = h.engine.connect(s, h.now, h.remote);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, ETIMEDOUT);
}

// RFC 9293 §3.5 figure 8 (simultaneous open): SYN in SYN-SENT → SYN-RECEIVED
// and a SYN,ACK with the same ISS; its ACK → ESTABLISHED.
TEST(TcpConnect, SimultaneousOpen) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.iss = syn.repr.seq;
    h.local.port = syn.repr.src_port;
    h.send(h.syn());
    Sent synack = h.recv();
    EXPECT_SEGMENT(synack, f::SYN | f::ACK, h.iss, SeqNumber(remote_iss + 1));
    EXPECT_EQ(h.engine.state(s), TcpState::SynReceived);
    // The peer's SYN,ACK crossing ours acknowledges our SYN
    // (tcp_validate_incoming lets exactly this SYN pass).
    h.send(h.seg(f::SYN | f::ACK, SeqNumber(remote_iss), h.iss + 1));
    h.expect_nothing();
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    EXPECT_TRUE(h.engine.connect(s, h.now, h.remote));
}

// The other order: the peer's ACK of our SYN,ACK completes it.
TEST(TcpConnect, SimultaneousOpenCompletedByAck) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.iss = syn.repr.seq;
    h.local.port = syn.repr.src_port;
    h.send(h.syn());
    h.recv();
    h.send(h.seg(f::ACK, SeqNumber(remote_iss + 1), h.iss + 1));
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    // A SYN in an established connection draws a challenge ACK (RFC 5961 §4.2).
    h.send(h.seg(f::SYN | f::ACK, SeqNumber(remote_iss), h.iss + 1));
    EXPECT_SEGMENT(h.recv(), f::ACK, h.iss + 1, SeqNumber(remote_iss + 1));
}

// tcp_reset(): a RST in SYN-RECEIVED after a simultaneous open reports
// ECONNRESET (Linux; RFC 9293 would say "refused").
TEST(TcpConnect, RstInSimultaneousOpenIsConnectionReset) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.iss = syn.repr.seq;
    h.local.port = syn.repr.src_port;
    h.send(h.syn());
    h.recv();
    h.send(h.seg(f::RST, SeqNumber(remote_iss + 1)));
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    EXPECT_EQ(h.engine.take_error(s), ECONNRESET);
}

// The handshake measures the first RTT sample (RFC 6298 §2.2).
TEST(TcpConnect, HandshakeGivesFirstRttSample) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.local.port = syn.repr.src_port;
    h.advance(Duration::from_millis(80));
    TcpRepr synack = h.seg(f::SYN | f::ACK, SeqNumber(remote_iss), syn.repr.seq + 1);
    synack.options.mss = 1460;
    h.send(synack);
    EXPECT_EQ(h.engine.info(s)->srtt.millis(), 80);
    // tcp_rtt_estimator's first sample: srtt = 80, rttvar = max(2 * 80, 200).
    EXPECT_EQ(h.engine.info(s)->rto.millis(), 80 + 200);
}

// tcp_v4_err() in SYN_SENT: an ICMP host unreachable fails the connect at
// once with EHOSTUNREACH.
TEST(TcpConnect, IcmpHostUnreachableFailsConnect) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.engine.icmp_error(h.now, IcmpError{Endpoint{local_ip, syn.repr.src_port}, h.remote, syn.repr.seq, EHOSTUNREACH, 0});
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    EXPECT_EQ(h.engine.take_error(s), EHOSTUNREACH);
    h.advance(Duration::from_secs(5));
    h.expect_nothing();
}

// ICMP port unreachable means ECONNREFUSED (icmp_err_convert).
TEST(TcpConnect, IcmpPortUnreachableIsConnectionRefused) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.engine.icmp_error(h.now, IcmpError{Endpoint{local_ip, syn.repr.src_port}, h.remote, syn.repr.seq, ECONNREFUSED, 0});
    auto r = h.engine.connect(s, h.now, h.remote);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, ECONNREFUSED);
}

// RFC 5927 §4.1 / tcp_v4_err(): an ICMP error quoting a sequence number
// outside SND.UNA..SND.NXT is ignored.
TEST(TcpConnect, IcmpWithOutOfWindowSequenceIsIgnored) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.engine.icmp_error(h.now, IcmpError{Endpoint{local_ip, syn.repr.src_port}, h.remote, syn.repr.seq + 1000,
                                         EHOSTUNREACH, 0});
    EXPECT_EQ(h.engine.state(s), TcpState::SynSent);
    EXPECT_EQ(h.engine.counters().icmp_out_of_window, 1u);
}

// After a failed connect the socket may connect again.
TEST(TcpConnect, ReconnectAfterRefusal) {
    Harness h;
    const SocketId s = h.engine.open();
    (void)h.engine.connect(s, h.now, h.remote);
    Sent syn = h.recv();
    h.local.port = syn.repr.src_port;
    h.send(h.seg(f::RST | f::ACK, SeqNumber(0), syn.repr.seq + 1));
    EXPECT_EQ(h.engine.connect(s, h.now, h.remote).error().value, ECONNREFUSED);
    auto r = h.engine.connect(s, h.now, h.remote);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EINPROGRESS);
    EXPECT_EQ(h.recv().repr.flags, f::SYN);
}

// ---------------------------------------------------------------- CLOSED

// RFC 9293 §3.10.7.1: no TCB. "If the ACK bit is off, sequence number zero
// is used, <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"; "If the ACK bit is
// on, <SEQ=SEG.ACK><CTL=RST>"; a RST is discarded.
TEST(TcpClosed, SegmentsToNoSocketGetResets) {
    Harness h;
    h.send(h.syn(5000));
    Sent r1 = h.recv();
    EXPECT_SEGMENT(r1, f::RST | f::ACK, SeqNumber(0), SeqNumber(5001));
    EXPECT_EQ(r1.repr.window, 0);
    h.send(h.seg(f::ACK | f::PSH, SeqNumber(5000), SeqNumber(1234)), "hello");
    Sent r2 = h.recv();
    EXPECT_EQ(r2.repr.flags, f::RST);
    EXPECT_EQ(r2.repr.seq, SeqNumber(1234));
    h.send(h.seg(f::FIN, SeqNumber(5000)), "abc");
    Sent r3 = h.recv();
    EXPECT_SEGMENT(r3, f::RST | f::ACK, SeqNumber(0), SeqNumber(5004));
    h.send(h.seg(f::RST, SeqNumber(1)));
    h.expect_nothing();
    EXPECT_EQ(h.engine.counters().resets_for_no_socket, 3u);
}

}  // namespace
}  // namespace ustack::tcp::testing
