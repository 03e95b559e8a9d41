// PacketDevice completes TCP/UDP checksums the local kernel left to
// "hardware" (CHECKSUM_PARTIAL through a veth): without it every UDP
// datagram from the kernel over veth + AF_PACKET fails the stack's checksum
// check (seen as drop_udp_bad_checksum before the fix). Pure byte tests.
#include <gtest/gtest.h>

#include "netdev/af_packet.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/udp.h"

namespace ustack::netdev {
namespace {

constexpr size_t eth_len = wire::EthernetRepr::header_len;
constexpr size_t ip_len = wire::Ipv4Repr::header_len;
const wire::Ipv4Address src{10, 77, 0, 1};
const wire::Ipv4Address dst{10, 77, 0, 2};

// An Ethernet + IPv4 + UDP frame whose UDP checksum field holds what Linux
// leaves there under CHECKSUM_PARTIAL: the folded pseudo-header sum,
// not complemented (udp4_hwcsum: uh->check = ~csum_tcpudp_magic(...)).
std::vector<uint8_t> partial_udp_frame(size_t payload_len, uint16_t flags_offset = 0) {
    std::vector<uint8_t> frame(eth_len + ip_len + wire::UdpRepr::header_len + payload_len);
    wire::EthernetRepr eth{wire::MacAddress{{2, 0, 0, 0, 0, 2}}, wire::MacAddress{{2, 0, 0, 0, 0, 1}},
                           static_cast<uint16_t>(wire::EtherType::Ipv4)};
    eth.emit(frame);
    wire::Ipv4Repr ip;
    ip.src = src;
    ip.dst = dst;
    ip.protocol = 17;
    ip.payload_len = static_cast<uint16_t>(wire::UdpRepr::header_len + payload_len);
    ip.emit(wire::MutByteSpan(frame).subspan(eth_len));
    if (flags_offset != 0) {
        wire::write_u16(frame, eth_len + wire::Ipv4Repr::FLG_OFF.start, flags_offset);
    }
    std::vector<uint8_t> payload(payload_len);
    for (size_t i = 0; i < payload_len; ++i) {
        payload[i] = static_cast<uint8_t>(i * 7 + 3);
    }
    wire::UdpRepr udp{40000, 7000};
    const wire::MutByteSpan l4 = wire::MutByteSpan(frame).subspan(eth_len + ip_len);
    udp.emit(l4, src, dst, payload);
    const uint32_t pseudo = wire::checksum::pseudo_header(src, dst, 17, ip.payload_len);
    wire::write_u16(l4, wire::UdpRepr::CHECKSUM.start, static_cast<uint16_t>(~wire::checksum::finish(pseudo)));
    return frame;
}

bool udp_verifies(const std::vector<uint8_t>& frame) {
    const wire::ByteSpan l4 = wire::ByteSpan(frame).subspan(eth_len + ip_len);
    return wire::parse_udp(l4, src, dst).has_value();
}

TEST(ChecksumCompletion, CompletesAPartialUdpChecksum) {
    for (size_t len : {0, 1, 2, 17, 1472}) {
        std::vector<uint8_t> frame = partial_udp_frame(len);
        ASSERT_FALSE(udp_verifies(frame)) << len;
        ASSERT_TRUE(complete_l4_checksum(frame)) << len;
        EXPECT_TRUE(udp_verifies(frame)) << len;
    }
}

TEST(ChecksumCompletion, LeavesWhatItCannotFixAlone) {
    std::vector<uint8_t> fragment = partial_udp_frame(100, 0x2000);  // MF set
    const std::vector<uint8_t> before = fragment;
    EXPECT_FALSE(complete_l4_checksum(fragment));
    EXPECT_EQ(fragment, before);

    std::vector<uint8_t> arp(60, 0);
    wire::write_u16(arp, 12, static_cast<uint16_t>(wire::EtherType::Arp));
    EXPECT_FALSE(complete_l4_checksum(arp));

    std::vector<uint8_t> truncated = partial_udp_frame(100);
    truncated.resize(eth_len + ip_len + 4);
    EXPECT_FALSE(complete_l4_checksum(truncated));
}

}  // namespace
}  // namespace ustack::netdev
