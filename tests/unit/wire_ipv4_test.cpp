// IPv4 header (RFC 791).
//
// Fixtures: captured with tshark on a veth pair between two private network
// namespaces (Linux 6.18; tx checksum offload off so every checksum is the
// final one). Host A is 10.0.0.1, host B is 10.0.0.2. The arrays are IP
// packets (Ethernet header removed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace ustack::wire {
namespace {

// Frame 5: A -> B, UDP 40000 -> 9999 "hello ustack"; DF, TTL 64.
constexpr uint8_t ip_udp[] = {
    0x45, 0x00, 0x00, 0x28, 0x32, 0xaa, 0x40, 0x00, 0x40, 0x11, 0xf4, 0x18,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x27, 0x0f,
    0x00, 0x14, 0x97, 0x41, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x75, 0x73,
    0x74, 0x61, 0x63, 0x6b,
};

// Frame 6: B -> A, ICMP port unreachable for frame 5. TOS 0xc0 (CS6, as
// Linux sends ICMP errors), no DF.
constexpr uint8_t ip_icmp_port_unreach[] = {
    0x45, 0xc0, 0x00, 0x44, 0x65, 0xcf, 0x00, 0x00, 0x40, 0x01, 0x00, 0x28,
    0x0a, 0x00, 0x00, 0x02, 0x0a, 0x00, 0x00, 0x01, 0x03, 0x03, 0x11, 0x25,
    0x00, 0x00, 0x00, 0x00, 0x45, 0x00, 0x00, 0x28, 0x32, 0xaa, 0x40, 0x00,
    0x40, 0x11, 0xf4, 0x18, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02,
    0x9c, 0x40, 0x27, 0x0f, 0x00, 0x14, 0x97, 0x41, 0x68, 0x65, 0x6c, 0x6c,
    0x6f, 0x20, 0x75, 0x73, 0x74, 0x61, 0x63, 0x6b,
};

// Frames 31 and 32: a 68-byte UDP datagram sent by A over an MTU of 68,
// so split in two fragments: 48 bytes with MF, then 20 bytes at offset 48.
constexpr uint8_t ip_frag_first[] = {
    0x45, 0x00, 0x00, 0x44, 0x33, 0x4a, 0x20, 0x00, 0x40, 0x11, 0x13, 0x5d,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x9c, 0x41, 0x27, 0x0e,
    0x00, 0x44, 0x18, 0xe7, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48,
    0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f, 0x50, 0x51, 0x52, 0x53, 0x54,
    0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60,
    0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68,
};
constexpr uint8_t ip_frag_last[] = {
    0x45, 0x00, 0x00, 0x28, 0x33, 0x4a, 0x00, 0x06, 0x40, 0x11, 0x33, 0x73,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x69, 0x6a, 0x6b, 0x6c,
    0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78,
    0x79, 0x7a, 0x7b, 0x7c,
};

// Not captured: frame 5's header with a Router Alert option (RFC 2113,
// 94 04 00 00) inserted, IHL 6, Total Length 44, checksum recomputed.
constexpr uint8_t ip_with_option[] = {
    0x46, 0x00, 0x00, 0x2c, 0x32, 0xaa, 0x40, 0x00, 0x40, 0x11, 0x5f, 0x10,
    0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02, 0x94, 0x04, 0x00, 0x00,
    0x9c, 0x40, 0x27, 0x0f, 0x00, 0x14, 0x97, 0x41, 0x68, 0x65, 0x6c, 0x6c,
    0x6f, 0x20, 0x75, 0x73, 0x74, 0x61, 0x63, 0x6b,
};

constexpr Ipv4Address ip_a(10, 0, 0, 1);
constexpr Ipv4Address ip_b(10, 0, 0, 2);

std::vector<uint8_t> copy_of(ByteSpan b) {
    return {b.begin(), b.end()};
}

// Recomputes the header checksum over IHL*4 bytes (as far as they exist), so
// that a test sees the length check it aims at, not a checksum failure.
void fix_checksum(std::vector<uint8_t>& p) {
    const size_t ihl = std::min<size_t>(size_t{p[0] & 0x0fu} * 4, p.size());
    write_u16(p, Ipv4Repr::CHECKSUM.start, 0);
    write_u16(p, Ipv4Repr::CHECKSUM.start, checksum::compute(ByteSpan(p).first(ihl)));
}

Ipv4Repr udp_repr() {
    Ipv4Repr r;
    r.src = ip_a;
    r.dst = ip_b;
    r.protocol = static_cast<uint8_t>(IpProtocol::Udp);
    r.payload_len = 20;
    r.ttl = 64;
    r.tos = 0;
    r.ident = 0x32aa;
    r.dont_fragment = true;
    return r;
}

Ipv4Repr port_unreach_repr() {
    Ipv4Repr r;
    r.src = ip_b;
    r.dst = ip_a;
    r.protocol = static_cast<uint8_t>(IpProtocol::Icmp);
    r.payload_len = 48;
    r.ttl = 64;
    r.tos = 0xc0;
    r.ident = 0x65cf;
    return r;
}

TEST(WireIpv4Test, DeconstructsUdpPacket) {
    const auto p = parse_ipv4(ip_udp);
    ASSERT_TRUE(p.has_value());
    const Ipv4Repr& r = p->repr;
    EXPECT_EQ(r.src, ip_a);
    EXPECT_EQ(r.dst, ip_b);
    EXPECT_EQ(r.protocol, static_cast<uint8_t>(IpProtocol::Udp));
    EXPECT_EQ(r.payload_len, 20);
    EXPECT_EQ(r.ttl, 64);
    EXPECT_EQ(r.tos, 0);
    EXPECT_EQ(r.ident, 0x32aa);
    EXPECT_TRUE(r.dont_fragment);
    EXPECT_FALSE(r.more_fragments);
    EXPECT_EQ(r.fragment_offset, 0);
    EXPECT_FALSE(r.is_fragment());
    EXPECT_EQ(p->header_len, 20u);
    EXPECT_EQ(p->payload.data(), ip_udp + 20);
    EXPECT_EQ(p->payload.size(), 20u);
    EXPECT_EQ(r, udp_repr());
}

TEST(WireIpv4Test, DeconstructsIcmpErrorPacket) {
    const auto p = parse_ipv4(ip_icmp_port_unreach);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->repr, port_unreach_repr());
    EXPECT_EQ(p->payload.size(), 48u);
    EXPECT_EQ(p->payload[0], 3);  // ICMP type: destination unreachable
}

TEST(WireIpv4Test, DeconstructsFragments) {
    const auto first = parse_ipv4(ip_frag_first);
    ASSERT_TRUE(first.has_value());
    EXPECT_EQ(first->repr.ident, 0x334a);
    EXPECT_FALSE(first->repr.dont_fragment);
    EXPECT_TRUE(first->repr.more_fragments);
    EXPECT_EQ(first->repr.fragment_offset, 0);
    EXPECT_TRUE(first->repr.is_fragment());
    EXPECT_EQ(first->payload.size(), 48u);

    const auto last = parse_ipv4(ip_frag_last);
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(last->repr.ident, 0x334a);
    EXPECT_FALSE(last->repr.dont_fragment);
    EXPECT_FALSE(last->repr.more_fragments);
    EXPECT_EQ(last->repr.fragment_offset, 48);  // field value 6, in 8-byte units
    EXPECT_TRUE(last->repr.is_fragment());
    EXPECT_EQ(last->payload.size(), 20u);
    EXPECT_EQ(last->payload[0], 0x69);  // the 49th byte of the UDP datagram
}

TEST(WireIpv4Test, ConstructsTheCapturedHeaders) {
    std::vector<uint8_t> buf(Ipv4Repr::header_len, 0xaa);
    udp_repr().emit(buf);
    EXPECT_EQ(buf, copy_of(ByteSpan(ip_udp).first(20)));

    port_unreach_repr().emit(buf);
    EXPECT_EQ(buf, copy_of(ByteSpan(ip_icmp_port_unreach).first(20)));

    Ipv4Repr frag = udp_repr();
    frag.ident = 0x334a;
    frag.dont_fragment = false;
    frag.more_fragments = true;
    frag.payload_len = 48;
    frag.emit(buf);
    EXPECT_EQ(buf, copy_of(ByteSpan(ip_frag_first).first(20)));
    frag.more_fragments = false;
    frag.fragment_offset = 48;
    frag.payload_len = 20;
    frag.emit(buf);
    EXPECT_EQ(buf, copy_of(ByteSpan(ip_frag_last).first(20)));
}

TEST(WireIpv4Test, RefusesEveryTruncation) {
    for (ByteSpan packet : {ByteSpan(ip_udp), ByteSpan(ip_icmp_port_unreach),
                            ByteSpan(ip_frag_first), ByteSpan(ip_frag_last),
                            ByteSpan(ip_with_option)}) {
        for (size_t len = 0; len < packet.size(); ++len) {
            // Own heap block per length: ASan catches a read past the end.
            const std::vector<uint8_t> prefix(packet.begin(), packet.begin() + len);
            const auto p = parse_ipv4(prefix);
            ASSERT_FALSE(p.has_value()) << "length " << len;
            EXPECT_EQ(p.error(), ParseError::Truncated) << "length " << len;
        }
    }
}

TEST(WireIpv4Test, RoundTrips) {
    for (ByteSpan packet : {ByteSpan(ip_udp), ByteSpan(ip_icmp_port_unreach),
                            ByteSpan(ip_frag_first), ByteSpan(ip_frag_last)}) {
        const auto p = parse_ipv4(packet);
        ASSERT_TRUE(p.has_value());
        std::vector<uint8_t> out(Ipv4Repr::header_len + p->payload.size());
        p->repr.emit(out);
        std::copy(p->payload.begin(), p->payload.end(), out.begin() + Ipv4Repr::header_len);
        EXPECT_EQ(out, copy_of(packet));
    }
}

TEST(WireIpv4Test, RefusesBadChecksum) {
    for (size_t byte = 0; byte < Ipv4Repr::header_len; ++byte) {
        if (byte == Ipv4Repr::VER_IHL.start) {
            continue;  // 0x55: the version check comes first
        }
        std::vector<uint8_t> p = copy_of(ip_udp);
        p[byte] ^= 0x10;
        const auto r = parse_ipv4(p);
        ASSERT_FALSE(r.has_value()) << "byte " << byte;
        EXPECT_EQ(r.error(), ParseError::BadChecksum) << "byte " << byte;
    }
    // The payload is not covered by the IPv4 checksum (RFC 791 §3.1).
    std::vector<uint8_t> p = copy_of(ip_udp);
    p[30] ^= 0xff;
    EXPECT_TRUE(parse_ipv4(p).has_value());
}

TEST(WireIpv4Test, RefusesOtherVersions) {
    std::vector<uint8_t> p = copy_of(ip_udp);
    p[0] = 0x65;  // "IPv6" with the IPv4 layout
    fix_checksum(p);
    const auto r = parse_ipv4(p);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), ParseError::BadVersion);
}

TEST(WireIpv4Test, RefusesLyingLengths) {
    struct Case {
        uint8_t ver_ihl;
        uint16_t total_len;
        ParseError want;
    };
    // ip_udp is 40 bytes: a 20-byte header and 20 bytes of UDP.
    for (Case c : {Case{0x44, 40, ParseError::BadLength},   // IHL 4 < 5
                   Case{0x40, 40, ParseError::BadLength},   // IHL 0
                   Case{0x4b, 40, ParseError::Truncated},   // IHL 11: 44 bytes > 40
                   Case{0x45, 41, ParseError::Truncated},   // Total Length past the buffer
                   Case{0x45, 0xffff, ParseError::Truncated},
                   Case{0x45, 19, ParseError::BadLength},   // Total Length < header
                   Case{0x45, 0, ParseError::BadLength},
                   Case{0x46, 23, ParseError::BadLength}}) {  // < IHL*4 = 24
        std::vector<uint8_t> p = copy_of(ip_udp);
        p[Ipv4Repr::VER_IHL.start] = c.ver_ihl;
        write_u16(p, Ipv4Repr::LENGTH.start, c.total_len);
        fix_checksum(p);
        const auto r = parse_ipv4(p);
        ASSERT_FALSE(r.has_value()) << std::hex << int{c.ver_ihl} << " " << c.total_len;
        EXPECT_EQ(r.error(), c.want) << std::hex << int{c.ver_ihl} << " " << c.total_len;
    }
}

TEST(WireIpv4Test, TrimsLinkPaddingAndShortTotalLength) {
    // Frame 32 is 54 bytes on the wire; a NIC delivers it padded to 60.
    std::vector<uint8_t> padded = copy_of(ip_frag_last);
    padded.resize(46, 0);
    auto p = parse_ipv4(padded);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->repr.payload_len, 20);
    EXPECT_EQ(p->payload.size(), 20u);
    EXPECT_EQ(p->payload.back(), 0x7c);

    // Total Length == header: an empty payload is legal.
    std::vector<uint8_t> empty = copy_of(ip_udp);
    write_u16(empty, Ipv4Repr::LENGTH.start, 20);
    fix_checksum(empty);
    p = parse_ipv4(empty);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->repr.payload_len, 0);
    EXPECT_TRUE(p->payload.empty());
}

TEST(WireIpv4Test, SkipsOptions) {
    const auto p = parse_ipv4(ip_with_option);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->header_len, 24u);
    EXPECT_EQ(p->repr.payload_len, 20);
    EXPECT_EQ(p->payload.data(), ip_with_option + 24);
    // Everything else reads as in the option-less original.
    EXPECT_EQ(p->repr, udp_repr());
    // The option bytes are covered by the checksum.
    std::vector<uint8_t> bad = copy_of(ip_with_option);
    bad[21] ^= 1;
    const auto r = parse_ipv4(bad);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), ParseError::BadChecksum);
}

TEST(WireIpv4Test, IgnoresTheReservedFlag) {
    std::vector<uint8_t> p = copy_of(ip_udp);
    p[Ipv4Repr::FLG_OFF.start] |= 0x80;
    fix_checksum(p);
    const auto r = parse_ipv4(p);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->repr, udp_repr());
}

TEST(WireIpv4Test, EmitsLargestFragmentOffsetAndBothFlags) {
    Ipv4Repr r = udp_repr();
    r.dont_fragment = true;
    r.more_fragments = true;
    r.fragment_offset = 0x1fff * 8;
    r.payload_len = 0;
    std::vector<uint8_t> buf(Ipv4Repr::header_len);
    r.emit(buf);
    EXPECT_EQ(read_u16(buf, Ipv4Repr::FLG_OFF.start), 0x7fff);
    EXPECT_TRUE(checksum::verify(buf));
    const auto p = parse_ipv4(buf);
    ASSERT_TRUE(p.has_value());
    EXPECT_EQ(p->repr, r);
}

TEST(WireIpv4Test, RandomMutationsParseOrRefuseWithinTheBuffer) {
    std::mt19937 rng(791);
    for (int iter = 0; iter < 5000; ++iter) {
        std::vector<uint8_t> p = copy_of(iter % 2 == 0 ? ByteSpan(ip_with_option)
                                                       : ByteSpan(ip_icmp_port_unreach));
        for (int flips = 1 + static_cast<int>(rng() % 3); flips > 0; --flips) {
            p[rng() % Ipv4Repr::DST_ADDR.end] = static_cast<uint8_t>(rng());
        }
        p.resize(rng() % (p.size() + 1));
        if (rng() % 2 == 0) {
            if (p.size() >= Ipv4Repr::header_len) {
                fix_checksum(p);  // let the length checks be reached
            }
        }
        const auto r = parse_ipv4(p);
        if (r.has_value()) {
            // Whatever was accepted lies within the buffer.
            EXPECT_GE(r->header_len, Ipv4Repr::header_len);
            EXPECT_LE(r->header_len + r->payload.size(), p.size());
            EXPECT_EQ(r->payload.size(), r->repr.payload_len);
            EXPECT_EQ(r->payload.data(), p.data() + r->header_len);
        }
    }
}

}  // namespace
}  // namespace ustack::wire
