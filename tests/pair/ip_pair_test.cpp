// Two stacks over the in-memory pair, simulated time: ARP, ICMP echo,
// fragmentation, ICMP errors, and ARP aging without any real sleep.
#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>

#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(seed + i * 31);
    }
    return v;
}

TEST(IpPair, ArpResolutionThenEchoReply) {
    StackPair net;
    const auto data = pattern(56, 7);
    ASSERT_TRUE(net.a().send_echo_request(net.now(), addr_b, 0x1234, 1, data));
    // Not resolved yet: the echo waits for ARP.
    EXPECT_FALSE(net.a().arp_cache().lookup(addr_b, net.now()));
    net.run_for(Duration::from_millis(10));
    auto replies = net.a().take_echo_replies();
    ASSERT_EQ(replies.size(), 1u);
    EXPECT_EQ(replies[0].from, addr_b);
    EXPECT_EQ(replies[0].ident, 0x1234);
    EXPECT_EQ(replies[0].seq_no, 1);
    EXPECT_EQ(replies[0].data, data);
    EXPECT_EQ(net.a().arp_cache().lookup(addr_b, net.now()), mac_b);
    // B learned A from A's request (RFC 826 merge: the request was for B).
    EXPECT_EQ(net.b().arp_cache().lookup(addr_a, net.now()), mac_a);
    EXPECT_EQ(net.a().counters().get(Counter::arp_requests_sent), 1u);
    EXPECT_EQ(net.b().counters().get(Counter::arp_replies_sent), 1u);
    EXPECT_EQ(net.b().counters().get(Counter::icmp_echo_replies_sent), 1u);
    EXPECT_EQ(net.a().counters().total_drops(), 0u);
    EXPECT_EQ(net.b().counters().total_drops(), 0u);
}

TEST(IpPair, ManyEchoesUseTheCacheAfterTheFirst) {
    StackPair net;
    for (uint16_t seq = 0; seq < 100; ++seq) {
        ASSERT_TRUE(net.a().send_echo_request(net.now(), addr_b, 7, seq, pattern(32, uint8_t(seq))));
        net.run_for(Duration::from_millis(10));
    }
    EXPECT_EQ(net.a().take_echo_replies().size(), 100u);
    EXPECT_EQ(net.a().counters().get(Counter::arp_requests_sent), 1u);
}

TEST(IpPair, ArpEntryExpiresAfterItsLifetimeInSimulatedTime) {
    StackPairOptions options;
    options.config_a.arp.entry_lifetime = Duration::from_secs(600);
    StackPair net(options);
    const auto real_start = std::chrono::steady_clock::now();
    ASSERT_TRUE(net.a().send_echo_request(net.now(), addr_b, 1, 1, pattern(8, 1)));
    net.run_for(Duration::from_millis(10));
    const Instant resolved_at = net.now() - Duration::from_millis(10);
    ASSERT_TRUE(net.a().arp_cache().lookup(addr_b, net.now()));
    net.run_until(resolved_at + Duration::from_secs(599));
    EXPECT_TRUE(net.a().arp_cache().lookup(addr_b, net.now()));
    EXPECT_EQ(net.a().counters().get(Counter::arp_entries_expired), 0u);
    net.run_until(resolved_at + Duration::from_secs(601));
    EXPECT_FALSE(net.a().arp_cache().lookup(addr_b, net.now()));
    EXPECT_EQ(net.a().counters().get(Counter::arp_entries_expired), 1u);
    EXPECT_EQ(net.a().arp_cache().size(), 0u);
    // Ten simulated minutes took well under a real second.
    EXPECT_LT(std::chrono::steady_clock::now() - real_start, std::chrono::seconds(1));
    // The next packet resolves again.
    ASSERT_TRUE(net.a().send_echo_request(net.now(), addr_b, 1, 2, pattern(8, 2)));
    net.run_for(Duration::from_millis(10));
    EXPECT_EQ(net.a().counters().get(Counter::arp_requests_sent), 2u);
}

TEST(IpPair, UnresolvableNeighbourFailsAfterThreeRequestsWithHostUnreachable) {
    StackPair net;
    const wire::Ipv4Address nobody{10, 0, 0, 99};
    auto& udp = net.a().udp();
    const auto sock = udp.open();
    ASSERT_TRUE(udp.connect(sock, {nobody, 9}));
    const auto payload = pattern(10, 3);
    ASSERT_TRUE(udp.send_to(sock, net.now(), payload, std::nullopt));  // queued behind ARP
    net.run_for(Duration::from_secs(5));
    EXPECT_EQ(net.a().counters().get(Counter::arp_requests_sent), 3u);  // mcast_solicit
    EXPECT_EQ(net.a().counters().get(Counter::drop_tx_arp_failed), 1u);
    std::vector<uint8_t> buf(64);
    auto received = udp.recv_from(sock, buf);
    ASSERT_FALSE(received);
    EXPECT_EQ(received.error().value, EHOSTUNREACH);
}

TEST(IpPair, NoRouteOffSubnetWithoutGateway) {
    StackPair net;
    auto& udp = net.a().udp();
    const auto sock = udp.open();
    const auto sent = udp.send_to(sock, net.now(), pattern(4, 0), udp::Endpoint{{10, 9, 9, 9}, 53});
    ASSERT_FALSE(sent);
    EXPECT_EQ(sent.error().value, ENETUNREACH);
}

TEST(IpPair, OffSubnetGoesThroughTheGateway) {
    StackPairOptions options;
    options.config_a.gateway = addr_b;  // B plays the router; it drops what is not for it
    StackPair net(options);
    auto& udp = net.a().udp();
    const auto sock = udp.open();
    ASSERT_TRUE(udp.send_to(sock, net.now(), pattern(4, 0), udp::Endpoint{{10, 9, 9, 9}, 53}));
    net.run_for(Duration::from_millis(10));
    EXPECT_EQ(net.a().arp_cache().lookup(addr_b, net.now()), mac_b);
    EXPECT_EQ(net.b().counters().get(Counter::drop_ip_not_for_us), 1u);
}

TEST(IpPair, LargeUdpDatagramIsFragmentedAndReassembled) {
    StackPair net;
    auto& ua = net.a().udp();
    auto& ub = net.b().udp();
    const auto sa = ua.open();
    const auto sb = ub.open();
    ASSERT_TRUE(ub.bind(sb, {wire::Ipv4Address::unspecified(), 5000}));
    const auto payload = pattern(20000, 9);
    ASSERT_TRUE(ua.send_to(sa, net.now(), payload, udp::Endpoint{addr_b, 5000}));
    net.run_for(Duration::from_millis(10));
    std::vector<uint8_t> buf(65536);
    auto got = ub.recv_from(sb, buf);
    ASSERT_TRUE(got);
    ASSERT_EQ(got->datagram_len, payload.size());
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), buf.begin()));
    EXPECT_EQ(net.a().counters().get(Counter::ip_frags_created), 14u);  // ceil(20008 / 1480)
    EXPECT_EQ(net.b().counters().get(Counter::ip_reassembled), 1u);
}

TEST(IpPair, IncompleteFragmentsTimeOutWithTimeExceeded) {
    StackPairOptions options;
    StackPair net(options);
    // Resolve first, then send a datagram whose middle fragment B never
    // gets: hand B only the first fragment by sending raw frames.
    ASSERT_TRUE(net.a().send_echo_request(net.now(), addr_b, 1, 1, pattern(8, 1)));
    net.run_for(Duration::from_millis(10));
    // Build a first fragment by hand: 1480 bytes of a UDP datagram, MF set.
    std::vector<uint8_t> frame(14 + 20 + 1480);
    wire::EthernetRepr{mac_b, mac_a, static_cast<uint16_t>(wire::EtherType::Ipv4)}.emit(frame);
    wire::Ipv4Repr ip;
    ip.src = addr_a;
    ip.dst = addr_b;
    ip.protocol = static_cast<uint8_t>(wire::IpProtocol::Udp);
    ip.payload_len = 1480;
    ip.ident = 4242;
    ip.more_fragments = true;
    ip.emit(wire::MutByteSpan(frame).subspan(14));
    ASSERT_TRUE(net.device_a().send(net.now(), frame));
    net.run_for(Duration::from_secs(29));
    EXPECT_EQ(net.b().counters().get(Counter::drop_ip_frag_timeout), 0u);
    net.run_for(Duration::from_secs(2));
    EXPECT_EQ(net.b().counters().get(Counter::drop_ip_frag_timeout), 1u);
    EXPECT_EQ(net.b().counters().get(Counter::icmp_errors_sent), 1u);
}

}  // namespace
}  // namespace ustack::testing
