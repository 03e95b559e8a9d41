// The TCP engine inside two real stacks (Ethernet, ARP, IPv4) joined by the
// in-memory device pair: the integration the lead's full two-stack tests
// build on. Checks the TransportHandler glue: parsing, checksums, DF,
// ICMP/ARP errors, the shared port manager and live tunables.
#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

#include "stack/tcp/tcp_transport.h"
#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SocketId;
using tcp::TcpState;

struct TcpPair {
    explicit TcpPair(StackPairOptions options = {}) : net(std::move(options)) {
        net.a().attach_tcp(&tcp_a);
        net.b().attach_tcp(&tcp_b);
    }
    ~TcpPair() {
        net.a().attach_tcp(nullptr);
        net.b().attach_tcp(nullptr);
    }
    StackPair net;
    SeededRandom random_a{101};
    SeededRandom random_b{202};
    tcp::TcpTransport tcp_a{net.a(), tcp::TcpConfig{}, random_a};
    tcp::TcpTransport tcp_b{net.b(), tcp::TcpConfig{}, random_b};
    tcp::TcpEngine& a() { return tcp_a.engine(); }
    tcp::TcpEngine& b() { return tcp_b.engine(); }
};

std::vector<uint8_t> data_of(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(i * 7 + (i >> 10));
    }
    return v;
}

TEST(TcpTransport, TransferBetweenTwoStacks) {
    TcpPair p;
    const SocketId l = p.b().open();
    ASSERT_TRUE(p.b().bind(l, Endpoint{wire::Ipv4Address::unspecified(), 8080}));
    ASSERT_TRUE(p.b().listen(l, 8));
    const SocketId c = p.a().open();
    EXPECT_EQ(p.a().connect(c, p.net.now(), Endpoint{addr_b, 8080}).error().value, EINPROGRESS);
    std::optional<SocketId> s;
    ASSERT_TRUE(p.net.run_until(
        [&] {
            if (!s) {
                if (auto acc = p.b().accept(l)) {
                    s = acc->id;
                }
            }
            return s.has_value() && p.a().state(c) == TcpState::Established;
        },
        Duration::from_secs(5)));
    EXPECT_EQ(p.a().info(c)->snd_mss, 1448u);

    const auto data = data_of(2 << 20);
    size_t sent = 0;
    std::vector<uint8_t> received;
    std::vector<uint8_t> buf(65536);
    ASSERT_TRUE(p.net.run_until(
        [&] {
            while (sent < data.size()) {
                auto r = p.a().send(c, p.net.now(), wire::ByteSpan(data.data() + sent, data.size() - sent));
                if (!r) {
                    break;
                }
                sent += *r;
            }
            while (true) {
                auto r = p.b().recv(*s, p.net.now(), buf);
                if (!r || *r == 0) {
                    break;
                }
                received.insert(received.end(), buf.begin(), buf.begin() + static_cast<long>(*r));
            }
            return received.size() == data.size();
        },
        Duration::from_secs(60)));
    EXPECT_TRUE(received == data);
    EXPECT_EQ(p.tcp_a.counters().bad_checksum + p.tcp_b.counters().bad_checksum, 0u);
    EXPECT_EQ(p.tcp_a.counters().send_errors, 0u);

    p.a().close(c, p.net.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.b().state(*s) == TcpState::CloseWait; }, Duration::from_secs(5)));
    p.b().close(*s, p.net.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.a().time_wait_count() == 1; }, Duration::from_secs(5)));
}

// No listener: the peer stack's TCP answers with RST → ECONNREFUSED.
TEST(TcpTransport, ConnectToClosedPortIsRefused) {
    TcpPair p;
    const SocketId c = p.a().open();
    (void)p.a().connect(c, p.net.now(), Endpoint{addr_b, 9});
    ASSERT_TRUE(p.net.run_until([&] { return p.a().state(c) == TcpState::Closed; }, Duration::from_secs(5)));
    EXPECT_EQ(p.a().take_error(c), ECONNREFUSED);
}

// Nobody has the address: ARP fails, the stack reports EHOSTUNREACH
// through the ICMP error path, and connect() fails with it (Linux: "No
// route to host" after ARP gives up).
TEST(TcpTransport, ConnectToAbsentHostIsHostUnreachable) {
    TcpPair p;
    const SocketId c = p.a().open();
    (void)p.a().connect(c, p.net.now(), Endpoint{wire::Ipv4Address(10, 0, 0, 99), 80});
    ASSERT_TRUE(p.net.run_until([&] { return p.a().state(c) == TcpState::Closed; }, Duration::from_secs(60)));
    EXPECT_EQ(p.a().take_error(c), EHOSTUNREACH);
}

// TCP and UDP share the stack's port manager, and TIME_WAIT follows the
// stack's live `time_wait` tunable.
TEST(TcpTransport, SharesPortsAndTunablesWithTheStack) {
    TcpPair p;
    ASSERT_FALSE(p.net.a().tunables().set("time_wait", "2000"));
    const SocketId l = p.b().open();
    ASSERT_TRUE(p.b().bind(l, Endpoint{wire::Ipv4Address::unspecified(), 7070}));
    ASSERT_TRUE(p.b().listen(l, 8));
    const SocketId other = p.b().open();
    auto busy = p.b().bind(other, Endpoint{addr_b, 7070});
    ASSERT_FALSE(busy);
    EXPECT_EQ(busy.error().value, EADDRINUSE);
    const SocketId c = p.a().open();
    (void)p.a().connect(c, p.net.now(), Endpoint{addr_b, 7070});
    std::optional<SocketId> s;
    ASSERT_TRUE(p.net.run_until(
        [&] {
            if (!s) {
                if (auto acc = p.b().accept(l)) {
                    s = acc->id;
                }
            }
            return s.has_value() && p.a().state(c) == TcpState::Established;
        },
        Duration::from_secs(5)));
    const uint16_t port = p.a().local_endpoint(c)->port;
    EXPECT_GT(p.net.a().ports().owner_count(ports::Protocol::Tcp, port), 0u);
    p.a().close(c, p.net.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.b().state(*s) == TcpState::CloseWait; }, Duration::from_secs(5)));
    p.b().close(*s, p.net.now());
    ASSERT_TRUE(p.net.run_until([&] { return p.a().time_wait_count() == 1; }, Duration::from_secs(5)));
    const Instant entered = p.net.now();
    EXPECT_EQ(p.net.a().ports().owner_count(ports::Protocol::Tcp, port), 1u);  // the TIME_WAIT entry
    ASSERT_TRUE(p.net.run_until([&] { return p.a().time_wait_count() == 0; }, Duration::from_secs(10)));
    EXPECT_LE((p.net.now() - entered).millis(), 2100);
    EXPECT_EQ(p.net.a().ports().owner_count(ports::Protocol::Tcp, port), 0u);
}

}  // namespace
}  // namespace ustack::testing
