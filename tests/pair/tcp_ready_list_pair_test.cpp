// The engine's ready list (TcpEngine::take_ready), which lets the host
// visit only the sockets that changed: with 1 000 idle connections open,
// one segment lists one socket, idle time lists none, and the cases the
// host must never miss (data, a listener's new connection, a reset, a
// connection timing out) are listed. Two stacks over the in-memory pair,
// simulated time; every assertion is on counts and ids, none on time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <vector>

#include "stack/tcp/tcp_transport.h"
#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SocketId;
using tcp::TcpState;

constexpr uint16_t server_port = 8080;
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
};

std::vector<SocketId> take(tcp::TcpEngine& e) {
    std::vector<SocketId> ids;
    e.take_ready(ids);
    std::sort(ids.begin(), ids.end());
    return ids;
}

bool listed(const std::vector<SocketId>& ids, SocketId id) {
    return std::find(ids.begin(), ids.end(), id) != ids.end();
}

struct Conn {
    SocketId client;
    SocketId server;
};

std::optional<Conn> connect_one(TcpPair& p, SocketId listener) {
    const SocketId c = p.a().open();
    auto r = p.a().connect(c, p.now(), server_8080);
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
        ADD_FAILURE() << "connection not established";
        return std::nullopt;
    }
    return Conn{c, *s};
}

SocketId open_listener(TcpPair& p) {
    const SocketId l = p.b().open();
    EXPECT_TRUE(p.b().bind(l, Endpoint{wire::Ipv4Address::unspecified(), server_port}));
    EXPECT_TRUE(p.b().listen(l, 4096));
    return l;
}

class ReadyList : public ::testing::Test {
protected:
    static constexpr size_t idle_connections = 1000;

    void SetUp() override {
        listener_ = open_listener(p_);
        for (size_t i = 0; i < idle_connections; ++i) {
            auto conn = connect_one(p_, listener_);
            ASSERT_TRUE(conn.has_value()) << "connection " << i;
            conns_.push_back(*conn);
        }
        // Let every delayed ACK and handshake leftover run out, then start
        // from empty lists.
        p_.net.run_for(Duration::from_secs(1));
        ASSERT_EQ(p_.b().socket_count(), idle_connections + 1);  // the accepted ones and the listener
        for (const Conn& c : conns_) {
            ASSERT_EQ(p_.b().state(c.server), TcpState::Established);
        }
        take(p_.a());
        take(p_.b());
    }

    TcpPair p_;
    SocketId listener_ = 0;
    std::vector<Conn> conns_;
};

TEST_F(ReadyList, IdleConnectionsAreNeverListed) {
    // Ten simulated minutes with 1 000 idle connections: no timer of
    // theirs runs, nothing is listed.
    p_.net.run_for(Duration::from_secs(600));
    EXPECT_TRUE(take(p_.a()).empty());
    EXPECT_TRUE(take(p_.b()).empty());
}

TEST_F(ReadyList, OneSegmentListsOneSocket) {
    const Conn& conn = conns_[idle_connections / 2];
    const uint8_t request[] = {'p', 'i', 'n', 'g'};
    ASSERT_EQ(*p_.a().send(conn.client, p_.now(), wire::ByteSpan(request, sizeof request)), sizeof request);
    // The caller's own send lists nothing: the caller knows.
    EXPECT_TRUE(take(p_.a()).empty());
    ASSERT_TRUE(p_.net.run_until([&] { return p_.b().readiness(conn.server).readable; }, Duration::from_secs(1)));
    // Exactly the receiving socket, out of 1 000 (the count the host's
    // per-event work is proportional to).
    EXPECT_EQ(take(p_.b()), std::vector<SocketId>{conn.server});
    // The sender's ACK arrives (send space freed): the sender, alone.
    p_.net.run_for(Duration::from_millis(500));
    EXPECT_EQ(take(p_.a()), std::vector<SocketId>{conn.client});
    // The application reading is its own call: not listed.
    uint8_t got[16];
    ASSERT_EQ(*p_.b().recv(conn.server, p_.now(), wire::MutByteSpan(got, sizeof got)), sizeof request);
    EXPECT_TRUE(take(p_.b()).empty());
}

TEST_F(ReadyList, NewConnectionListsTheListener) {
    const SocketId c = p_.a().open();
    ASSERT_EQ(p_.a().connect(c, p_.now(), server_8080).error().value, EINPROGRESS);
    ASSERT_TRUE(p_.net.run_until([&] { return p_.a().state(c) == TcpState::Established; }, Duration::from_secs(5)));
    p_.net.run_for(Duration::from_millis(10));  // the final ACK reaches B
    const std::vector<SocketId> b_ready = take(p_.b());
    EXPECT_TRUE(listed(b_ready, listener_)) << "the accept queue grew: the listener must be looked at";
    EXPECT_LE(b_ready.size(), 2u);  // the listener and its new child, nothing idle
    EXPECT_EQ(take(p_.a()), std::vector<SocketId>{c});  // SYN-SENT → ESTABLISHED
    EXPECT_TRUE(p_.b().accept(listener_).has_value());
}

TEST_F(ReadyList, PeerResetListsTheSocket) {
    const Conn& conn = conns_[7];
    p_.a().abort(conn.client, p_.now());  // RST
    ASSERT_TRUE(p_.net.run_until([&] { return p_.b().state(conn.server) == TcpState::Closed; },
                                 Duration::from_secs(1)));
    EXPECT_EQ(take(p_.b()), std::vector<SocketId>{conn.server});
    EXPECT_TRUE(p_.b().readiness(conn.server).error);
}

TEST_F(ReadyList, ConnectFailingOnATimerListsTheSocket) {
    // No host answers ARP for 10.0.0.99: the neighbour entry fails on a
    // timer and the connecting socket gets EHOSTUNREACH (as Linux). No
    // segment arrives for it: the timer path must list it.
    const SocketId c = p_.a().open();
    ASSERT_EQ(p_.a().connect(c, p_.now(), Endpoint{wire::Ipv4Address{10, 0, 0, 99}, 80}).error().value,
              EINPROGRESS);
    ASSERT_TRUE(p_.net.run_until([&] { return p_.a().state(c) == TcpState::Closed; }, Duration::from_secs(10)));
    EXPECT_EQ(take(p_.a()), std::vector<SocketId>{c});
    EXPECT_EQ(p_.a().take_error(c), EHOSTUNREACH);
}

}  // namespace
}  // namespace ustack::testing
