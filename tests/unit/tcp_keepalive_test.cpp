// Keepalive (RFC 1122 §4.2.3.6, Linux tcp_keepalive_timer with
// SO_KEEPALIVE, TCP_KEEPIDLE/INTVL/CNT) and socket option plumbing.
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

void enable_keepalive(Harness& h, SocketId s, int idle, int interval, int count) {
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::KeepAlive, 1));
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::KeepIdle, idle));
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::KeepIntvl, interval));
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::KeepCnt, count));
}

// RFC 1122 §4.2.3.6: after the idle time a probe <SEQ=SND.NXT-1> with no
// data; then every interval; after `count` unanswered probes the
// connection is reset and reports ETIMEDOUT.
TEST(TcpKeepalive, ProbesThenResetWithEtimedout) {
    Harness h;
    const SocketId s = h.accept_established();
    enable_keepalive(h, s, 10, 2, 3);
    const Instant t0 = h.now;
    h.advance_to(t0 + Duration::from_secs(10) - Duration::from_millis(1));
    h.expect_nothing();
    for (int64_t at : {10, 12, 14}) {
        h.advance_to(t0 + Duration::from_secs(at));
        Sent probe = h.recv();
        EXPECT_SEGMENT(probe, f::ACK, h.our_seq() - 1, h.peer_seq());
        EXPECT_TRUE(probe.payload.empty());
    }
    h.advance_to(t0 + Duration::from_secs(16));
    EXPECT_SEGMENT(h.recv(), f::RST | f::ACK, h.our_seq(), h.peer_seq());
    EXPECT_EQ(h.engine.state(s), TcpState::Closed);
    EXPECT_EQ(h.engine.take_error(s), ETIMEDOUT);
    EXPECT_EQ(h.engine.counters().keepalive_probes, 3u);
    EXPECT_EQ(h.engine.counters().keepalive_timeouts, 1u);
}

// An answered probe resets the count; the next probe comes a full idle
// time after the answer.
TEST(TcpKeepalive, AnsweredProbeRestartsIdleTime) {
    Harness h;
    const SocketId s = h.accept_established();
    enable_keepalive(h, s, 10, 2, 3);
    h.advance(Duration::from_secs(10));
    h.recv();
    h.send(h.ack(0));
    const Instant answered = h.now;
    h.advance_to(answered + Duration::from_secs(10) - Duration::from_millis(1));
    h.expect_nothing();
    h.advance_to(answered + Duration::from_secs(10));
    EXPECT_EQ(h.recv().repr.seq, h.our_seq() - 1);
    EXPECT_EQ(h.engine.state(s), TcpState::Established);
    EXPECT_EQ(h.engine.info(s)->probes_out, 1u);
}

// Traffic counts as life: the idle time runs from the last segment received.
TEST(TcpKeepalive, IncomingDataPostponesProbe) {
    Harness h;
    const SocketId s = h.accept_established();
    enable_keepalive(h, s, 10, 2, 3);
    h.advance(Duration::from_secs(8));
    h.send(h.data(0), "x");
    h.clear();
    h.advance(Duration::from_secs(9));
    h.expect_nothing();
    h.advance(Duration::from_secs(1));
    EXPECT_EQ(h.recv().repr.seq, h.our_seq() - 1);
    EXPECT_EQ(h.read_all(s), "x");
}

// tcp_keepalive_timer(): with data in flight the retransmission timer
// watches the peer; no keepalive probes.
TEST(TcpKeepalive, NoProbeWhileDataOutstanding) {
    Harness h;
    const SocketId s = h.accept_established();
    enable_keepalive(h, s, 1, 1, 1);
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::UserTimeout, 60000));
    ASSERT_TRUE(h.engine.send(s, h.now, bytes("pending")));
    h.clear();
    h.advance(Duration::from_secs(5));
    EXPECT_EQ(h.engine.counters().keepalive_probes, 0u);
    EXPECT_GT(h.engine.counters().rto_timeouts, 0u);
}

TEST(TcpKeepalive, OffByDefault) {
    Harness h;
    const SocketId s = h.accept_established();
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::KeepAlive), 0);
    h.advance(Duration::from_secs(3 * 3600));
    h.expect_nothing();
    EXPECT_FALSE(h.engine.poll_at());
}

// Linux defaults: tcp_keepalive_time 7200 s, intvl 75 s, probes 9; the
// first probe comes after two hours.
TEST(TcpKeepalive, LinuxDefaults) {
    Harness h;
    const SocketId s = h.accept_established();
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::KeepIdle), 7200);
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::KeepIntvl), 75);
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::KeepCnt), 9);
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::KeepAlive, 1));
    h.advance(Duration::from_secs(7199));
    h.expect_nothing();
    h.advance(Duration::from_secs(1));
    EXPECT_EQ(h.recv().repr.seq, h.our_seq() - 1);
    h.advance(Duration::from_secs(75));
    EXPECT_EQ(h.recv().repr.seq, h.our_seq() - 1);
}

// do_tcp_setsockopt(): TCP_KEEPIDLE/INTVL in 1..32767, TCP_KEEPCNT 1..127.
TEST(TcpKeepalive, OptionRangesAreChecked) {
    Harness h;
    const SocketId s = h.engine.open();
    for (auto [opt, bad] : {std::pair{SockOpt::KeepIdle, 0}, std::pair{SockOpt::KeepIdle, 32768},
                            std::pair{SockOpt::KeepIntvl, 0}, std::pair{SockOpt::KeepCnt, 128},
                            std::pair{SockOpt::KeepCnt, 0}, std::pair{SockOpt::UserTimeout, -1},
                            std::pair{SockOpt::MaxSeg, 40}}) {
        auto r = h.engine.set_option(s, h.now, opt, bad);
        ASSERT_FALSE(r);
        EXPECT_EQ(r.error().value, EINVAL);
    }
    EXPECT_TRUE(h.engine.set_option(s, h.now, SockOpt::KeepIdle, 32767));
}

// Options set on a listener are inherited by accepted sockets
// (inet_csk_clone_lock).
TEST(TcpOptions, InheritedFromListener) {
    Harness h;
    const SocketId l = h.listen();
    ASSERT_TRUE(h.engine.set_option(l, h.now, SockOpt::NoDelay, 1));
    ASSERT_TRUE(h.engine.set_option(l, h.now, SockOpt::KeepAlive, 1));
    ASSERT_TRUE(h.engine.set_option(l, h.now, SockOpt::KeepIdle, 30));
    const SocketId s = h.accept_established(std::nullopt, l);
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::NoDelay), 1);
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::KeepAlive), 1);
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::KeepIdle), 30);
}

// SO_RCVBUF/SO_SNDBUF read back doubled and are bounded below and above
// (SOCK_MIN_RCVBUF, rmem_max).
TEST(TcpOptions, BufferSizesFollowLinux) {
    Harness h;
    const SocketId s = h.engine.open();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::RcvBuf, 1));
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::RcvBuf), 2304);
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::SndBuf, 1));
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::SndBuf), 4608);
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::RcvBuf, 1 << 30));
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::RcvBuf), 2 * 4194304);
}

// TCP_MAXSEG before connect bounds the MSS we announce and use.
TEST(TcpOptions, MaxSegClampsAnnouncedMss) {
    Harness h;
    const SocketId s = h.engine.open();
    ASSERT_TRUE(h.engine.set_option(s, h.now, SockOpt::MaxSeg, 1000));
    EXPECT_EQ(*h.engine.get_option(s, SockOpt::MaxSeg), 1000);
    (void)h.engine.connect(s, h.now, h.remote);
    EXPECT_EQ(h.recv().repr.options.mss, 1000);
}

// tcp_poll() on a fresh socket: EPOLLOUT | EPOLLHUP (state CLOSE).
TEST(TcpOptions, ReadinessOfFreshSocket) {
    Harness h;
    const SocketId s = h.engine.open();
    const Readiness r = h.engine.readiness(s);
    EXPECT_TRUE(r.writable);
    EXPECT_TRUE(r.hup);
    EXPECT_FALSE(r.readable);
    EXPECT_FALSE(r.error);
}

// Operations on handles that are not sockets: EBADF.
TEST(TcpOptions, UnknownHandleIsEbadf) {
    Harness h;
    std::vector<uint8_t> buf(4);
    EXPECT_EQ(h.engine.send(99, h.now, bytes("x")).error().value, EBADF);
    EXPECT_EQ(h.engine.recv(99, h.now, buf).error().value, EBADF);
    EXPECT_EQ(h.engine.bind(99, h.local).error().value, EBADF);
    EXPECT_EQ(h.engine.take_error(99), EBADF);
    const SocketId s = h.engine.open();
    h.engine.close(s, h.now);
    EXPECT_EQ(h.engine.listen(s, 1).error().value, EBADF);
}

}  // namespace
}  // namespace ustack::tcp::testing
