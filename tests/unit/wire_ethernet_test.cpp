// Ethernet II header and MAC addresses.
//
// Fixtures: captured with tshark on a veth pair between two private network
// namespaces (Linux 6.18; tx checksum offload off so every checksum is the
// final one). Host A is 10.0.0.1 / 02:00:00:00:00:01, host B is 10.0.0.2 /
// 02:00:00:00:00:02. Frames are as seen leaving A or arriving from B, so
// without Ethernet padding and without FCS.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "stack/wire/ethernet.h"

namespace ustack::wire {
namespace {

// Frame 1: A asks "who has 10.0.0.2" (broadcast ARP request).
constexpr uint8_t frame_arp_request[] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00,
    0x00, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x0a, 0x00, 0x00, 0x02,
};

// Frame 3: A -> B, IPv4 ICMP echo request (unicast).
constexpr uint8_t frame_ipv4_echo_request[] = {
    0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    0x08, 0x00, 0x45, 0x00, 0x00, 0x2c, 0x3c, 0x55, 0x40, 0x00, 0x40, 0x01,
    0xea, 0x79, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x08, 0x00,
    0x38, 0x1a, 0x12, 0x34, 0x00, 0x01, 0x75, 0x73, 0x74, 0x61, 0x63, 0x6b,
    0x2d, 0x70, 0x69, 0x6e, 0x67, 0x2d, 0x30, 0x31, 0x32, 0x33,
};

constexpr MacAddress mac_a{{0x02, 0x00, 0x00, 0x00, 0x00, 0x01}};
constexpr MacAddress mac_b{{0x02, 0x00, 0x00, 0x00, 0x00, 0x02}};

TEST(WireEthernetTest, DeconstructsBroadcastArp) {
    const auto f = parse_ethernet(frame_arp_request);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->repr.dst, MacAddress::broadcast());
    EXPECT_EQ(f->repr.src, mac_a);
    EXPECT_EQ(f->repr.ethertype, static_cast<uint16_t>(EtherType::Arp));
    ASSERT_EQ(f->payload.size(), 28u);
    EXPECT_EQ(f->payload.data(), frame_arp_request + EthernetRepr::header_len);
}

TEST(WireEthernetTest, DeconstructsUnicastIpv4) {
    const auto f = parse_ethernet(frame_ipv4_echo_request);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->repr.dst, mac_b);
    EXPECT_EQ(f->repr.src, mac_a);
    EXPECT_EQ(f->repr.ethertype, static_cast<uint16_t>(EtherType::Ipv4));
    EXPECT_EQ(f->payload.size(), sizeof(frame_ipv4_echo_request) - EthernetRepr::header_len);
    EXPECT_EQ(f->payload[0], 0x45);
}

TEST(WireEthernetTest, ConstructsTheCapturedHeaders) {
    std::vector<uint8_t> buf(EthernetRepr::header_len, 0xaa);
    EthernetRepr{MacAddress::broadcast(), mac_a, static_cast<uint16_t>(EtherType::Arp)}.emit(buf);
    EXPECT_TRUE(std::equal(buf.begin(), buf.end(), frame_arp_request));

    EthernetRepr{mac_b, mac_a, static_cast<uint16_t>(EtherType::Ipv4)}.emit(buf);
    EXPECT_TRUE(std::equal(buf.begin(), buf.end(), frame_ipv4_echo_request));
}

TEST(WireEthernetTest, RefusesEveryTruncatedHeader) {
    for (size_t len = 0; len < EthernetRepr::header_len; ++len) {
        // Own heap block per length: ASan catches a read past the end.
        const std::vector<uint8_t> prefix(frame_ipv4_echo_request, frame_ipv4_echo_request + len);
        const auto f = parse_ethernet(prefix);
        ASSERT_FALSE(f.has_value()) << "length " << len;
        EXPECT_EQ(f.error(), ParseError::Truncated);
    }
    // A bare header is a valid frame with an empty payload.
    const std::vector<uint8_t> header(frame_ipv4_echo_request,
                                      frame_ipv4_echo_request + EthernetRepr::header_len);
    const auto f = parse_ethernet(header);
    ASSERT_TRUE(f.has_value());
    EXPECT_TRUE(f->payload.empty());
}

TEST(WireEthernetTest, RoundTrips) {
    for (ByteSpan frame : {ByteSpan(frame_arp_request), ByteSpan(frame_ipv4_echo_request)}) {
        const auto f = parse_ethernet(frame);
        ASSERT_TRUE(f.has_value());
        std::vector<uint8_t> out(frame.size());
        f->repr.emit(out);
        std::copy(f->payload.begin(), f->payload.end(), out.begin() + EthernetRepr::header_len);
        EXPECT_TRUE(std::equal(out.begin(), out.end(), frame.begin()));
    }
}

TEST(WireEthernetTest, KeepsPaddingAndUnknownEthertypes) {
    // The ARP request padded to the 60-byte minimum, as a NIC delivers it:
    // Ethernet cannot tell padding from payload, the upper layer trims.
    std::vector<uint8_t> padded(frame_arp_request, frame_arp_request + sizeof(frame_arp_request));
    padded.resize(60, 0);
    auto f = parse_ethernet(padded);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->payload.size(), 46u);

    // 802.1Q tag and an 802.3 length field survive raw, to be counted.
    padded[12] = 0x81;
    padded[13] = 0x00;
    f = parse_ethernet(padded);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->repr.ethertype, 0x8100);
    padded[12] = 0x00;
    padded[13] = 0x2e;
    f = parse_ethernet(padded);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->repr.ethertype, 0x002e);
}

TEST(WireMacAddressTest, ParsesAndPrints) {
    EXPECT_EQ(MacAddress::parse("02:00:00:00:00:01"), mac_a);
    EXPECT_EQ(MacAddress::parse("ff:ff:ff:ff:ff:ff"), MacAddress::broadcast());
    const auto m = MacAddress::parse("0A:1b:2C:3d:4E:5f");
    ASSERT_TRUE(m.has_value());
    EXPECT_EQ(m->bytes, (std::array<uint8_t, 6>{0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f}));
    EXPECT_EQ(m->to_string(), "0a:1b:2c:3d:4e:5f");
    EXPECT_EQ(MacAddress{}.to_string(), "00:00:00:00:00:00");
    EXPECT_EQ(MacAddress::parse(mac_b.to_string()), mac_b);
}

TEST(WireMacAddressTest, RefusesMalformedText) {
    for (const char* bad : {"", "02:00:00:00:00", "02:00:00:00:00:01:02", "02-00-00-00-00-01",
                            "2:0:0:0:0:1", "02:00:00:00:00:0g", "02:00:00:00:00:01 ",
                            "0200.0000.0001", "02:00:00:00:00::1", ":02:00:00:00:00:0"}) {
        EXPECT_FALSE(MacAddress::parse(bad).has_value()) << '"' << bad << '"';
    }
}

TEST(WireMacAddressTest, Classifies) {
    EXPECT_TRUE(MacAddress::broadcast().is_broadcast());
    EXPECT_TRUE(MacAddress::broadcast().is_multicast());
    EXPECT_TRUE(MacAddress::parse("01:00:5e:00:00:fb")->is_multicast());
    EXPECT_TRUE(mac_a.is_unicast());
    EXPECT_FALSE(mac_a.is_zero());
    EXPECT_TRUE(MacAddress{}.is_zero());
    EXPECT_LT(mac_a, mac_b);
}

}  // namespace
}  // namespace ustack::wire
