// TCP header and options (RFC 9293 §3.1-3.2, RFC 7323, RFC 2018).
//
// Fixtures: captured with tshark on a veth pair between two private network
// namespaces (Linux 6.18, default sysctls; tx checksum offload off so every
// checksum is the final one). A Python client on 10.0.0.1 connected to a
// Python server on 10.0.0.2:8080. Every segment below was built by a Linux
// kernel. To make B send a SACK, A's capture script injected an
// out-of-order copy of later data through a raw socket; B's answer (the
// SACK-carrying ACK) is Linux's own. The arrays are TCP segments (IP header
// removed).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

#include "stack/wire/checksum.h"
#include "stack/wire/tcp.h"

namespace ustack::wire {
namespace {

// Frame 11: A's SYN. Options "mss 1460, sackOK, TS val 3010227662 ecr 0,
// nop, wscale 10".
constexpr uint8_t tcp_syn[] = {
    0xa8, 0xa4, 0x1f, 0x90, 0xf7, 0x53, 0x79, 0xdc, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x02, 0xfa, 0xf0, 0xde, 0x69, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    0x04, 0x02, 0x08, 0x0a, 0xb3, 0x6c, 0x6d, 0xce, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x03, 0x03, 0x0a,
};

// Frame 12: B's SYN-ACK, same option layout.
constexpr uint8_t tcp_syn_ack[] = {
    0x1f, 0x90, 0xa8, 0xa4, 0x98, 0x61, 0xe0, 0xe6, 0xf7, 0x53, 0x79, 0xdd,
    0xa0, 0x12, 0xfe, 0x88, 0xef, 0xb4, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4,
    0x04, 0x02, 0x08, 0x0a, 0x13, 0x8e, 0x5e, 0x35, 0xb3, 0x6c, 0x6d, 0xce,
    0x01, 0x03, 0x03, 0x0a,
};

// Frame 13: A's pure ACK completing the handshake: "nop, nop, TS".
constexpr uint8_t tcp_ack[] = {
    0xa8, 0xa4, 0x1f, 0x90, 0xf7, 0x53, 0x79, 0xdd, 0x98, 0x61, 0xe0, 0xe7,
    0x80, 0x10, 0x00, 0x3f, 0x1c, 0xce, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a,
    0xb3, 0x6c, 0x6d, 0xce, 0x13, 0x8e, 0x5e, 0x35,
};

// Frame 14: A sends "first chunk\n" with PSH, timestamps.
constexpr uint8_t tcp_data[] = {
    0xa8, 0xa4, 0x1f, 0x90, 0xf7, 0x53, 0x79, 0xdd, 0x98, 0x61, 0xe0, 0xe7,
    0x80, 0x18, 0x00, 0x3f, 0x8b, 0xda, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a,
    0xb3, 0x6c, 0x6d, 0xcf, 0x13, 0x8e, 0x5e, 0x35, 0x66, 0x69, 0x72, 0x73,
    0x74, 0x20, 0x63, 0x68, 0x75, 0x6e, 0x6b, 0x0a,
};

// Frame 17: B's duplicate ACK for byte 13 carrying one SACK block
// [26, 38) (relative): "nop, nop, TS, nop, nop, sack 1".
constexpr uint8_t tcp_sack_ack[] = {
    0x1f, 0x90, 0xa8, 0xa4, 0x98, 0x61, 0xe0, 0xe7, 0xf7, 0x53, 0x79, 0xe9,
    0xb0, 0x10, 0x00, 0x40, 0x03, 0xa2, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a,
    0x13, 0x8e, 0x5e, 0x9b, 0xb3, 0x6c, 0x6d, 0xcf, 0x01, 0x01, 0x05, 0x0a,
    0xf7, 0x53, 0x79, 0xf6, 0xf7, 0x53, 0x7a, 0x02,
};

// Frame 23: B's D-SACK (RFC 2883) for the same bytes received twice: the
// block lies below the cumulative ACK.
constexpr uint8_t tcp_dsack_ack[] = {
    0x1f, 0x90, 0xa8, 0xa4, 0x98, 0x61, 0xe0, 0xe7, 0xf7, 0x53, 0x7a, 0x02,
    0xb0, 0x10, 0x00, 0x40, 0x02, 0xc0, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a,
    0x13, 0x8e, 0x5e, 0xcd, 0xb3, 0x6c, 0x6e, 0x66, 0x01, 0x01, 0x05, 0x0a,
    0xf7, 0x53, 0x79, 0xf6, 0xf7, 0x53, 0x7a, 0x02,
};

// Frame 26: B answers "ok 41\n".
constexpr uint8_t tcp_data_reply[] = {
    0x1f, 0x90, 0xa8, 0xa4, 0x98, 0x61, 0xe0, 0xe7, 0xf7, 0x53, 0x7a, 0x06,
    0x80, 0x18, 0x00, 0x40, 0x59, 0xf2, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a,
    0x13, 0x8e, 0x5f, 0x32, 0xb3, 0x6c, 0x6e, 0xcb, 0x6f, 0x6b, 0x20, 0x34,
    0x31, 0x0a,
};

// Frame 28: A closes: FIN|ACK.
constexpr uint8_t tcp_fin[] = {
    0xa8, 0xa4, 0x1f, 0x90, 0xf7, 0x53, 0x7a, 0x06, 0x98, 0x61, 0xe0, 0xed,
    0x80, 0x11, 0x00, 0x3f, 0x1a, 0xa4, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a,
    0xb3, 0x6c, 0x6e, 0xcb, 0x13, 0x8e, 0x5f, 0x32,
};

constexpr Ipv4Address ip_a(10, 0, 0, 1);
constexpr Ipv4Address ip_b(10, 0, 0, 2);
constexpr uint16_t port_a = 43172;
constexpr uint16_t port_b = 8080;
constexpr uint32_t isn_a = 0xf75379dc;
constexpr uint32_t isn_b = 0x9861e0e6;

struct Fixture {
    const char* name;
    ByteSpan bytes;
    Ipv4Address src;
    Ipv4Address dst;
};
const Fixture all_fixtures[] = {
    {"syn", tcp_syn, ip_a, ip_b},           {"syn_ack", tcp_syn_ack, ip_b, ip_a},
    {"ack", tcp_ack, ip_a, ip_b},           {"data", tcp_data, ip_a, ip_b},
    {"sack_ack", tcp_sack_ack, ip_b, ip_a}, {"dsack_ack", tcp_dsack_ack, ip_b, ip_a},
    {"data_reply", tcp_data_reply, ip_b, ip_a}, {"fin", tcp_fin, ip_a, ip_b},
};

std::vector<uint8_t> copy_of(ByteSpan b) {
    return {b.begin(), b.end()};
}

ByteSpan bytes_of(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

bool same_bytes(ByteSpan a, ByteSpan b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

void fix_checksum(std::vector<uint8_t>& s, Ipv4Address src, Ipv4Address dst) {
    write_u16(s, TcpRepr::CHECKSUM.start, 0);
    const uint32_t pseudo =
        checksum::pseudo_header(src, dst, 6, static_cast<uint16_t>(s.size()));
    write_u16(s, TcpRepr::CHECKSUM.start, checksum::finish(checksum::accumulate(s, pseudo)));
}

// tcp_ack's fixed header with other option bytes (a multiple of 4 long),
// the data offset and checksum made to match.
std::vector<uint8_t> ack_with_options(std::initializer_list<uint8_t> options) {
    EXPECT_EQ(options.size() % 4, 0u) << "the data offset counts 32-bit words";
    std::vector<uint8_t> s(TcpRepr::min_header_len + options.size());
    std::copy_n(tcp_ack, TcpRepr::min_header_len, s.begin());
    std::copy(options.begin(), options.end(), s.begin() + TcpRepr::min_header_len);
    s[TcpRepr::DATA_OFF.start] = static_cast<uint8_t>((s.size() / 4) << 4);
    fix_checksum(s, ip_a, ip_b);
    return s;
}

std::vector<uint8_t> emit(const TcpRepr& r, Ipv4Address src, Ipv4Address dst,
                          ByteSpan payload = {}) {
    std::vector<uint8_t> out(r.header_len() + payload.size(), 0xaa);
    r.emit(out, src, dst, payload);
    return out;
}

TcpRepr syn_repr() {
    TcpRepr r;
    r.src_port = port_a;
    r.dst_port = port_b;
    r.seq = SeqNumber(isn_a);
    r.ack = SeqNumber(0);
    r.flags = tcp_flags::SYN;
    r.window = 64240;
    r.options.mss = 1460;
    r.options.sack_permitted = true;
    r.options.timestamp = TcpTimestamp{3010227662u, 0};
    r.options.window_scale = 10;
    return r;
}

TcpRepr syn_ack_repr() {
    TcpRepr r;
    r.src_port = port_b;
    r.dst_port = port_a;
    r.seq = SeqNumber(isn_b);
    r.ack = SeqNumber(isn_a + 1);
    r.flags = tcp_flags::SYN | tcp_flags::ACK;
    r.window = 65160;
    r.options.mss = 1460;
    r.options.sack_permitted = true;
    r.options.timestamp = TcpTimestamp{0x138e5e35u, 3010227662u};
    r.options.window_scale = 10;
    return r;
}

TcpRepr data_repr() {
    TcpRepr r;
    r.src_port = port_a;
    r.dst_port = port_b;
    r.seq = SeqNumber(isn_a + 1);
    r.ack = SeqNumber(isn_b + 1);
    r.flags = tcp_flags::PSH | tcp_flags::ACK;
    r.window = 63;  // << 10 = 64512
    r.options.timestamp = TcpTimestamp{0xb36c6dcfu, 0x138e5e35u};
    return r;
}

TcpRepr sack_ack_repr() {
    TcpRepr r;
    r.src_port = port_b;
    r.dst_port = port_a;
    r.seq = SeqNumber(isn_b + 1);
    r.ack = SeqNumber(isn_a + 13);
    r.flags = tcp_flags::ACK;
    r.window = 64;
    r.options.timestamp = TcpTimestamp{0x138e5e9bu, 0xb36c6dcfu};
    r.options.sack_blocks[0] = SackBlock{SeqNumber(isn_a + 26), SeqNumber(isn_a + 38)};
    r.options.sack_count = 1;
    return r;
}

// ------------------------------------------------------------ deconstruct

TEST(WireTcpTest, DeconstructsLinuxSyn) {
    const auto s = parse_tcp(tcp_syn, ip_a, ip_b);
    ASSERT_TRUE(s.has_value());
    const TcpRepr& r = s->repr;
    EXPECT_EQ(r.src_port, port_a);
    EXPECT_EQ(r.dst_port, port_b);
    EXPECT_EQ(r.seq, SeqNumber(isn_a));
    EXPECT_EQ(r.ack, SeqNumber(0));
    EXPECT_EQ(r.flags, tcp_flags::SYN);
    EXPECT_TRUE(r.has(tcp_flags::SYN));
    EXPECT_FALSE(r.has(tcp_flags::ACK));
    EXPECT_EQ(r.window, 64240);
    EXPECT_EQ(r.urgent_ptr, 0);
    EXPECT_EQ(r.options.mss, 1460);
    EXPECT_TRUE(r.options.sack_permitted);
    ASSERT_TRUE(r.options.timestamp.has_value());
    EXPECT_EQ(r.options.timestamp->value, 3010227662u);
    EXPECT_EQ(r.options.timestamp->echo, 0u);
    EXPECT_EQ(r.options.window_scale, 10);
    EXPECT_EQ(r.options.sack_count, 0);
    EXPECT_TRUE(s->payload.empty());
    EXPECT_EQ(r.header_len(), 40u);
    EXPECT_EQ(r.segment_len(s->payload.size()), 1u);
    EXPECT_EQ(r, syn_repr());
}

TEST(WireTcpTest, DeconstructsLinuxSynAck) {
    const auto s = parse_tcp(tcp_syn_ack, ip_b, ip_a);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->repr, syn_ack_repr());
    EXPECT_TRUE(s->payload.empty());
}

TEST(WireTcpTest, DeconstructsDataWithTimestamps) {
    const auto s = parse_tcp(tcp_data, ip_a, ip_b);
    ASSERT_TRUE(s.has_value());
    const TcpRepr& r = s->repr;
    EXPECT_EQ(r.seq, SeqNumber(isn_a + 1));
    EXPECT_EQ(r.ack, SeqNumber(isn_b + 1));
    EXPECT_EQ(r.flags, tcp_flags::PSH | tcp_flags::ACK);
    EXPECT_EQ(r.window, 63);
    EXPECT_FALSE(r.options.mss.has_value());
    EXPECT_FALSE(r.options.window_scale.has_value());
    EXPECT_FALSE(r.options.sack_permitted);
    EXPECT_EQ(r.options.timestamp, (TcpTimestamp{0xb36c6dcfu, 0x138e5e35u}));
    EXPECT_EQ(r.options.sack_count, 0);
    EXPECT_EQ(r.header_len(), 32u);
    EXPECT_TRUE(same_bytes(s->payload, bytes_of("first chunk\n")));
    EXPECT_EQ(s->payload.data(), tcp_data + 32);
    EXPECT_EQ(r.segment_len(s->payload.size()), 12u);
    EXPECT_EQ(r, data_repr());
}

TEST(WireTcpTest, DeconstructsSackAck) {
    const auto s = parse_tcp(tcp_sack_ack, ip_b, ip_a);
    ASSERT_TRUE(s.has_value());
    const TcpRepr& r = s->repr;
    EXPECT_EQ(r.ack, SeqNumber(isn_a + 13));
    EXPECT_EQ(r.flags, tcp_flags::ACK);
    EXPECT_EQ(r.options.timestamp, (TcpTimestamp{0x138e5e9bu, 0xb36c6dcfu}));
    ASSERT_EQ(r.options.sack_count, 1);
    EXPECT_EQ(r.options.sack_blocks[0].left, SeqNumber(isn_a + 26));
    EXPECT_EQ(r.options.sack_blocks[0].right, SeqNumber(isn_a + 38));
    EXPECT_EQ(r.header_len(), 44u);
    EXPECT_TRUE(s->payload.empty());
    EXPECT_EQ(r, sack_ack_repr());

    // The D-SACK: the same block, now below the cumulative ACK.
    const auto d = parse_tcp(tcp_dsack_ack, ip_b, ip_a);
    ASSERT_TRUE(d.has_value());
    EXPECT_EQ(d->repr.ack, SeqNumber(isn_a + 38));
    ASSERT_EQ(d->repr.options.sack_count, 1);
    EXPECT_EQ(d->repr.options.sack_blocks[0], r.options.sack_blocks[0]);
    EXPECT_TRUE(d->repr.options.sack_blocks[0].right <= d->repr.ack);
}

TEST(WireTcpTest, DeconstructsFin) {
    const auto s = parse_tcp(tcp_fin, ip_a, ip_b);
    ASSERT_TRUE(s.has_value());
    EXPECT_EQ(s->repr.flags, tcp_flags::FIN | tcp_flags::ACK);
    EXPECT_EQ(s->repr.seq, SeqNumber(isn_a + 42));
    EXPECT_EQ(s->repr.segment_len(0), 1u);
}

// -------------------------------------------------------------- construct

TEST(WireTcpTest, ConstructsTheCapturedSegments) {
    EXPECT_EQ(emit(syn_repr(), ip_a, ip_b), copy_of(tcp_syn));
    EXPECT_EQ(emit(syn_ack_repr(), ip_b, ip_a), copy_of(tcp_syn_ack));
    EXPECT_EQ(emit(data_repr(), ip_a, ip_b, bytes_of("first chunk\n")), copy_of(tcp_data));
    EXPECT_EQ(emit(sack_ack_repr(), ip_b, ip_a), copy_of(tcp_sack_ack));
}

TEST(WireTcpTest, RoundTripsEveryCapturedSegment) {
    for (const Fixture& f : all_fixtures) {
        const auto s = parse_tcp(f.bytes, f.src, f.dst);
        ASSERT_TRUE(s.has_value()) << f.name;
        EXPECT_EQ(s->repr.header_len() + s->payload.size(), f.bytes.size()) << f.name;
        EXPECT_EQ(emit(s->repr, f.src, f.dst, s->payload), copy_of(f.bytes)) << f.name;
    }
}

TEST(WireTcpTest, EmitsPayloadAlreadyInPlace) {
    // The payload written by the caller; the header still garbage.
    std::vector<uint8_t> buf = copy_of(tcp_data);
    std::fill_n(buf.begin(), 32, 0xaa);
    data_repr().emit(buf, ip_a, ip_b, ByteSpan(buf).subspan(32));
    EXPECT_EQ(buf, copy_of(tcp_data));
}

// ----------------------------------------------------------------- refuse

TEST(WireTcpTest, RefusesEveryTruncation) {
    for (const Fixture& f : all_fixtures) {
        const size_t hlen = static_cast<size_t>(f.bytes[TcpRepr::DATA_OFF.start] >> 4) * 4;
        for (size_t len = 0; len < f.bytes.size(); ++len) {
            // Own heap block per length: ASan catches a read past the end.
            const std::vector<uint8_t> prefix(f.bytes.begin(), f.bytes.begin() + len);
            const auto r = parse_tcp(prefix, f.src, f.dst);
            ASSERT_FALSE(r.has_value()) << f.name << " length " << len;
            // TCP has no length field: past the header only the checksum
            // (over the pseudo-header's length) notices missing data.
            EXPECT_EQ(r.error(), len < hlen ? ParseError::Truncated : ParseError::BadChecksum)
                << f.name << " length " << len;
        }
    }
}

TEST(WireTcpTest, RefusesBadChecksum) {
    for (const Fixture& f : all_fixtures) {
        for (size_t byte = 0; byte < f.bytes.size(); ++byte) {
            std::vector<uint8_t> s = copy_of(f.bytes);
            s[byte] ^= 0x01;  // never touches the data offset nibble
            const auto r = parse_tcp(s, f.src, f.dst);
            ASSERT_FALSE(r.has_value()) << f.name << " byte " << byte;
            EXPECT_EQ(r.error(), ParseError::BadChecksum) << f.name << " byte " << byte;
        }
    }
    // The pseudo-header is covered: wrong address, or an odd extra byte.
    auto r = parse_tcp(tcp_syn, ip_a, Ipv4Address(10, 0, 0, 3));
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), ParseError::BadChecksum);
    std::vector<uint8_t> longer = copy_of(tcp_syn);
    longer.resize(longer.size() + 2, 0);  // zeros do not change the sum, the length does
    r = parse_tcp(longer, ip_a, ip_b);
    ASSERT_FALSE(r.has_value());
    EXPECT_EQ(r.error(), ParseError::BadChecksum);
}

TEST(WireTcpTest, RefusesLyingDataOffset) {
    for (uint8_t doff = 0; doff < 5; ++doff) {
        std::vector<uint8_t> s = copy_of(tcp_data);
        s[TcpRepr::DATA_OFF.start] = static_cast<uint8_t>(doff << 4);
        fix_checksum(s, ip_a, ip_b);
        const auto r = parse_tcp(s, ip_a, ip_b);
        ASSERT_FALSE(r.has_value()) << int{doff};
        EXPECT_EQ(r.error(), ParseError::BadLength) << int{doff};
    }
    // 40 bytes of SYN, header claimed longer.
    for (uint8_t doff = 11; doff < 16; ++doff) {
        std::vector<uint8_t> s = copy_of(tcp_syn);
        s[TcpRepr::DATA_OFF.start] = static_cast<uint8_t>(doff << 4);
        fix_checksum(s, ip_a, ip_b);
        const auto r = parse_tcp(s, ip_a, ip_b);
        ASSERT_FALSE(r.has_value()) << int{doff};
        EXPECT_EQ(r.error(), ParseError::Truncated) << int{doff};
    }
    // A data offset that takes in the payload is legal; what follows the
    // options is then parsed as options (here: "fir" is kind 0x66 len 0x69,
    // running past the header, where parsing stops as in Linux).
    std::vector<uint8_t> s = copy_of(tcp_data);
    s[TcpRepr::DATA_OFF.start] = 9 << 4;
    fix_checksum(s, ip_a, ip_b);
    const auto r = parse_tcp(s, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_TRUE(r->repr.options.timestamp.has_value());
}

// ---------------------------------------------------------------- options

// Linux tcp_parse_options(): the segment is kept, option parsing stops.
TEST(WireTcpOptionsTest, StopsAtOptionsThatCannotBeWalkedKeepingTheSegment) {
    const std::vector<std::vector<uint8_t>> bad{
        ack_with_options({0x02, 0x00, 0x01, 0x01}),  // length 0
        ack_with_options({0x01, 0x1e, 0x01, 0x01}),  // unknown kind, length 1
        ack_with_options({0x01, 0x01, 0x01, 0x02}),  // kind in the last byte, no length
        ack_with_options({0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 0}),  // TS running past
        ack_with_options({0xfe, 0x05, 0x00, 0x00}),  // unknown kind running past
        ack_with_options({0x01, 0x01, 0x05, 0x12, 0, 0, 0, 1, 0, 0, 0, 2}),  // SACK past
    };
    for (size_t i = 0; i < bad.size(); ++i) {
        const auto r = parse_tcp(bad[i], ip_a, ip_b);
        ASSERT_TRUE(r.has_value()) << "case " << i;
        EXPECT_FALSE(r->repr.options.timestamp.has_value()) << "case " << i;
        EXPECT_EQ(r->repr.options.sack_count, 0) << "case " << i;
    }
    // tcp_ack with the TS length grown to 11 (one past the header): the
    // timestamp is not taken, the segment is.
    std::vector<uint8_t> s = copy_of(tcp_ack);
    s[23] = 11;
    fix_checksum(s, ip_a, ip_b);
    const auto r = parse_tcp(s, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_FALSE(r->repr.options.timestamp.has_value());
}

TEST(WireTcpOptionsTest, IgnoresKnownOptionsWithWrongLengths) {
    // Linux tcp_parse_options() ignores these and keeps the segment; so does
    // ustack. The options that follow are still read.
    const std::vector<uint8_t> s = ack_with_options({
        0x02, 0x03, 0x05,                    // MSS, length 3
        0x03, 0x04, 0x07, 0x00,              // WS, length 4
        0x04, 0x03, 0x00,                    // SACK_PERM, length 3
        0x08, 0x06, 0, 0, 0, 1,              // TS, length 6
        0x05, 0x02,                          // SACK with no block
        0x05, 0x0b, 0, 0, 0, 1, 0, 0, 0, 2, 0,  // SACK, length 11: not 2 + 8n
        0x02, 0x04, 0x02, 0x18,              // a good MSS: 536
        0x00, 0x00, 0x00,                    // EOL, padding
    });
    ASSERT_EQ(s.size(), 56u);
    const auto r = parse_tcp(s, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    const TcpOptions& o = r->repr.options;
    EXPECT_EQ(o.mss, 536);
    EXPECT_FALSE(o.window_scale.has_value());
    EXPECT_FALSE(o.sack_permitted);
    EXPECT_FALSE(o.timestamp.has_value());
    EXPECT_EQ(o.sack_count, 0);
}

TEST(WireTcpOptionsTest, SkipsUnknownKindsAndStopsAtEol) {
    const std::vector<uint8_t> s = ack_with_options({
        0x1e, 0x04, 0xaa, 0xbb,              // MPTCP (30), not ours
        0xfd, 0x06, 0xde, 0xad, 0xbe, 0xef,  // RFC 6994 experimental
        0x03, 0x03, 0x0e,                    // WS 14
        0x01,                                // NOP
        0x00,                                // EOL: what follows is padding
        0x02, 0x00, 0xff, 0x01, 0xff,        // garbage after EOL, never read
    });
    const auto r = parse_tcp(s, ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->repr.options.window_scale, 14);
    EXPECT_FALSE(r->repr.options.mss.has_value());
}

TEST(WireTcpOptionsTest, ReadsOneToFourSackBlocks) {
    for (uint8_t n = 1; n <= 4; ++n) {
        std::vector<uint8_t> opts{0x01, 0x01, 0x05, static_cast<uint8_t>(2 + 8 * n)};
        for (uint8_t b = 0; b < n; ++b) {
            // Block b: [1000 * (b+1), 1000 * (b+1) + 100), big-endian.
            const uint32_t left = 1000u * (b + 1);
            for (uint32_t v : {left, left + 100}) {
                opts.push_back(static_cast<uint8_t>(v >> 24));
                opts.push_back(static_cast<uint8_t>(v >> 16));
                opts.push_back(static_cast<uint8_t>(v >> 8));
                opts.push_back(static_cast<uint8_t>(v));
            }
        }
        std::vector<uint8_t> s(TcpRepr::min_header_len + opts.size());
        std::copy_n(tcp_ack, TcpRepr::min_header_len, s.begin());
        std::copy(opts.begin(), opts.end(), s.begin() + TcpRepr::min_header_len);
        s[TcpRepr::DATA_OFF.start] = static_cast<uint8_t>((s.size() / 4) << 4);
        fix_checksum(s, ip_a, ip_b);

        const auto r = parse_tcp(s, ip_a, ip_b);
        ASSERT_TRUE(r.has_value()) << int{n};
        const TcpOptions& o = r->repr.options;
        ASSERT_EQ(o.sack_count, n);
        for (uint8_t b = 0; b < n; ++b) {
            EXPECT_EQ(o.sack_blocks[b].left, SeqNumber(1000u * (b + 1)));
            EXPECT_EQ(o.sack_blocks[b].right, SeqNumber(1000u * (b + 1) + 100));
        }
        // Without timestamps all n blocks fit, in Linux's layout.
        EXPECT_EQ(o.encoded_len(), opts.size());
        EXPECT_EQ(emit(r->repr, ip_a, ip_b), s);
    }
}

TEST(WireTcpOptionsTest, WindowScaleIsReportedAsSent) {
    // RFC 7323 §2.3: the receiver clamps a shift above 14; the wire does not.
    const auto r = parse_tcp(ack_with_options({0x01, 0x03, 0x03, 0x0f}), ip_a, ip_b);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->repr.options.window_scale, 15);
}

TEST(WireTcpOptionsTest, EncodedLengthsAndLinuxLayout) {
    struct Case {
        const char* name;
        TcpOptions options;
        std::vector<uint8_t> bytes;
    };
    TcpOptions none;
    TcpOptions mss;
    mss.mss = 536;
    TcpOptions sack_perm;
    sack_perm.sack_permitted = true;
    TcpOptions ts;
    ts.timestamp = TcpTimestamp{1, 2};
    TcpOptions ws;
    ws.window_scale = 7;
    // A Linux SYN with net.ipv4.tcp_timestamps=0.
    TcpOptions syn_no_ts;
    syn_no_ts.mss = 1460;
    syn_no_ts.sack_permitted = true;
    syn_no_ts.window_scale = 7;
    // A Linux SYN with net.ipv4.tcp_sack=0.
    TcpOptions syn_no_sack;
    syn_no_sack.mss = 1460;
    syn_no_sack.timestamp = TcpTimestamp{1, 0};
    syn_no_sack.window_scale = 7;

    const std::vector<Case> cases{
        {"none", none, {}},
        {"mss", mss, {0x02, 0x04, 0x02, 0x18}},
        {"sack_perm", sack_perm, {0x01, 0x01, 0x04, 0x02}},
        {"ts", ts, {0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 2}},
        {"ws", ws, {0x01, 0x03, 0x03, 0x07}},
        {"syn_no_ts", syn_no_ts,
         {0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x04, 0x02, 0x01, 0x03, 0x03, 0x07}},
        {"syn_no_sack", syn_no_sack,
         {0x02, 0x04, 0x05, 0xb4, 0x01, 0x01, 0x08, 0x0a, 0, 0, 0, 1, 0, 0, 0, 0, 0x01, 0x03,
          0x03, 0x07}},
    };
    for (const Case& c : cases) {
        EXPECT_EQ(c.options.encoded_len(), c.bytes.size()) << c.name;
        TcpRepr r = data_repr();
        r.options = c.options;
        EXPECT_EQ(r.header_len(), TcpRepr::min_header_len + c.bytes.size()) << c.name;
        const std::vector<uint8_t> out = emit(r, ip_a, ip_b);
        EXPECT_EQ(out[TcpRepr::DATA_OFF.start] >> 4, static_cast<int>(out.size() / 4)) << c.name;
        EXPECT_TRUE(std::equal(out.begin() + TcpRepr::min_header_len, out.end(), c.bytes.begin(),
                               c.bytes.end()))
            << c.name;
        const auto back = parse_tcp(out, ip_a, ip_b);
        ASSERT_TRUE(back.has_value()) << c.name;
        EXPECT_EQ(back->repr, r) << c.name;
    }
}

TEST(WireTcpOptionsTest, DropsSackBlocksThatDoNotFit) {
    // With timestamps, 12 + 4 + 3*8 = 40 bytes: a fourth block would not
    // fit; Linux (tcp_established_options()) sends the first three.
    TcpRepr r = sack_ack_repr();
    for (uint8_t b = 0; b < 4; ++b) {
        r.options.sack_blocks[b] =
            SackBlock{SeqNumber(isn_a + 100u * b), SeqNumber(isn_a + 100u * b + 50)};
    }
    r.options.sack_count = 4;
    EXPECT_EQ(r.options.encoded_len(), 40u);
    EXPECT_EQ(r.header_len(), TcpRepr::max_header_len);
    const std::vector<uint8_t> out = emit(r, ip_b, ip_a);
    ASSERT_EQ(out.size(), TcpRepr::max_header_len);
    EXPECT_EQ(out[32 + 3], 2 + 3 * 8);  // SACK length byte after NOP NOP kind
    const auto back = parse_tcp(out, ip_b, ip_a);
    ASSERT_TRUE(back.has_value());
    ASSERT_EQ(back->repr.options.sack_count, 3);
    for (uint8_t b = 0; b < 3; ++b) {
        EXPECT_EQ(back->repr.options.sack_blocks[b], r.options.sack_blocks[b]);
    }

    // Without timestamps all four fit: 4 + 4*8 = 36.
    r.options.timestamp.reset();
    EXPECT_EQ(r.options.encoded_len(), 36u);
    const auto all4 = parse_tcp(emit(r, ip_b, ip_a), ip_b, ip_a);
    ASSERT_TRUE(all4.has_value());
    EXPECT_EQ(all4->repr, r);

    // A Linux SYN's options take 20 bytes; the 20 left hold two blocks
    // (4 + 2*8). No stack sends SACK blocks on a SYN, but the encoder must
    // still never exceed 40 bytes.
    TcpRepr syn = syn_repr();
    syn.options.sack_blocks = r.options.sack_blocks;
    syn.options.sack_count = 4;
    EXPECT_EQ(syn.options.encoded_len(), 40u);
    const auto syn_back = parse_tcp(emit(syn, ip_a, ip_b), ip_a, ip_b);
    ASSERT_TRUE(syn_back.has_value());
    EXPECT_EQ(syn_back->repr.options.sack_count, 2);
}

TEST(WireTcpOptionsTest, ParseEmitIsStableForAnyRepr) {
    TcpRepr r;
    r.src_port = 1;
    r.dst_port = 65535;
    r.seq = SeqNumber(0xffffffffu);
    r.ack = SeqNumber(0x80000000u);
    r.flags = 0xff;  // every flag, CWR and ECE included
    r.window = 0xffff;
    r.urgent_ptr = 0x1234;
    r.options.mss = 0xffff;
    r.options.window_scale = 0;
    r.options.timestamp = TcpTimestamp{0xffffffffu, 0};
    const std::vector<uint8_t> payload(1000, 0x5a);
    const std::vector<uint8_t> out = emit(r, ip_a, ip_b, payload);
    const auto back = parse_tcp(out, ip_a, ip_b);
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(back->repr, r);
    EXPECT_TRUE(same_bytes(back->payload, payload));
    EXPECT_EQ(back->repr.segment_len(payload.size()), 1002u);  // SYN and FIN count
}

TEST(WireTcpOptionsTest, RandomOptionBytesParseOrRefuseAndReEmitStably) {
    // Random option areas with a valid checksum: parse must either refuse
    // (Malformed, nothing else) or give a repr whose emitted form parses
    // back to the same repr. Under ASan this also proves no read strays.
    std::mt19937 rng(9293);
    auto random_option = [&rng]() -> std::vector<uint8_t> {
        auto r8 = [&rng]() { return static_cast<uint8_t>(rng()); };
        switch (rng() % 9) {
            case 0: return {0x01};
            case 1: return {0x00};
            case 2: return {0x02, 0x04, r8(), r8()};
            case 3: return {0x03, 0x03, r8()};
            case 4: return {0x04, 0x02};
            case 5: return {0x08, 0x0a, r8(), r8(), r8(), r8(), r8(), r8(), r8(), r8()};
            case 6: {
                const size_t n = 1 + rng() % 4;
                std::vector<uint8_t> o{0x05, static_cast<uint8_t>(2 + 8 * n)};
                for (size_t i = 0; i < 8 * n; ++i) {
                    o.push_back(r8());
                }
                return o;
            }
            case 7: {
                std::vector<uint8_t> o{0x1e, static_cast<uint8_t>(2 + rng() % 5)};
                o.resize(o[1], 0xee);
                return o;
            }
            default: return {r8(), r8()};  // anything at all
        }
    };
    int accepted = 0;
    for (int iter = 0; iter < 5000; ++iter) {
        std::vector<uint8_t> opts;
        for (size_t count = rng() % 6; count > 0; --count) {
            const std::vector<uint8_t> o = random_option();
            if (opts.size() + o.size() > 40) {
                break;
            }
            opts.insert(opts.end(), o.begin(), o.end());
        }
        while (opts.size() % 4 != 0) {
            opts.push_back(0x01);
        }
        if (!opts.empty() && rng() % 4 == 0) {
            opts[rng() % opts.size()] = static_cast<uint8_t>(rng());  // corrupt one byte
        }
        std::vector<uint8_t> s(TcpRepr::min_header_len + opts.size());
        std::copy_n(tcp_ack, TcpRepr::min_header_len, s.begin());
        std::copy(opts.begin(), opts.end(), s.begin() + TcpRepr::min_header_len);
        s[TcpRepr::DATA_OFF.start] = static_cast<uint8_t>((s.size() / 4) << 4);
        fix_checksum(s, ip_a, ip_b);

        // Exactly sized heap copy, so ASan sees any overread.
        const std::vector<uint8_t> input = s;
        const auto r = parse_tcp(input, ip_a, ip_b);
        if (!r.has_value()) {
            EXPECT_EQ(r.error(), ParseError::Malformed) << "iteration " << iter;
            continue;
        }
        ++accepted;
        EXPECT_LE(r->repr.header_len(), TcpRepr::max_header_len);
        const std::vector<uint8_t> out = emit(r->repr, ip_a, ip_b);
        const auto again = parse_tcp(out, ip_a, ip_b);
        ASSERT_TRUE(again.has_value()) << "iteration " << iter;
        // SACK blocks beyond what fits are dropped on emit; compare the rest.
        TcpRepr want = r->repr;
        const size_t kept = again->repr.options.sack_count;
        EXPECT_LE(kept, want.options.sack_count);
        want.options.sack_count = static_cast<uint8_t>(kept);
        for (size_t b = kept; b < want.options.sack_blocks.size(); ++b) {
            want.options.sack_blocks[b] = again->repr.options.sack_blocks[b];
        }
        EXPECT_EQ(again->repr, want) << "iteration " << iter;
    }
    EXPECT_GT(accepted, 2500);  // the generator mostly builds valid options
}

}  // namespace
}  // namespace ustack::wire
