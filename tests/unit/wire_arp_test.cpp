// ARP for Ethernet/IPv4 (RFC 826).
//
// Fixtures: captured with tshark on a veth pair between two private network
// namespaces (Linux 6.18). Host A is 10.0.0.1 / 02:00:00:00:00:01, host B is
// 10.0.0.2 / 02:00:00:00:00:02; A's first packet to B made A's kernel ask.
// The arrays are the ARP payloads (after the 14-byte Ethernet header).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "stack/wire/arp.h"

namespace ustack::wire {
namespace {

// Frame 1, bytes 14..42: A: "who has 10.0.0.2? tell 10.0.0.1".
constexpr uint8_t arp_request[] = {
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x01, 0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x0a, 0x00, 0x00, 0x02,
};

// Frame 2, bytes 14..42: B: "10.0.0.2 is at 02:00:00:00:00:02".
constexpr uint8_t arp_reply[] = {
    0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00,
    0x00, 0x02, 0x0a, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x0a, 0x00, 0x00, 0x01,
};

constexpr MacAddress mac_a{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
constexpr MacAddress mac_b{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};
constexpr Ipv4Address ip_a(10, 0, 0, 1);
constexpr Ipv4Address ip_b(10, 0, 0, 2);

ArpRepr request_repr() {
    return ArpRepr{ArpOperation::Request, mac_a, ip_a, MacAddress{}, ip_b};
}

ArpRepr reply_repr() {
    return ArpRepr{ArpOperation::Reply, mac_b, ip_b, mac_a, ip_a};
}

std::vector<uint8_t> copy_of(ByteSpan b) {
    return {b.begin(), b.end()};
}

TEST(WireArpTest, DeconstructsRequest) {
    const auto r = parse_arp(arp_request);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->operation, ArpOperation::Request);
    EXPECT_EQ(r->sender_mac, mac_a);
    EXPECT_EQ(r->sender_ip, ip_a);
    EXPECT_TRUE(r->target_mac.is_zero());  // unknown: what is being asked
    EXPECT_EQ(r->target_ip, ip_b);
    EXPECT_EQ(*r, request_repr());
}

TEST(WireArpTest, DeconstructsReply) {
    const auto r = parse_arp(arp_reply);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->operation, ArpOperation::Reply);
    EXPECT_EQ(r->sender_mac, mac_b);
    EXPECT_EQ(r->sender_ip, ip_b);
    EXPECT_EQ(r->target_mac, mac_a);
    EXPECT_EQ(r->target_ip, ip_a);
    EXPECT_EQ(*r, reply_repr());
}

TEST(WireArpTest, ConstructsTheCapturedPackets) {
    std::vector<uint8_t> buf(ArpRepr::buffer_len, 0xaa);
    request_repr().emit(buf);
    EXPECT_EQ(buf, copy_of(arp_request));
    reply_repr().emit(buf);
    EXPECT_EQ(buf, copy_of(arp_reply));
}

TEST(WireArpTest, RefusesEveryTruncation) {
    for (ByteSpan packet : {ByteSpan(arp_request), ByteSpan(arp_reply)}) {
        for (size_t len = 0; len < packet.size(); ++len) {
            // Own heap block per length: ASan catches a read past the end.
            const std::vector<uint8_t> prefix(packet.begin(), packet.begin() + len);
            const auto r = parse_arp(prefix);
            ASSERT_FALSE(r.has_value()) << "length " << len;
            EXPECT_EQ(r.error(), ParseError::Truncated) << "length " << len;
        }
    }
}

TEST(WireArpTest, RoundTrips) {
    for (ByteSpan packet : {ByteSpan(arp_request), ByteSpan(arp_reply)}) {
        const auto r = parse_arp(packet);
        ASSERT_TRUE(r.has_value());
        std::vector<uint8_t> out(ArpRepr::buffer_len);
        r->emit(out);
        EXPECT_EQ(out, copy_of(packet));
        EXPECT_EQ(parse_arp(out).value(), *r);
    }
}

TEST(WireArpTest, AcceptsEthernetPadding) {
    // In a 60-byte frame the ARP payload is 46 bytes, 18 of them padding.
    std::vector<uint8_t> padded = copy_of(arp_reply);
    padded.resize(46, 0);
    const auto r = parse_arp(padded);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(*r, reply_repr());
}

TEST(WireArpTest, RefusesOtherHardwareAndProtocolTypes) {
    struct Case {
        size_t offset;
        uint8_t value;
    };
    // ARP has no checksum; its length fields are HLEN and PLEN, and a value
    // other than Ethernet's 6 / IPv4's 4 would move every following field.
    for (Case c : {Case{0, 0x01},      // htype 0x0101
                   Case{1, 0x06},      // htype 6 (IEEE 802) instead of 1
                   Case{2, 0x86},      // ptype 0x86dd (IPv6)
                   Case{4, 0x08},      // hlen 8
                   Case{4, 0x00},      // hlen 0
                   Case{5, 0x10},      // plen 16
                   Case{5, 0x06}}) {
        std::vector<uint8_t> p = copy_of(arp_request);
        p[c.offset] = c.value;
        const auto r = parse_arp(p);
        ASSERT_FALSE(r.has_value()) << "offset " << c.offset;
        EXPECT_EQ(r.error(), ParseError::Unsupported);
    }
}

TEST(WireArpTest, RefusesOtherOperations) {
    for (uint16_t op : {0, 3, 4, 8, 9, 0x100, 0xffff}) {  // RARP 3/4, InARP 8/9...
        std::vector<uint8_t> p = copy_of(arp_request);
        write_u16(p, ArpRepr::OPER.start, op);
        const auto r = parse_arp(p);
        ASSERT_FALSE(r.has_value()) << "op " << op;
        EXPECT_EQ(r.error(), ParseError::Unsupported);
    }
}

}  // namespace
}  // namespace ustack::wire
