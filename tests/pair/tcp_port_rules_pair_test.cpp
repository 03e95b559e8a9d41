// The port and TIME_WAIT rules of ../shared/SEMANTICS.md end to end: two
// stacks (Ethernet, ARP, IPv4, TCP) over the in-memory pair, in simulated
// time. Stack B is the server (10.0.0.2), stack A the client (10.0.0.1).
// Each outcome is the one Linux gives for the same calls.
#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>
#include <vector>

#include "stack/tcp/tcp_transport.h"
#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SockOpt;
using tcp::SocketId;
using tcp::TcpState;

constexpr uint16_t server_port = 8080;
const Endpoint any_8080{wire::Ipv4Address::unspecified(), server_port};
const Endpoint server_8080{addr_b, server_port};

struct TcpPair {
    explicit TcpPair(StackPairOptions options = {}) : net(std::move(options)) {
        net.a().attach_tcp(&tcp_a);
        net.b().attach_tcp(&tcp_b);
    }
    ~TcpPair() {
        net.a().attach_tcp(nullptr);
        net.b().attach_tcp(nullptr);
    }
    TcpPair(const TcpPair&) = delete;
    TcpPair& operator=(const TcpPair&) = delete;

    StackPair net;
    SeededRandom random_a{101};
    SeededRandom random_b{202};
    tcp::TcpTransport tcp_a{net.a(), tcp::TcpConfig{}, random_a};
    tcp::TcpTransport tcp_b{net.b(), tcp::TcpConfig{}, random_b};
    tcp::TcpEngine& a() { return tcp_a.engine(); }
    tcp::TcpEngine& b() { return tcp_b.engine(); }
    Instant now() const { return net.now(); }
    Tunables& tunables_a() { return net.a().tunables(); }
    Tunables& tunables_b() { return net.b().tunables(); }
};

// Small buffers: these tests open many connections and move no data.
void small_buffers(tcp::TcpEngine& e, SocketId s) {
    ASSERT_TRUE(e.set_option(s, Instant::zero(), SockOpt::RcvBuf, 2048));
    ASSERT_TRUE(e.set_option(s, Instant::zero(), SockOpt::SndBuf, 2048));
}

SocketId open_listener(tcp::TcpEngine& e, Endpoint at, bool reuse_addr, bool reuse_port = false,
                       uint32_t uid = 0) {
    const SocketId l = e.open(uid);
    small_buffers(e, l);
    EXPECT_TRUE(e.set_option(l, Instant::zero(), SockOpt::ReuseAddr, reuse_addr ? 1 : 0));
    EXPECT_TRUE(e.set_option(l, Instant::zero(), SockOpt::ReusePort, reuse_port ? 1 : 0));
    EXPECT_TRUE(e.bind(l, at));
    EXPECT_TRUE(e.listen(l, 128));
    return l;
}

struct Connection {
    SocketId client;
    SocketId server;
};

// connect() from A (socket `c`, already set up) to B's `listener`; runs
// until A is ESTABLISHED and B accepted. nullopt when that did not happen.
std::optional<Connection> establish(TcpPair& p, SocketId c, SocketId listener, Endpoint to = server_8080) {
    auto r = p.a().connect(c, p.now(), to);
    if (r || r.error().value != EINPROGRESS) {
        ADD_FAILURE() << "connect: " << (r ? 0 : r.error().value);
        return std::nullopt;
    }
    std::optional<SocketId> s;
    const bool done = p.net.run_until(
        [&] {
            if (!s) {
                if (auto acc = p.b().accept(listener)) {
                    s = acc->id;
                }
            }
            return s.has_value() && p.a().state(c) == TcpState::Established;
        },
        Duration::from_secs(5));
    if (!done) {
        return std::nullopt;
    }
    return Connection{c, *s};
}

std::optional<Connection> connect_new(TcpPair& p, SocketId listener, Endpoint to = server_8080) {
    const SocketId c = p.a().open();
    small_buffers(p.a(), c);
    return establish(p, c, listener, to);
}

// The server closes first, so the TIME_WAIT entry is on B's port 8080
// (what a restarted server meets). Returns when B holds it.
void server_closes_first(TcpPair& p, const Connection& conn) {
    const size_t before = p.b().time_wait_count();
    p.b().close(conn.server, p.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.a().state(conn.client) == TcpState::CloseWait; },
                                Duration::from_secs(5)));
    p.a().close(conn.client, p.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.b().time_wait_count() == before + 1; }, Duration::from_secs(5)));
}

// The client closes first: the TIME_WAIT entry is on A's side.
void client_closes_first(TcpPair& p, const Connection& conn) {
    const size_t before = p.a().time_wait_count();
    p.a().close(conn.client, p.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.b().state(conn.server) == TcpState::CloseWait; },
                                Duration::from_secs(5)));
    p.b().close(conn.server, p.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.a().time_wait_count() == before + 1; }, Duration::from_secs(5)));
}

int bind_error(tcp::TcpEngine& e, Endpoint at, bool reuse_addr = false) {
    const SocketId s = e.open();
    EXPECT_TRUE(e.set_option(s, Instant::zero(), SockOpt::ReuseAddr, reuse_addr ? 1 : 0));
    auto r = e.bind(s, at);
    const int error = r ? 0 : r.error().value;
    e.close(s, Instant::zero());
    return error;
}

// The only TIME_WAIT entry's deadline (ustackctl ss's view).
Instant only_deadline(tcp::TcpEngine& e, Instant now) {
    std::vector<Instant> deadlines;
    e.for_each_time_wait(now, [&](const tcp::TimeWaitSummary& tw) { deadlines.push_back(now + tw.remaining); });
    EXPECT_EQ(deadlines.size(), 1u);
    return deadlines.empty() ? now : deadlines.front();
}

// ---------------------------------------------------------------- bind conflicts

// SEMANTICS.md "TCP bind conflicts" (the seed's test_bind_conflict): two
// sockets binding the same address and port, neither with SO_REUSEADDR.
TEST(TcpPortRulesPair, BindConflict) {
    TcpPair p;
    const SocketId first = p.b().open();
    ASSERT_TRUE(p.b().bind(first, server_8080));
    const SocketId second = p.b().open();
    auto r = p.b().bind(second, server_8080);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EADDRINUSE);
    // The wildcard overlaps every address.
    EXPECT_EQ(bind_error(p.b(), any_8080), EADDRINUSE);
    EXPECT_EQ(p.b().port_counters().bind_conflict_bound, 2u);
    // Another port is free; and once the first socket goes, so is 8080.
    EXPECT_EQ(bind_error(p.b(), Endpoint{addr_b, 8081}), 0);
    p.b().close(first, p.now());
    EXPECT_TRUE(p.b().bind(second, server_8080));
}

// SO_REUSEADDR on both: the bind succeeds, the second listen() fails
// (inet_csk_get_port re-checks with the socket LISTEN); options set after
// bind() count at the next check.
TEST(TcpPortRulesPair, ReuseAddrBindsButOnlyOneListens) {
    TcpPair p;
    const SocketId first = p.b().open();
    ASSERT_TRUE(p.b().bind(first, any_8080));
    ASSERT_TRUE(p.b().set_option(first, p.now(), SockOpt::ReuseAddr, 1));  // after bind
    EXPECT_EQ(p.b().get_option(first, SockOpt::ReuseAddr).value(), 1);
    const SocketId second = p.b().open();
    ASSERT_TRUE(p.b().set_option(second, p.now(), SockOpt::ReuseAddr, 1));
    ASSERT_TRUE(p.b().bind(second, any_8080));
    ASSERT_TRUE(p.b().listen(first, 8));
    auto r = p.b().listen(second, 8);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EADDRINUSE);
    EXPECT_EQ(p.b().port_counters().listen_conflicts, 1u);
    // A third SO_REUSEADDR socket now meets a listener: refused at bind.
    EXPECT_EQ(bind_error(p.b(), any_8080, true), EADDRINUSE);
    EXPECT_EQ(p.b().port_counters().bind_conflict_listener, 1u);
}

// The seed's test_reuse_time_wait: a client that bound its port closes
// actively; the port's TIME_WAIT entry blocks a plain bind (EADDRINUSE),
// a SO_REUSEADDR bind succeeds when the old socket had SO_REUSEADDR too,
// and connecting again to the same peer takes the TIME_WAIT 4-tuple over
// (tcp_twsk_unique's bound-socket case: timestamps suffice, whatever
// tcp_tw_reuse says).
TEST(TcpPortRulesPair, ReuseTimeWait) {
    TcpPair p;
    ASSERT_FALSE(p.tunables_a().set("tcp_tw_reuse", "0"));
    const SocketId l = open_listener(p.b(), any_8080, false);
    const Endpoint client_at{addr_a, 40000};
    const SocketId c = p.a().open();
    ASSERT_TRUE(p.a().set_option(c, p.now(), SockOpt::ReuseAddr, 1));
    ASSERT_TRUE(p.a().bind(c, client_at));
    auto conn = establish(p, c, l);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(p.a().info(c)->timestamps);
    client_closes_first(p, *conn);
    ASSERT_EQ(p.a().state_of(client_at, server_8080), TcpState::TimeWait);

    EXPECT_EQ(bind_error(p.a(), client_at, false), EADDRINUSE);
    const SocketId again = p.a().open();
    ASSERT_TRUE(p.a().set_option(again, p.now(), SockOpt::ReuseAddr, 1));
    ASSERT_TRUE(p.a().bind(again, client_at));
    const uint64_t recycled = p.a().counters().time_wait_reused;
    auto second = establish(p, again, l);
    ASSERT_TRUE(second);
    EXPECT_EQ(p.a().counters().time_wait_reused, recycled + 1);  // TWRecycled
    EXPECT_EQ(p.a().time_wait_count(), 0u);
    EXPECT_EQ(*p.a().local_endpoint(again), client_at);
}

// ---------------------------------------------------------------- server restart

// A server with a TIME_WAIT entry on its port (it closed first) restarts.
// Linux: the new listener binds only if both the old listener (whose flags
// the accepted connection, hence the TIME_WAIT entry, inherited) and the
// new one set SO_REUSEADDR (rule 3; SEMANTICS.md "a server restart
// succeeds only if the *old* listener also had SO_REUSEADDR").
struct RestartCase {
    bool old_reuse_addr;
    bool new_reuse_addr;
    int expected_error;
};

class TcpServerRestart : public ::testing::TestWithParam<RestartCase> {};

TEST_P(TcpServerRestart, WithTimeWaitOnThePort) {
    const RestartCase rc = GetParam();
    TcpPair p;
    const SocketId old_listener = open_listener(p.b(), any_8080, rc.old_reuse_addr);
    auto conn = connect_new(p, old_listener);
    ASSERT_TRUE(conn);
    server_closes_first(p, *conn);
    p.b().close(old_listener, p.now());
    ASSERT_EQ(p.b().time_wait_count(), 1u);

    const SocketId fresh = p.b().open();
    ASSERT_TRUE(p.b().set_option(fresh, p.now(), SockOpt::ReuseAddr, rc.new_reuse_addr ? 1 : 0));
    auto r = p.b().bind(fresh, any_8080);
    EXPECT_EQ(r ? 0 : r.error().value, rc.expected_error);
    EXPECT_EQ(p.b().port_counters().bind_conflict_time_wait, r ? 0u : 1u);
    if (r) {
        // And it serves: a new connection (a fresh client port) is accepted.
        ASSERT_TRUE(p.b().listen(fresh, 8));
        EXPECT_TRUE(connect_new(p, fresh));
    }
}

INSTANTIATE_TEST_SUITE_P(AllFour, TcpServerRestart,
                         ::testing::Values(RestartCase{false, false, EADDRINUSE}, RestartCase{false, true, EADDRINUSE},
                                           RestartCase{true, false, EADDRINUSE}, RestartCase{true, true, 0}),
                         [](const auto& test_param) {
                             return std::string(test_param.param.old_reuse_addr ? "Old" : "NoOld") +
                                    (test_param.param.new_reuse_addr ? "New" : "NoNew") + "ReuseAddr";
                         });

// ---------------------------------------------------------------- TIME_WAIT length

// The entry holds the port for exactly `time_wait` after it was entered:
// 1 µs before the deadline a plain bind still fails, at the deadline (the
// timer has run) it succeeds.
void expect_time_wait_lasts(TcpPair& p, Duration time_wait) {
    const SocketId l = open_listener(p.b(), any_8080, false);
    auto conn = connect_new(p, l);
    ASSERT_TRUE(conn);
    server_closes_first(p, *conn);
    const Instant entered = p.now();
    p.b().close(l, p.now());
    const Instant deadline = only_deadline(p.b(), p.now());
    EXPECT_EQ(deadline - entered, time_wait);

    p.net.run_until(deadline - Duration::from_micros(1));
    EXPECT_EQ(p.b().time_wait_count(), 1u);
    EXPECT_EQ(bind_error(p.b(), any_8080), EADDRINUSE);
    p.net.run_until(deadline);
    EXPECT_EQ(p.b().time_wait_count(), 0u);
    EXPECT_EQ(bind_error(p.b(), any_8080), 0);
    EXPECT_EQ(p.b().counters().time_wait_expired, 1u);
}

TEST(TcpPortRulesPair, TimeWaitExpiresAfterExactlyTimeWait) {
    TcpPair p;
    ASSERT_EQ(p.tunables_b().time_wait, Duration::from_secs(60));  // Linux's TCP_TIMEWAIT_LEN
    expect_time_wait_lasts(p, Duration::from_secs(60));
}

TEST(TcpPortRulesPair, OneSecondTimeWait) {
    TcpPair p;
    ASSERT_FALSE(p.tunables_b().set("time_wait", "1000"));
    expect_time_wait_lasts(p, Duration::from_secs(1));
}

// The setting is live: an entry takes the length in force when it is
// created (and when its timer restarts).
TEST(TcpPortRulesPair, TimeWaitSettingChangedAtRunTime) {
    TcpPair p;
    ASSERT_FALSE(p.tunables_b().set("time_wait", "5000"));
    expect_time_wait_lasts(p, Duration::from_secs(5));
    ASSERT_FALSE(p.tunables_b().set("time_wait", "250"));
    const SocketId l = open_listener(p.b(), any_8080, false);
    auto conn = connect_new(p, l);
    ASSERT_TRUE(conn);
    server_closes_first(p, *conn);
    EXPECT_EQ(only_deadline(p.b(), p.now()) - p.now(), Duration::from_millis(250));
}

// ---------------------------------------------------------------- tw_reuse

// Sequential connections from a 100-port ip_local_port_range, each closed
// actively by the client (TIME_WAIT on A). Connections are `spacing`
// apart. Returns how many succeeded before the first connect error
// (stored in `error`).
size_t churn(TcpPair& p, SocketId listener, size_t count, Duration spacing, int& error) {
    error = 0;
    for (size_t i = 0; i < count; ++i) {
        const SocketId c = p.a().open();
        small_buffers(p.a(), c);
        auto r = p.a().connect(c, p.now(), server_8080);
        if (!r && r.error().value != EINPROGRESS) {
            error = r.error().value;
            p.a().close(c, p.now());
            return i;
        }
        std::optional<SocketId> s;
        const bool up = p.net.run_until(
            [&] {
                if (!s) {
                    if (auto acc = p.b().accept(listener)) {
                        s = acc->id;
                    }
                }
                return s.has_value() && p.a().state(c) == TcpState::Established;
            },
            Duration::from_secs(5));
        if (!up) {
            ADD_FAILURE() << "connection " << i << " did not come up: " << p.a().take_error(c);
            return i;
        }
        // The client closes first; the server answers with its own FIN at
        // once (close() on the accepted socket after the peer's FIN).
        p.a().close(c, p.now());
        if (!p.net.run_until([&] { return p.b().state(*s) == TcpState::CloseWait; }, Duration::from_secs(5))) {
            ADD_FAILURE() << "no FIN at the server for connection " << i;
            return i;
        }
        p.b().close(*s, p.now());
        p.net.run_for(spacing);
    }
    return count;
}

struct ChurnSetup {
    explicit ChurnSetup(const char* tw_reuse) {
        EXPECT_FALSE(p.tunables_a().set("ip_local_port_range", "40000 40099"));
        EXPECT_FALSE(p.tunables_a().set("tcp_tw_reuse", tw_reuse));
        listener = open_listener(p.b(), any_8080, false);
    }
    TcpPair p;
    SocketId listener = 0;
};

// tcp_tw_reuse = 1 with timestamps: every connect finds a port whose
// TIME_WAIT entry's last timestamp is older than tcp_tw_reuse_delay
// (1000 ms; connections are 11 ms apart, so a port comes round after
// 1.1 s) and takes it over. 100 000 connections, no failure.
TEST(TcpPortRulesPair, TwReuseLets100000ConnectionsThrough100Ports) {
    ChurnSetup setup("1");
    TcpPair& p = setup.p;
    ASSERT_EQ(p.tunables_a().tcp_tw_reuse_delay, Duration::from_millis(1000));
    const auto start = std::chrono::steady_clock::now();
    int error = 0;
    const size_t done = churn(p, setup.listener, 100000, Duration::from_millis(11), error);
    const auto real_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
    std::printf("[ info     ] 100000 connections through 100 ports with tw_reuse: %lld ms real, %.1f s simulated\n",
                static_cast<long long>(real_ms), static_cast<double>((p.now() - Instant::from_secs(1)).millis()) / 1000);
    EXPECT_EQ(done, 100000u);
    EXPECT_EQ(error, 0);
    EXPECT_LE(p.a().time_wait_count(), 100u);
    // Every connection after the first 100 recycled a TIME_WAIT entry.
    EXPECT_GE(p.a().counters().time_wait_reused, 100000u - 100u);
}

// tcp_tw_reuse = 0: the 100 ports are all in TIME_WAIT after 100
// connections; the 101st connect fails with EADDRNOTAVAIL
// (__inet_hash_connect), as on Linux.
TEST(TcpPortRulesPair, WithoutTwReuseThe101stConnectFails) {
    ChurnSetup setup("0");
    TcpPair& p = setup.p;
    int error = 0;
    const size_t done = churn(p, setup.listener, 200, Duration::from_millis(11), error);
    EXPECT_EQ(done, 100u);
    EXPECT_EQ(error, EADDRNOTAVAIL);
    EXPECT_EQ(p.a().port_counters().connect_ephemeral_exhausted, 1u);
    EXPECT_EQ(p.a().time_wait_count(), 100u);
    EXPECT_EQ(p.a().counters().time_wait_reused, 0u);
}

// tcp_tw_reuse = 1 but connections faster than tcp_tw_reuse_delay: no
// entry may be reused yet, so the 101st fails as well.
TEST(TcpPortRulesPair, TwReuseWaitsForTheDelay) {
    ChurnSetup setup("1");
    TcpPair& p = setup.p;
    int error = 0;
    const size_t done = churn(p, setup.listener, 200, Duration::from_millis(1), error);
    EXPECT_EQ(done, 100u);
    EXPECT_EQ(error, EADDRNOTAVAIL);
}

// ---------------------------------------------------------------- segments at a TIME_WAIT entry

// A's connection to B ends with A in TIME_WAIT. Returns what the entry
// expects next from B: rcv_nxt and the last TSval seen.
struct TimeWaitPeer {
    wire::SeqNumber rcv_nxt;   // B's FIN + 1
    wire::SeqNumber snd_nxt;   // what A acknowledges with
    uint32_t ts_recent = 0;    // a TSval B sent before its FIN (<= the entry's TS.Recent)
    Endpoint client;
};

TimeWaitPeer make_time_wait_at_client(TcpPair& p) {
    TimeWaitPeer peer;
    const SocketId l = open_listener(p.b(), any_8080, false);
    auto conn = connect_new(p, l);
    EXPECT_TRUE(conn);
    if (!conn) {
        return peer;
    }
    // shutdown(SHUT_WR) rather than close: A's handle stays for info().
    EXPECT_TRUE(p.a().shutdown(conn->client, p.now(), tcp::ShutdownHow::Write));
    EXPECT_TRUE(p.net.run_until([&] { return p.a().state(conn->client) == TcpState::FinWait2; },
                                Duration::from_secs(5)));
    const tcp::TcpInfo before = *p.a().info(conn->client);
    EXPECT_TRUE(before.timestamps);
    peer.rcv_nxt = before.rcv_nxt + 1;  // B's FIN comes next
    peer.snd_nxt = before.snd_nxt;
    peer.ts_recent = before.ts_recent;
    peer.client = before.local;
    p.b().close(conn->server, p.now());
    EXPECT_TRUE(p.net.run_until([&] { return p.a().time_wait_count() == 1; }, Duration::from_secs(5)));
    return peer;
}

wire::TcpRepr segment_from_b(const TimeWaitPeer& peer, uint8_t flags, wire::SeqNumber seq, uint32_t tsval) {
    wire::TcpRepr r;
    r.src_port = server_port;
    r.dst_port = peer.client.port;
    r.flags = flags;
    r.seq = seq;
    r.ack = peer.snd_nxt;
    r.window = 65535;
    r.options.timestamp = wire::TcpTimestamp{tsval, 0};
    return r;
}

// RFC 7323 §5 at a TIME_WAIT entry: an old duplicate (TSval older than
// TS.Recent) is rejected even when it is an in-window RST that would
// otherwise end the entry; PAWSEstab counts it. The same RST with a
// current TSval does end it (tcp_rfc1337 = 0).
TEST(TcpPortRulesPair, PawsRejectsOldDuplicateAtTimeWait) {
    TcpPair p;
    const TimeWaitPeer peer = make_time_wait_at_client(p);
    ASSERT_EQ(p.a().time_wait_count(), 1u);
    const uint64_t paws_before = p.a().counters().paws_rejected;
    namespace fl = wire::tcp_flags;
    p.a().input(p.now(), addr_b, addr_a, segment_from_b(peer, fl::RST | fl::ACK, peer.rcv_nxt, peer.ts_recent - 1000),
                {});
    EXPECT_EQ(p.a().counters().paws_rejected, paws_before + 1);
    EXPECT_EQ(p.a().time_wait_count(), 1u);
    EXPECT_EQ(p.a().state_of(peer.client, server_8080), TcpState::TimeWait);

    p.net.run_for(Duration::from_secs(1));
    p.a().input(p.now(), addr_b, addr_a, segment_from_b(peer, fl::RST | fl::ACK, peer.rcv_nxt, peer.ts_recent + 5000),
                {});
    EXPECT_EQ(p.a().time_wait_count(), 0u);
    EXPECT_EQ(p.a().counters().time_wait_killed, 1u);  // TWKilled
}

// RFC 1337 hazard H1 (TIME_WAIT assassination): with tcp_rfc1337 = 0 an
// in-window RST ends the entry (Linux's default); with 1 it is ignored.
class TcpRfc1337 : public ::testing::TestWithParam<int> {};

TEST_P(TcpRfc1337, InWindowRstAtTimeWait) {
    const int rfc1337 = GetParam();
    TcpPair p;
    ASSERT_FALSE(p.tunables_a().set("tcp_rfc1337", rfc1337 ? "1" : "0"));
    const TimeWaitPeer peer = make_time_wait_at_client(p);
    ASSERT_EQ(p.a().time_wait_count(), 1u);
    p.net.run_for(Duration::from_millis(10));
    namespace fl = wire::tcp_flags;
    p.a().input(p.now(), addr_b, addr_a, segment_from_b(peer, fl::RST, peer.rcv_nxt, peer.ts_recent + 100), {});
    if (rfc1337 == 0) {
        EXPECT_EQ(p.a().time_wait_count(), 0u);
        EXPECT_EQ(p.a().counters().time_wait_killed, 1u);
        EXPECT_EQ(bind_error(p.a(), peer.client), 0);  // the port is free again
    } else {
        EXPECT_EQ(p.a().time_wait_count(), 1u);
        EXPECT_EQ(p.a().counters().time_wait_killed, 0u);
        EXPECT_EQ(bind_error(p.a(), peer.client), EADDRINUSE);
    }
}

INSTANTIATE_TEST_SUITE_P(Both, TcpRfc1337, ::testing::Values(0, 1));

// ---------------------------------------------------------------- SO_REUSEPORT

// A group of 4 listeners on one address: 4 000 connections, each member
// within ±20 % of 1 000 (reuseport_select_sock: a keyed hash of the
// 4-tuple scaled to the group size).
TEST(TcpPortRulesPair, ReusePortGroupSpreadsConnections) {
    TcpPair p;
    std::array<SocketId, 4> members{};
    for (SocketId& m : members) {
        m = open_listener(p.b(), any_8080, false, true, 1000);
    }
    std::array<size_t, 4> accepted{};
    for (int i = 0; i < 4000; ++i) {
        const SocketId c = p.a().open();
        small_buffers(p.a(), c);
        ASSERT_EQ(p.a().connect(c, p.now(), server_8080).error().value, EINPROGRESS);
        std::optional<SocketId> s;
        ASSERT_TRUE(p.net.run_until(
            [&] {
                for (size_t m = 0; m < members.size() && !s; ++m) {
                    if (auto acc = p.b().accept(members[m])) {
                        s = acc->id;
                        ++accepted[m];
                    }
                }
                return s.has_value() && p.a().state(c) == TcpState::Established;
            },
            Duration::from_secs(5)));
        // No TIME_WAIT needed here: the server resets, the client closes.
        p.b().abort(*s, p.now());
        ASSERT_TRUE(p.net.run_until([&] { return p.a().state(c) == TcpState::Closed; }, Duration::from_secs(5)));
        p.a().close(c, p.now());
    }
    for (size_t m = 0; m < members.size(); ++m) {
        EXPECT_GE(accepted[m], 800u) << "member " << m;
        EXPECT_LE(accepted[m], 1200u) << "member " << m;
    }
}

// A group member of another user: the port manager refuses the bind
// (SO_REUSEPORT needs the same uid), so nobody can steal connections.
TEST(TcpPortRulesPair, ReusePortGroupNeedsTheSameUid) {
    TcpPair p;
    open_listener(p.b(), any_8080, false, true, 1000);
    const SocketId intruder = p.b().open(2000);
    ASSERT_TRUE(p.b().set_option(intruder, p.now(), SockOpt::ReusePort, 1));
    auto r = p.b().bind(intruder, any_8080);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EADDRINUSE);
    EXPECT_EQ(p.b().port_counters().bind_conflict_reuseport_uid, 1u);
}

// SO_REUSEPORT set after bind() counts at the next bind (Linux stores
// sk_reuseport; the next inet_csk_bind_conflict reads it); cleared again,
// the port is exclusive.
TEST(TcpPortRulesPair, ReusePortSetAfterBindCounts) {
    TcpPair p;
    const SocketId first = p.b().open(1000);
    ASSERT_TRUE(p.b().bind(first, any_8080));
    const SocketId second = p.b().open(1000);
    ASSERT_TRUE(p.b().set_option(second, p.now(), SockOpt::ReusePort, 1));
    EXPECT_EQ(p.b().bind(second, any_8080).error().value, EADDRINUSE);
    ASSERT_TRUE(p.b().set_option(first, p.now(), SockOpt::ReusePort, 1));
    EXPECT_EQ(p.b().get_option(first, SockOpt::ReusePort).value(), 1);
    ASSERT_TRUE(p.b().bind(second, any_8080));
    p.b().close(second, p.now());
    ASSERT_TRUE(p.b().set_option(first, p.now(), SockOpt::ReusePort, 0));
    const SocketId third = p.b().open(1000);
    ASSERT_TRUE(p.b().set_option(third, p.now(), SockOpt::ReusePort, 1));
    EXPECT_EQ(p.b().bind(third, any_8080).error().value, EADDRINUSE);
}

// A group on the specific address wins over a wildcard group on the same
// port (inet_lhash2_lookup's score).
TEST(TcpPortRulesPair, SpecificAddressGroupWinsOverWildcardGroup) {
    TcpPair p;
    const SocketId wild = open_listener(p.b(), any_8080, false, true, 1000);
    const SocketId exact1 = open_listener(p.b(), server_8080, false, true, 1000);
    const SocketId exact2 = open_listener(p.b(), server_8080, false, true, 1000);
    size_t to_exact = 0;
    for (int i = 0; i < 20; ++i) {
        const SocketId c = p.a().open();
        small_buffers(p.a(), c);
        (void)p.a().connect(c, p.now(), server_8080);
        ASSERT_TRUE(p.net.run_until([&] { return p.a().state(c) == TcpState::Established; }, Duration::from_secs(5)));
        EXPECT_FALSE(p.b().accept(wild));
        for (SocketId e : {exact1, exact2}) {
            while (auto acc = p.b().accept(e)) {
                ++to_exact;
                p.b().abort(acc->id, p.now());
            }
        }
        p.a().abort(c, p.now());
    }
    EXPECT_EQ(to_exact, 20u);
}

// A member that closes resets the connections waiting in its accept queue
// (inet_csk_listen_stop; Linux without tcp_migrate_req); new connections
// go to the remaining members.
TEST(TcpPortRulesPair, ClosingMemberResetsItsPendingConnections) {
    TcpPair p;
    std::array<SocketId, 2> members{};
    for (SocketId& m : members) {
        m = open_listener(p.b(), any_8080, false, true, 1000);
    }
    // Connections complete the handshake and wait, unaccepted.
    std::vector<SocketId> clients;
    for (int i = 0; i < 20; ++i) {
        const SocketId c = p.a().open();
        small_buffers(p.a(), c);
        (void)p.a().connect(c, p.now(), server_8080);
        ASSERT_TRUE(p.net.run_until([&] { return p.a().state(c) == TcpState::Established; }, Duration::from_secs(5)));
        clients.push_back(c);
    }
    p.b().close(members[0], p.now());
    p.net.run_for(Duration::from_millis(10));
    size_t reset = 0;
    size_t alive = 0;
    for (SocketId c : clients) {
        if (p.a().state(c) == TcpState::Closed) {
            EXPECT_EQ(p.a().take_error(c), ECONNRESET);
            ++reset;
        } else {
            ++alive;
        }
    }
    EXPECT_GT(reset, 0u);
    size_t accepted = 0;
    while (p.b().accept(members[1])) {
        ++accepted;
    }
    EXPECT_EQ(accepted, alive);
    // Every new connection now lands on the survivor.
    for (int i = 0; i < 10; ++i) {
        EXPECT_TRUE(connect_new(p, members[1]));
    }
}

// ---------------------------------------------------------------- IP_BIND_ADDRESS_NO_PORT

// bind(addr, 0) with IP_BIND_ADDRESS_NO_PORT takes no port (getsockname
// shows port 0); connect() then picks one, shared among 4-tuples as an
// unbound socket's would be.
TEST(TcpPortRulesPair, BindAddressNoPortDefersThePortToConnect) {
    TcpPair p;
    const SocketId l = open_listener(p.b(), any_8080, false);
    const SocketId c = p.a().open();
    small_buffers(p.a(), c);
    ASSERT_TRUE(p.a().set_option(c, p.now(), SockOpt::BindAddressNoPort, 1));
    EXPECT_EQ(p.a().get_option(c, SockOpt::BindAddressNoPort).value(), 1);
    ASSERT_TRUE(p.a().bind(c, Endpoint{addr_a, 0}));
    EXPECT_EQ(p.a().local_endpoint(c)->port, 0);
    auto conn = establish(p, c, l);
    ASSERT_TRUE(conn);
    const Endpoint local = *p.a().local_endpoint(c);
    EXPECT_EQ(local.addr, addr_a);
    EXPECT_GE(local.port, p.tunables_a().ip_local_port_range_low);
    EXPECT_LE(local.port, p.tunables_a().ip_local_port_range_high);
}

// ---------------------------------------------------------------- SO_LINGER and inspection

// SO_LINGER {1, 0}: close() sends RST and leaves no TIME_WAIT entry.
TEST(TcpPortRulesPair, LingerZeroLeavesNoTimeWait) {
    TcpPair p;
    const SocketId l = open_listener(p.b(), any_8080, false);
    auto conn = connect_new(p, l);
    ASSERT_TRUE(conn);
    ASSERT_TRUE(p.b().set_linger(conn->server, tcp::Linger{true, 0}));
    p.b().close(conn->server, p.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.a().state(conn->client) == TcpState::Closed; }, Duration::from_secs(5)));
    EXPECT_EQ(p.a().take_error(conn->client), ECONNRESET);
    EXPECT_EQ(p.b().time_wait_count(), 0u);
    p.b().close(l, p.now());
    EXPECT_EQ(bind_error(p.b(), any_8080), 0);
}

// for_each_time_wait / kill_time_wait (ustackctl ss, kill-tw): an entry is
// listed with its remaining time and dropped by matching either end; the
// port is free at once.
TEST(TcpPortRulesPair, KillTimeWaitFreesThePort) {
    TcpPair p;
    const SocketId l = open_listener(p.b(), any_8080, false);
    auto conn = connect_new(p, l);
    ASSERT_TRUE(conn);
    server_closes_first(p, *conn);
    p.b().close(l, p.now());
    size_t listed = 0;
    p.b().for_each_time_wait(p.now(), [&](const tcp::TimeWaitSummary& tw) {
        ++listed;
        EXPECT_EQ(tw.local, server_8080);
        EXPECT_EQ(tw.remote.addr, addr_a);
        EXPECT_FALSE(tw.fin_wait2);
        EXPECT_EQ(tw.remaining, Duration::from_secs(60));
    });
    EXPECT_EQ(listed, 1u);
    EXPECT_EQ(p.b().kill_time_wait(p.now(), Endpoint{addr_b, 9999}), 0u);
    EXPECT_EQ(p.b().kill_time_wait(p.now(), Endpoint{wire::Ipv4Address::unspecified(), server_port}), 1u);
    EXPECT_EQ(p.b().time_wait_count(), 0u);
    EXPECT_EQ(bind_error(p.b(), any_8080), 0);
    EXPECT_EQ(p.b().counters().time_wait_killed_by_admin, 1u);
}

}  // namespace
}  // namespace ustack::testing
