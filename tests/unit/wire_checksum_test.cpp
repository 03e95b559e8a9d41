// Checksum (RFC 1071), sequence-number arithmetic (RFC 9293 §3.4), IPv4
// addresses and prefixes, parse error names.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ipv4_address.h"
#include "stack/wire/seq.h"

namespace ustack::wire {
namespace {

// The simplest correct RFC 1071 sum: 16-bit words, one at a time, carries
// folded at the end. The reference the fast accumulate() is checked against.
uint16_t reference_checksum(const std::vector<uint8_t>& data) {
    uint64_t sum = 0;
    for (size_t i = 0; i < data.size(); i += 2) {
        const uint32_t hi = data[i];
        const uint32_t lo = i + 1 < data.size() ? data[i + 1] : 0;
        sum += (hi << 8) | lo;
    }
    while (sum > 0xffff) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(~sum & 0xffff);
}

// ---------------------------------------------------------------- checksum

TEST(WireChecksumTest, Rfc1071NumericalExample) {
    // RFC 1071 §3: bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2 (one's
    // complement), so the checksum is ~ddf2 = 220d.
    const std::vector<uint8_t> data{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    EXPECT_EQ(checksum::accumulate(data), 0xddf2u);
    EXPECT_EQ(checksum::compute(data), 0x220d);
}

TEST(WireChecksumTest, EmptyAndZeroData) {
    EXPECT_EQ(checksum::accumulate({}), 0u);
    EXPECT_EQ(checksum::compute({}), 0xffff);
    const std::vector<uint8_t> zeros(7, 0);
    EXPECT_EQ(checksum::compute(zeros), 0xffff);
    // An all-zero "header" with a zero checksum field does not verify.
    EXPECT_FALSE(checksum::verify(zeros));
}

TEST(WireChecksumTest, OddLengthPadsTheLastByteOnTheRight) {
    // RFC 1071 §4.1: the odd byte is the high half of a zero-padded word.
    const std::vector<uint8_t> odd{0x12, 0x34, 0x56};
    EXPECT_EQ(checksum::accumulate(odd), 0x1234u + 0x5600u);
    EXPECT_EQ(checksum::compute(odd), reference_checksum(odd));
}

TEST(WireChecksumTest, ChainingEvenSpansEqualsOneSpan) {
    std::vector<uint8_t> data(101);
    for (size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<uint8_t>(i * 37 + 11);
    }
    const ByteSpan all(data);
    const uint32_t chained =
        checksum::accumulate(all.subspan(42), checksum::accumulate(all.first(42)));
    EXPECT_EQ(checksum::finish(chained), checksum::compute(all));
    // Chained from a 2-byte first span, as a pseudo-header sum would be.
    const uint32_t chained2 =
        checksum::accumulate(all.subspan(2), checksum::accumulate(all.first(2)));
    EXPECT_EQ(checksum::finish(chained2), checksum::compute(all));
}

TEST(WireChecksumTest, MatchesReferenceForEveryLengthUpTo300) {
    std::mt19937 rng(1071);
    for (size_t len = 0; len <= 300; ++len) {
        std::vector<uint8_t> data(len);
        for (auto& b : data) {
            b = static_cast<uint8_t>(rng());
        }
        EXPECT_EQ(checksum::compute(data), reference_checksum(data)) << "length " << len;
    }
}

TEST(WireChecksumTest, CarriesFoldForLargeAllOnesBuffers) {
    // 0xffff words maximise carries; 64 KiB is the largest IPv4 datagram.
    const std::vector<uint8_t> ones(65535, 0xff);
    EXPECT_EQ(checksum::compute(ones), reference_checksum(ones));
    const std::vector<uint8_t> ones_even(65536, 0xff);
    EXPECT_EQ(checksum::compute(ones_even), reference_checksum(ones_even));
    // A non-zero sum never folds to zero: 0xffff words sum to 0xffff.
    EXPECT_EQ(checksum::accumulate(ones_even), 0xffffu);
    EXPECT_EQ(checksum::finish(0xffffu), 0);
    EXPECT_EQ(checksum::finish(0x1fffeu), 0);  // 0xfffe + carry 1
}

TEST(WireChecksumTest, VerifiesACapturedIpv4Header) {
    // IPv4 header of an ICMP echo request, Linux 6.18 (see wire_ipv4_test.cpp).
    std::vector<uint8_t> header{0x45, 0x00, 0x00, 0x2c, 0x3c, 0x55, 0x40, 0x00, 0x40, 0x01,
                                0xea, 0x79, 0x0a, 0x00, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x02};
    EXPECT_TRUE(checksum::verify(header));
    header[10] = 0;
    header[11] = 0;
    EXPECT_EQ(checksum::compute(header), 0xea79);
    header[15] ^= 1;
    EXPECT_FALSE(checksum::verify(header));
}

TEST(WireChecksumTest, PseudoHeaderOfACapturedUdpDatagram) {
    // UDP 10.0.0.1:40000 -> 10.0.0.2:9999 "hello ustack", Linux 6.18 capture.
    const std::vector<uint8_t> udp{0x9c, 0x40, 0x27, 0x0f, 0x00, 0x14, 0x97, 0x41, 0x68, 0x65,
                                   0x6c, 0x6c, 0x6f, 0x20, 0x75, 0x73, 0x74, 0x61, 0x63, 0x6b};
    const Ipv4Address src(10, 0, 0, 1);
    const Ipv4Address dst(10, 0, 0, 2);
    // 0a00 + 0001 + 0a00 + 0002 + 0011 + 0014
    EXPECT_EQ(checksum::pseudo_header(src, dst, 17, 20), 0x1428u);
    EXPECT_TRUE(checksum::verify(udp, checksum::pseudo_header(src, dst, 17, 20)));
    EXPECT_FALSE(checksum::verify(udp, checksum::pseudo_header(src, Ipv4Address(10, 0, 0, 3), 17, 20)));
    EXPECT_FALSE(checksum::verify(udp, checksum::pseudo_header(src, dst, 6, 20)));
}

TEST(WireChecksumTest, PseudoHeaderFoldsHighAddresses) {
    const Ipv4Address all_ones = Ipv4Address::broadcast();
    // ffff * 4 + 0xff + 0xffff, folded.
    uint64_t expect = 0xffffull * 4 + 0xff + 0xffff;
    while (expect > 0xffff) {
        expect = (expect & 0xffff) + (expect >> 16);
    }
    EXPECT_EQ(checksum::finish(checksum::pseudo_header(all_ones, all_ones, 0xff, 0xffff)),
              static_cast<uint16_t>(~expect & 0xffff));
}

// ------------------------------------------------------------- SeqNumber

TEST(WireSeqNumberTest, ComparesModulo2To32) {
    const SeqNumber a(0xfffffff0u);
    const SeqNumber b = a + 0x20;  // wraps to 0x10
    EXPECT_EQ(b.raw(), 0x10u);
    EXPECT_TRUE(a < b);
    EXPECT_TRUE(b > a);
    EXPECT_TRUE(a <= b);
    EXPECT_FALSE(a >= b);
    EXPECT_EQ(b - a, 0x20);
    EXPECT_EQ(a - b, -0x20);
    EXPECT_EQ(SeqNumber::max(a, b), b);
    EXPECT_EQ(SeqNumber::min(a, b), a);
    EXPECT_EQ(b - 0x20u, a);
}

TEST(WireSeqNumberTest, WrapsAtTheTopOfTheSpace) {
    EXPECT_TRUE(SeqNumber(0xffffffffu) < SeqNumber(0));
    EXPECT_TRUE(SeqNumber(0) > SeqNumber(0xffffffffu));
    EXPECT_EQ(SeqNumber(0) - SeqNumber(0xffffffffu), 1);
    SeqNumber s(0xffffffffu);
    s += 2;
    EXPECT_EQ(s.raw(), 1u);
}

TEST(WireSeqNumberTest, HalfTheSpaceAwayIsBehind) {
    // Less than 2^31 ahead is "after"; exactly 2^31 is ambiguous and the
    // signed distance is negative (RFC 1982 leaves it undefined).
    const SeqNumber zero(0);
    EXPECT_TRUE(zero < SeqNumber(0x7fffffffu));
    EXPECT_TRUE(zero > SeqNumber(0x80000001u));
    EXPECT_EQ(SeqNumber(0x80000000u) - zero, INT32_MIN);
}

TEST(WireSeqNumberTest, InRangeAcrossTheWrap) {
    const SeqNumber lo(0xfffffffeu);
    const SeqNumber hi = lo + 4;  // 2
    EXPECT_TRUE(seq_in_range(lo, lo, hi));
    EXPECT_TRUE(seq_in_range(SeqNumber(0xffffffffu), lo, hi));
    EXPECT_TRUE(seq_in_range(SeqNumber(0), lo, hi));
    EXPECT_TRUE(seq_in_range(SeqNumber(1), lo, hi));
    EXPECT_FALSE(seq_in_range(hi, lo, hi));
    EXPECT_FALSE(seq_in_range(lo - 1, lo, hi));
    EXPECT_FALSE(seq_in_range(lo, lo, lo));  // empty window
}

// ---------------------------------------------------------- Ipv4Address

TEST(WireIpv4AddressTest, ParsesAndPrintsDottedQuads) {
    EXPECT_EQ(Ipv4Address::parse("10.0.0.1"), Ipv4Address(10, 0, 0, 1));
    EXPECT_EQ(Ipv4Address::parse("0.0.0.0"), Ipv4Address::unspecified());
    EXPECT_EQ(Ipv4Address::parse("255.255.255.255"), Ipv4Address::broadcast());
    EXPECT_EQ(Ipv4Address::parse("192.168.100.200")->to_u32(), 0xc0a864c8u);
    EXPECT_EQ(Ipv4Address(192, 168, 100, 200).to_string(), "192.168.100.200");
    EXPECT_EQ(Ipv4Address().to_string(), "0.0.0.0");
    EXPECT_EQ(Ipv4Address::broadcast().to_string(), "255.255.255.255");
}

TEST(WireIpv4AddressTest, RefusesMalformedText) {
    for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "1.2.3.",
                            ".1.2.3", "1..2.3", "1.2.3.4 ", " 1.2.3.4", "a.b.c.d", "1.2.3.-4",
                            "+1.2.3.4", "1.2.3.0x4", "01.2.3.4", "1.2.3.1000", "1.2.3.4/24"}) {
        EXPECT_FALSE(Ipv4Address::parse(bad).has_value()) << '"' << bad << '"';
    }
}

TEST(WireIpv4AddressTest, Classifies) {
    EXPECT_TRUE(Ipv4Address(127, 0, 0, 1).is_loopback());
    EXPECT_TRUE(Ipv4Address(224, 0, 0, 251).is_multicast());
    EXPECT_TRUE(Ipv4Address(239, 255, 255, 255).is_multicast());
    EXPECT_FALSE(Ipv4Address(240, 0, 0, 1).is_multicast());
    EXPECT_TRUE(Ipv4Address::broadcast().is_broadcast());
    EXPECT_TRUE(Ipv4Address().is_unspecified());
    EXPECT_EQ((Ipv4Address(10, 0, 0, 1).octets()), (std::array<uint8_t, 4>{10, 0, 0, 1}));
    EXPECT_LT(Ipv4Address(9, 255, 255, 255), Ipv4Address(10, 0, 0, 0));
}

// ------------------------------------------------------------- Ipv4Cidr

TEST(WireIpv4CidrTest, ParsesAndPrints) {
    const auto c = Ipv4Cidr::parse("192.168.1.77/24");
    ASSERT_TRUE(c.has_value());
    EXPECT_EQ(c->address, Ipv4Address(192, 168, 1, 77));  // host bits kept: it is our address
    EXPECT_EQ(c->prefix_len, 24);
    EXPECT_EQ(c->netmask(), 0xffffff00u);
    EXPECT_EQ(c->network(), Ipv4Address(192, 168, 1, 0));
    EXPECT_EQ(c->subnet_broadcast(), Ipv4Address(192, 168, 1, 255));
    EXPECT_EQ(c->to_string(), "192.168.1.77/24");
    EXPECT_EQ(Ipv4Cidr::parse("0.0.0.0/0"), (Ipv4Cidr{Ipv4Address(), 0}));
    EXPECT_EQ(Ipv4Cidr::parse("10.1.2.3/32"), (Ipv4Cidr{Ipv4Address(10, 1, 2, 3), 32}));
}

TEST(WireIpv4CidrTest, RefusesMalformedText) {
    for (const char* bad : {"1.2.3.4/33", "1.2.3", "256.1.1.1", "256.1.1.1/8", "1.2.3.4",
                            "1.2.3.4/", "/24", "1.2.3/24", "1.2.3.4/-1", "1.2.3.4/100",
                            "1.2.3.4/024", "1.2.3.4/2a", "1.2.3.4//24", "1.2.3.4/24/",
                            "1.2.3.4/ 24", ""}) {
        EXPECT_FALSE(Ipv4Cidr::parse(bad).has_value()) << '"' << bad << '"';
    }
}

TEST(WireIpv4CidrTest, Contains) {
    const Ipv4Cidr net{Ipv4Address(10, 0, 0, 1), 24};
    EXPECT_TRUE(net.contains(Ipv4Address(10, 0, 0, 0)));
    EXPECT_TRUE(net.contains(Ipv4Address(10, 0, 0, 2)));
    EXPECT_TRUE(net.contains(Ipv4Address(10, 0, 0, 255)));
    EXPECT_FALSE(net.contains(Ipv4Address(10, 0, 1, 0)));
    EXPECT_FALSE(net.contains(Ipv4Address(9, 255, 255, 255)));

    const Ipv4Cidr odd{Ipv4Address(172, 16, 5, 4), 13};  // 172.16.0.0 - 172.23.255.255
    EXPECT_TRUE(odd.contains(Ipv4Address(172, 23, 255, 255)));
    EXPECT_FALSE(odd.contains(Ipv4Address(172, 24, 0, 0)));
    EXPECT_EQ(odd.network(), Ipv4Address(172, 16, 0, 0));
    EXPECT_EQ(odd.subnet_broadcast(), Ipv4Address(172, 23, 255, 255));

    const Ipv4Cidr any{Ipv4Address(1, 2, 3, 4), 0};  // default route
    EXPECT_EQ(any.netmask(), 0u);
    EXPECT_TRUE(any.contains(Ipv4Address(200, 1, 1, 1)));
    EXPECT_TRUE(any.contains(Ipv4Address::broadcast()));

    const Ipv4Cidr host{Ipv4Address(10, 0, 0, 1), 32};
    EXPECT_TRUE(host.contains(Ipv4Address(10, 0, 0, 1)));
    EXPECT_FALSE(host.contains(Ipv4Address(10, 0, 0, 2)));
    EXPECT_EQ(host.subnet_broadcast(), Ipv4Address(10, 0, 0, 1));
}

// ------------------------------------------------------------ ParseError

TEST(WireParseErrorTest, EveryErrorHasADistinctName) {
    const std::vector<ParseError> all{ParseError::Truncated,   ParseError::BadLength,
                                      ParseError::BadChecksum, ParseError::BadVersion,
                                      ParseError::Unsupported, ParseError::Malformed};
    std::vector<std::string> names;
    for (ParseError e : all) {
        names.emplace_back(to_string(e));
    }
    EXPECT_EQ(names, (std::vector<std::string>{"truncated", "bad length", "bad checksum",
                                               "bad version", "unsupported", "malformed"}));
}

}  // namespace
}  // namespace ustack::wire
