// UDP (RFC 768).
//
// Fixtures: captured with tshark on a veth pair between two private network
// namespaces (Linux 6.18; tx checksum offload off so every checksum is the
// final one). Host A is 10.0.0.1; datagrams sent by a Python socket on A.
// The arrays are UDP datagrams (IP header removed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "stack/wire/checksum.h"
#include "stack/wire/udp.h"

namespace ustack::wire {
namespace {

// Frame 5: 10.0.0.1:40000 -> 10.0.0.2:9999 "hello ustack".
constexpr uint8_t udp_hello[] = {
    0x9c, 0x40, 0x27, 0x0f, 0x00, 0x14, 0x97, 0x41, 0x68, 0x65, 0x6c, 0x6c,
    0x6f, 0x20, 0x75, 0x73, 0x74, 0x61, 0x63, 0x6b,
};

// Frame 7: 10.0.0.1:40000 -> 10.0.1.5:33434 "ttl one" (odd length).
constexpr uint8_t udp_ttl_one[] = {
    0x9c, 0x40, 0x82, 0x9a, 0x00, 0x0f, 0x16, 0xec, 0x74, 0x74, 0x6c, 0x20,
    0x6f, 0x6e, 0x65,
};

constexpr Ipv4Address ip_a(10, 0, 0, 1);
constexpr Ipv4Address ip_b(10, 0, 0, 2);
constexpr Ipv4Address ip_far(10, 0, 1, 5);

struct Fixture {
    ByteSpan bytes;
    Ipv4Address src;
    Ipv4Address dst;
};
const Fixture all_fixtures[] = {{udp_hello, ip_a, ip_b}, {udp_ttl_one, ip_a, ip_far}};

std::vector<uint8_t> copy_of(ByteSpan b) {
    return {b.begin(), b.end()};
}

ByteSpan bytes_of(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

bool same_bytes(ByteSpan a, ByteSpan b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// Recomputes the checksum over the first `length` bytes.
void fix_checksum(std::vector<uint8_t>& d, Ipv4Address src, Ipv4Address dst, uint16_t length) {
    write_u16(d, UdpRepr::CHECKSUM.start, 0);
    const uint32_t pseudo = checksum::pseudo_header(src, dst, 17, length);
    write_u16(d, UdpRepr::CHECKSUM.start,
              checksum::finish(checksum::accumulate(ByteSpan(d).first(length), pseudo)));
}

std::vector<uint8_t> emit(const UdpRepr& r, Ipv4Address src, Ipv4Address dst, ByteSpan payload) {
    std::vector<uint8_t> out(UdpRepr::header_len + payload.size(), 0xaa);
    r.emit(out, src, dst, payload);
    return out;
}

TEST(WireUdpTest, DeconstructsCapturedDatagrams) {
    const auto hello = parse_udp(udp_hello, ip_a, ip_b);
    ASSERT_TRUE(hello.has_value());
    EXPECT_EQ(hello->repr.src_port, 40000);
    EXPECT_EQ(hello->repr.dst_port, 9999);
    EXPECT_TRUE(same_bytes(hello->payload, bytes_of("hello ustack")));
    EXPECT_EQ(hello->payload.data(), udp_hello + UdpRepr::header_len);

    const auto ttl = parse_udp(udp_ttl_one, ip_a, ip_far);
    ASSERT_TRUE(ttl.has_value());
    EXPECT_EQ(ttl->repr.src_port, 40000);
    EXPECT_EQ(ttl->repr.dst_port, 33434);
    EXPECT_TRUE(same_bytes(ttl->payload, bytes_of("ttl one")));
}

TEST(WireUdpTest, ConstructsCapturedDatagrams) {
    EXPECT_EQ(emit(UdpRepr{40000, 9999}, ip_a, ip_b, bytes_of("hello ustack")),
              copy_of(udp_hello));
    EXPECT_EQ(emit(UdpRepr{40000, 33434}, ip_a, ip_far, bytes_of("ttl one")),
              copy_of(udp_ttl_one));
}

TEST(WireUdpTest, RefusesEveryTruncation) {
    for (const Fixture& f : all_fixtures) {
        for (size_t len = 0; len < f.bytes.size(); ++len) {
            // Own heap block per length: ASan catches a read past the end.
            const std::vector<uint8_t> prefix(f.bytes.begin(), f.bytes.begin() + len);
            const auto r = parse_udp(prefix, f.src, f.dst);
            ASSERT_FALSE(r.has_value()) << "length " << len;
            EXPECT_EQ(r.error(), ParseError::Truncated) << "length " << len;
        }
    }
}

TEST(WireUdpTest, RoundTrips) {
    for (const Fixture& f : all_fixtures) {
        const auto d = parse_udp(f.bytes, f.src, f.dst);
        ASSERT_TRUE(d.has_value());
        EXPECT_EQ(emit(d->repr, f.src, f.dst, d->payload), copy_of(f.bytes));
    }
}

TEST(WireUdpTest, RefusesBadChecksum) {
    for (const Fixture& f : all_fixtures) {
        for (size_t byte = 0; byte < f.bytes.size(); ++byte) {
            if (byte >= UdpRepr::LENGTH.start && byte < UdpRepr::LENGTH.end) {
                continue;  // a changed Length fails the length checks first
            }
            std::vector<uint8_t> d = copy_of(f.bytes);
            d[byte] ^= 0x01;
            const auto r = parse_udp(d, f.src, f.dst);
            ASSERT_FALSE(r.has_value()) << "byte " << byte;
            EXPECT_EQ(r.error(), ParseError::BadChecksum);
        }
    }
    // The pseudo-header is covered: the same bytes from another host fail.
    auto r = parse_udp(udp_hello, ip_a, Ipv4Address(10, 0, 0, 3));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), ParseError::BadChecksum);
    r = parse_udp(udp_hello, ip_b, ip_a);  // swapped: the sum is the same
    EXPECT_TRUE(r.has_value());
}

TEST(WireUdpTest, AcceptsZeroChecksumAsNone) {
    // RFC 768: all zero means the sender computed no checksum.
    std::vector<uint8_t> d = copy_of(udp_hello);
    write_u16(d, UdpRepr::CHECKSUM.start, 0);
    d.back() ^= 0xff;  // nothing protects the data any more
    const auto r = parse_udp(d, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->payload.size(), 12u);
}

TEST(WireUdpTest, RefusesLyingLengths) {
    for (uint16_t length : {0, 1, 7}) {
        std::vector<uint8_t> d = copy_of(udp_hello);
        write_u16(d, UdpRepr::LENGTH.start, length);
        const auto r = parse_udp(d, ip_a, ip_b);
        ASSERT_FALSE(r.has_value()) << length;
        EXPECT_EQ(r.error(), ParseError::BadLength) << length;
    }
    for (uint16_t length : {21, 100, 0xffff}) {
        std::vector<uint8_t> d = copy_of(udp_hello);
        write_u16(d, UdpRepr::LENGTH.start, length);
        const auto r = parse_udp(d, ip_a, ip_b);
        ASSERT_FALSE(r.has_value()) << length;
        EXPECT_EQ(r.error(), ParseError::Truncated) << length;
    }
}

TEST(WireUdpTest, TrimsToTheLengthField) {
    // Bytes past Length (IP payload longer than the datagram) are ignored.
    std::vector<uint8_t> d = copy_of(udp_hello);
    d.insert(d.end(), {0xde, 0xad, 0xbe});
    auto r = parse_udp(d, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(same_bytes(r->payload, bytes_of("hello ustack")));

    // A shorter Length with a matching checksum: "hello" only.
    d = copy_of(udp_hello);
    write_u16(d, UdpRepr::LENGTH.start, 13);
    fix_checksum(d, ip_a, ip_b, 13);
    r = parse_udp(d, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(same_bytes(r->payload, bytes_of("hello")));

    // Length 8: an empty datagram.
    write_u16(d, UdpRepr::LENGTH.start, 8);
    fix_checksum(d, ip_a, ip_b, 8);
    r = parse_udp(d, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->payload.empty());
}

TEST(WireUdpTest, SendsAComputedZeroAsAllOnes) {
    // Find the 2-byte payload that makes the sum 0xffff: the checksum of an
    // all-zero payload is exactly the word that completes it.
    const UdpRepr repr{1234, 5678};
    const std::vector<uint8_t> zero_payload{0, 0};
    const std::vector<uint8_t> probe = emit(repr, ip_a, ip_b, zero_payload);
    const uint16_t complement = read_u16(probe, UdpRepr::CHECKSUM.start);
    std::vector<uint8_t> payload(2);
    write_u16(payload, 0, complement);

    const std::vector<uint8_t> out = emit(repr, ip_a, ip_b, payload);
    EXPECT_EQ(read_u16(out, UdpRepr::CHECKSUM.start), 0xffff);
    const auto r = parse_udp(out, ip_a, ip_b);  // 0xffff verifies like 0x0000 would
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->repr, repr);
}

TEST(WireUdpTest, EmitsPayloadAlreadyInPlace) {
    // The payload written by the caller; the header still garbage.
    std::vector<uint8_t> buf = copy_of(udp_hello);
    std::fill_n(buf.begin(), UdpRepr::header_len, 0xaa);
    UdpRepr{40000, 9999}.emit(buf, ip_a, ip_b, ByteSpan(buf).subspan(UdpRepr::header_len));
    EXPECT_EQ(buf, copy_of(udp_hello));
}

TEST(WireUdpTest, EmitsEmptyDatagram) {
    const std::vector<uint8_t> out = emit(UdpRepr{53, 53}, ip_a, ip_b, {});
    ASSERT_EQ(out.size(), UdpRepr::header_len);
    EXPECT_EQ(read_u16(out, UdpRepr::LENGTH.start), 8);
    const auto r = parse_udp(out, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->payload.empty());
}

TEST(WireUdpTest, RandomLengthsParseOrRefuseWithinTheBuffer) {
    std::mt19937 rng(768);
    for (int iter = 0; iter < 5000; ++iter) {
        std::vector<uint8_t> d = copy_of(udp_hello);
        d.resize(rng() % 40, 0x33);
        if (d.size() >= UdpRepr::header_len) {
            const uint16_t length = static_cast<uint16_t>(rng() % 48);
            write_u16(d, UdpRepr::LENGTH.start, length);
            if (rng() % 2 == 0 && length >= UdpRepr::header_len && length <= d.size()) {
                fix_checksum(d, ip_a, ip_b, length);
            }
        }
        const auto r = parse_udp(d, ip_a, ip_b);
        if (r.has_value()) {
            EXPECT_EQ(r->payload.data(), d.data() + UdpRepr::header_len);
            EXPECT_EQ(r->payload.size() + UdpRepr::header_len,
                      read_u16(d, UdpRepr::LENGTH.start));
        }
    }
}

}  // namespace
}  // namespace ustack::wire
