// UDP between two stacks: exchange, errors surfaced from ICMP, receive
// queue limits, and fault injection that must lose nothing it should not.
#include <gtest/gtest.h>

#include <cerrno>
#include <map>

#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

using udp::Endpoint;
const wire::Ipv4Address any = wire::Ipv4Address::unspecified();

std::vector<uint8_t> numbered_payload(uint32_t n, size_t size) {
    std::vector<uint8_t> v(size);
    for (size_t i = 0; i < size; ++i) {
        v[i] = static_cast<uint8_t>((n * 131 + i * 7) ^ (n >> 8));
    }
    if (size >= 4) {
        v[0] = uint8_t(n >> 24);
        v[1] = uint8_t(n >> 16);
        v[2] = uint8_t(n >> 8);
        v[3] = uint8_t(n);
    }
    return v;
}

TEST(UdpPair, ExchangeBothWays) {
    StackPair net;
    auto& ua = net.a().udp();
    auto& ub = net.b().udp();
    const auto sa = ua.open();
    const auto sb = ub.open();
    ASSERT_TRUE(ub.bind(sb, {any, 7000}));
    const std::vector<uint8_t> hello{'h', 'e', 'l', 'l', 'o'};
    ASSERT_TRUE(ua.send_to(sa, net.now(), hello, Endpoint{addr_b, 7000}));
    net.run_for(Duration::from_millis(5));
    std::vector<uint8_t> buf(100);
    auto got = ub.recv_from(sb, buf);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->datagram_len, 5u);
    EXPECT_EQ(got->from.addr, addr_a);
    const uint16_t a_port = ua.local_endpoint(sa)->port;
    EXPECT_EQ(got->from.port, a_port);
    EXPECT_GE(a_port, 32768);
    EXPECT_LE(a_port, 60999);
    // Reply to the source.
    const std::vector<uint8_t> world{'w', 'o', 'r', 'l', 'd', '!'};
    ASSERT_TRUE(ub.send_to(sb, net.now(), world, got->from));
    net.run_for(Duration::from_millis(5));
    auto back = ua.recv_from(sa, buf);
    ASSERT_TRUE(back);
    EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + 6), world);
    EXPECT_EQ(back->from, (Endpoint{addr_b, 7000}));
    // Nothing more.
    auto none = ua.recv_from(sa, buf);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().value, EAGAIN);
}

TEST(UdpPair, PortUnreachableIsEconnrefusedOnAConnectedSocket) {
    StackPair net;
    auto& ua = net.a().udp();
    const auto sa = ua.open();
    ASSERT_TRUE(ua.connect(sa, {addr_b, 9999}));  // nobody listens on B:9999
    ASSERT_TRUE(ua.send_to(sa, net.now(), numbered_payload(1, 10), std::nullopt));
    net.run_for(Duration::from_millis(5));
    EXPECT_EQ(net.b().counters().get(Counter::drop_udp_no_socket), 1u);
    EXPECT_EQ(net.b().counters().get(Counter::icmp_errors_sent), 1u);
    EXPECT_TRUE(ua.readable(sa));
    std::vector<uint8_t> buf(16);
    auto got = ua.recv_from(sa, buf);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().value, ECONNREFUSED);
    // Reported once, as sock_error() clears it.
    auto again = ua.recv_from(sa, buf);
    ASSERT_FALSE(again);
    EXPECT_EQ(again.error().value, EAGAIN);
    // The next send draws the error of the next ICMP, also as ECONNREFUSED.
    ASSERT_TRUE(ua.send_to(sa, net.now(), numbered_payload(2, 10), std::nullopt));
    net.run_for(Duration::from_millis(5));
    auto sent = ua.send_to(sa, net.now(), numbered_payload(3, 10), std::nullopt);
    ASSERT_FALSE(sent);
    EXPECT_EQ(sent.error().value, ECONNREFUSED);
}

TEST(UdpPair, PortUnreachableIsIgnoredOnAnUnconnectedSocket) {
    StackPair net;
    auto& ua = net.a().udp();
    const auto sa = ua.open();
    ASSERT_TRUE(ua.send_to(sa, net.now(), numbered_payload(1, 10), Endpoint{addr_b, 9999}));
    net.run_for(Duration::from_millis(5));
    EXPECT_EQ(net.b().counters().get(Counter::icmp_errors_sent), 1u);
    EXPECT_FALSE(ua.readable(sa));  // Linux reports it only with IP_RECVERR
    EXPECT_EQ(ua.take_error(sa), 0);
}

TEST(UdpPair, ConnectedSocketOnlyAcceptsItsPeer) {
    StackPairOptions options;
    StackPair net(options);
    auto& ua = net.a().udp();
    auto& ub = net.b().udp();
    const auto connected = ub.open();
    ASSERT_TRUE(ub.bind(connected, {any, 7001}));
    ASSERT_TRUE(ub.connect(connected, {addr_a, 1111}));
    const auto from_1111 = ua.open();
    const auto from_2222 = ua.open();
    ASSERT_TRUE(ua.bind(from_1111, {any, 1111}));
    ASSERT_TRUE(ua.bind(from_2222, {any, 2222}));
    ASSERT_TRUE(ua.send_to(from_2222, net.now(), numbered_payload(1, 8), Endpoint{addr_b, 7001}));
    ASSERT_TRUE(ua.send_to(from_1111, net.now(), numbered_payload(2, 8), Endpoint{addr_b, 7001}));
    net.run_for(Duration::from_millis(5));
    EXPECT_EQ(ub.queued_datagrams(connected), 1u);
    EXPECT_EQ(net.b().counters().get(Counter::drop_udp_no_socket), 1u);
}

TEST(UdpPair, BindErrors) {
    StackPair net;
    auto& ua = net.a().udp();
    const auto s1 = ua.open();
    const auto s2 = ua.open();
    auto foreign = ua.bind(s1, {addr_b, 5000});
    ASSERT_FALSE(foreign);
    EXPECT_EQ(foreign.error().value, EADDRNOTAVAIL);
    ASSERT_TRUE(ua.bind(s1, {addr_a, 5000}));
    auto twice = ua.bind(s1, {addr_a, 5001});
    ASSERT_FALSE(twice);
    EXPECT_EQ(twice.error().value, EINVAL);
    auto overlap = ua.bind(s2, {any, 5000});
    ASSERT_FALSE(overlap);
    EXPECT_EQ(overlap.error().value, EADDRINUSE);
    ua.close(s1);
    EXPECT_TRUE(ua.bind(s2, {any, 5000}));
}

TEST(UdpPair, ReceiveQueueIsBoundedAndCountsDrops) {
    StackPair net;
    auto& ua = net.a().udp();
    auto& ub = net.b().udp();
    const auto sa = ua.open();
    const auto sb = ub.open();
    ASSERT_TRUE(ub.bind(sb, {any, 7002}));
    ub.set_rcvbuf(sb, 10 * (1000 + udp::UdpLayer::per_datagram_overhead));
    for (uint32_t i = 0; i < 50; ++i) {
        ASSERT_TRUE(ua.send_to(sa, net.now(), numbered_payload(i, 1000), Endpoint{addr_b, 7002}));
    }
    net.run_for(Duration::from_millis(5));
    EXPECT_EQ(ub.queued_datagrams(sb), 10u);
    EXPECT_EQ(net.b().counters().get(Counter::drop_udp_rcvbuf_full), 40u);
    // The queued ones are the first ten, intact.
    std::vector<uint8_t> buf(2000);
    for (uint32_t i = 0; i < 10; ++i) {
        auto got = ub.recv_from(sb, buf);
        ASSERT_TRUE(got);
        EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + 1000), numbered_payload(i, 1000));
    }
}

TEST(UdpPair, TruncatedReadReportsTheFullLength) {
    StackPair net;
    auto& ua = net.a().udp();
    auto& ub = net.b().udp();
    const auto sa = ua.open();
    const auto sb = ub.open();
    ASSERT_TRUE(ub.bind(sb, {any, 7003}));
    ASSERT_TRUE(ua.send_to(sa, net.now(), numbered_payload(5, 100), Endpoint{addr_b, 7003}));
    net.run_for(Duration::from_millis(5));
    std::vector<uint8_t> small(10);
    auto peeked = ub.recv_from(sb, small, /*peek=*/true);
    ASSERT_TRUE(peeked);
    EXPECT_EQ(peeked->copied, 10u);
    EXPECT_EQ(peeked->datagram_len, 100u);
    auto got = ub.recv_from(sb, small);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->datagram_len, 100u);
    EXPECT_FALSE(ub.readable(sb));  // the rest of a datagram is discarded, as in Linux
}

TEST(UdpPair, ReuseAddrUnicastGoesToTheMostRecentlyBound) {
    StackPair net;
    auto& ua = net.a().udp();
    auto& ub = net.b().udp();
    const auto first = ub.open();
    const auto second = ub.open();
    ASSERT_TRUE(ub.set_reuse(first, true, false));
    ASSERT_TRUE(ub.set_reuse(second, true, false));
    ASSERT_TRUE(ub.bind(first, {any, 7200}));
    ASSERT_TRUE(ub.bind(second, {any, 7200}));
    const auto sa = ua.open();
    for (uint32_t i = 0; i < 10; ++i) {
        ASSERT_TRUE(ua.send_to(sa, net.now(), numbered_payload(i, 8), Endpoint{addr_b, 7200}));
    }
    net.run_for(Duration::from_millis(5));
    EXPECT_EQ(ub.queued_datagrams(first), 0u);
    EXPECT_EQ(ub.queued_datagrams(second), 10u);
}

TEST(UdpPair, ReusePortGroupSpreadsFlowsByHash) {
    StackPair net;
    auto& ua = net.a().udp();
    auto& ub = net.b().udp();
    std::vector<udp::SocketId> members;
    for (int i = 0; i < 4; ++i) {
        members.push_back(ub.open());
        ASSERT_TRUE(ub.set_reuse(members.back(), false, true));
        ASSERT_TRUE(ub.bind(members.back(), {any, 7300}));
        ub.set_rcvbuf(members.back(), 16 << 20);
    }
    // A fifth member of another user may not join (rule 4: same uid).
    const auto stranger = ub.open(udp::SocketOwner{4242, true});
    ASSERT_TRUE(ub.set_reuse(stranger, false, true));
    auto refused = ub.bind(stranger, {any, 7300});
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().value, EADDRINUSE);
    // 4000 flows (distinct source ports), one datagram each.
    for (uint16_t port = 20000; port < 24000; ++port) {
        const auto s = ua.open();
        ASSERT_TRUE(ua.bind(s, {any, port}));
        ASSERT_TRUE(ua.send_to(s, net.now(), numbered_payload(port, 4), Endpoint{addr_b, 7300}));
        ua.close(s);
        if (port % 256 == 0) {
            net.run_for(Duration::from_millis(1));
        }
    }
    net.run_for(Duration::from_millis(10));
    size_t total = 0;
    for (auto m : members) {
        const size_t got = ub.queued_datagrams(m);
        total += got;
        EXPECT_GE(got, 800u);
        EXPECT_LE(got, 1200u);
    }
    EXPECT_EQ(total, 4000u);
}

TEST(UdpPair, AutobindExhaustionIsEagain) {
    StackPairOptions options;
    ASSERT_FALSE(options.config_a.tunables.set("ip_local_port_range", "40000 40001"));
    StackPair net(options);
    auto& ua = net.a().udp();
    for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(ua.send_to(ua.open(), net.now(), numbered_payload(1, 4), Endpoint{addr_b, 9}));
    }
    auto third = ua.send_to(ua.open(), net.now(), numbered_payload(1, 4), Endpoint{addr_b, 9});
    ASSERT_FALSE(third);
    EXPECT_EQ(third.error().value, EAGAIN);
    auto bind0 = ua.bind(ua.open(), {any, 0});
    ASSERT_FALSE(bind0);
    EXPECT_EQ(bind0.error().value, EADDRINUSE);
}

TEST(UdpPair, PrivilegedPortNeedsTheCapability) {
    StackPair net;
    auto& ua = net.a().udp();
    auto denied = ua.bind(ua.open(udp::SocketOwner{1000, false}), {any, 53});
    ASSERT_FALSE(denied);
    EXPECT_EQ(denied.error().value, EACCES);
    EXPECT_TRUE(ua.bind(ua.open(udp::SocketOwner{0, true}), {any, 53}));
}

// Every datagram B's application sees is one A sent, byte for byte; the
// ones it does not see are exactly those the injector dropped.
void run_faulty_exchange(const netdev::FaultConfig& faults, uint64_t seed, bool expect_clean_counters) {
    StackPairOptions options;
    options.faults_into_b = netdev::FaultConfig{};  // clean until ARP is resolved
    options.seed = seed;
    StackPair net(options);
    auto& ua = net.a().udp();
    auto& ub = net.b().udp();
    const auto sa = ua.open();
    const auto sb = ub.open();
    ASSERT_TRUE(ub.bind(sb, {any, 7100}));
    ub.set_rcvbuf(sb, 64 << 20);
    // Resolve both ways first so that every frame into B below is UDP.
    ASSERT_TRUE(net.a().send_echo_request(net.now(), addr_b, 1, 1, numbered_payload(0, 8)));
    net.run_for(Duration::from_millis(5));
    ASSERT_EQ(net.a().take_echo_replies().size(), 1u);
    const netdev::FaultStats before = net.faults_into_b()->fault_stats();
    const uint64_t rx_before = net.b().counters().get(Counter::rx_frames);
    net.faults_into_b()->set_config(faults);

    constexpr uint32_t count = 2000;
    for (uint32_t i = 0; i < count; ++i) {
        ASSERT_TRUE(ua.send_to(sa, net.now(), numbered_payload(i, 200 + i % 700), Endpoint{addr_b, 7100}));
        net.run_for(Duration::from_micros(100));
    }
    net.run_for(Duration::from_secs(5));
    std::map<uint32_t, int> seen;
    std::vector<uint8_t> buf(2000);
    uint64_t received = 0;
    while (auto got = ub.recv_from(sb, buf)) {
        ++received;
        ASSERT_GE(got->copied, 4u);
        const uint32_t n = (uint32_t{buf[0]} << 24) | (uint32_t{buf[1]} << 16) | (uint32_t{buf[2]} << 8) | buf[3];
        ASSERT_LT(n, count);
        ASSERT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + static_cast<long>(got->copied)),
                  numbered_payload(n, 200 + n % 700))
            << "datagram " << n << " altered";
        ++seen[n];
    }
    const netdev::FaultStats& after = net.faults_into_b()->fault_stats();
    const uint64_t dropped = after.dropped - before.dropped;
    const uint64_t duplicated = after.duplicated - before.duplicated;
    EXPECT_EQ(after.frames_in - before.frames_in, count);
    EXPECT_EQ(net.b().counters().get(Counter::rx_frames) - rx_before, after.frames_out - before.frames_out);
    if (expect_clean_counters) {
        // Exactly what the injector let through reached the application.
        EXPECT_EQ(net.b().counters().total_drops(), 0u);
        EXPECT_EQ(received, count - dropped + duplicated) << "dropped " << dropped << " duplicated " << duplicated;
        EXPECT_GT(dropped, 0u);
        EXPECT_GT(duplicated, 0u);
        EXPECT_GT(after.reordered - before.reordered, 0u);
    } else {
        // Corruption: each corrupted frame is either refused and counted, or
        // (a flipped payload byte would fail the UDP checksum) never seen.
        const uint64_t corrupted = after.corrupted - before.corrupted;
        EXPECT_GT(corrupted, 0u);
        EXPECT_EQ(received + net.b().counters().total_drops(), count);
    }
    EXPECT_GT(seen.size(), count / 2);
}

TEST(UdpPair, FaultInjectionDropDuplicateReorderDelayLosesNothingElse) {
    netdev::FaultConfig faults;
    faults.drop_probability = 0.05;
    faults.duplicate_probability = 0.05;
    faults.reorder_probability = 0.05;
    faults.delay = Duration::from_millis(2);
    faults.jitter = Duration::from_millis(1);
    run_faulty_exchange(faults, 42, true);
}

TEST(UdpPair, CorruptedFramesAreCountedNeverDelivered) {
    netdev::FaultConfig faults;
    faults.corrupt_probability = 0.2;
    run_faulty_exchange(faults, 7, false);
}

}  // namespace
}  // namespace ustack::testing
