#pragma once
// TCP header and options (RFC 9293 §3.1, RFC 7323 window scale and
// timestamps, RFC 2018 SACK). Unknown options are skipped by their length;
// an option whose length runs past the header is Malformed.
#include <algorithm>
#include <array>
#include <cstdint>
#include <optional>

#include "stack/core/expected.h"
#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ipv4_address.h"
#include "stack/wire/seq.h"

namespace ustack::wire {

namespace tcp_flags {
inline constexpr uint8_t FIN = 0x01;
inline constexpr uint8_t SYN = 0x02;
inline constexpr uint8_t RST = 0x04;
inline constexpr uint8_t PSH = 0x08;
inline constexpr uint8_t ACK = 0x10;
inline constexpr uint8_t URG = 0x20;
inline constexpr uint8_t ECE = 0x40;
inline constexpr uint8_t CWR = 0x80;
}  // namespace tcp_flags

struct SackBlock {
    SeqNumber left;   // first sequence number of the block
    SeqNumber right;  // sequence number just after the block
    bool operator==(const SackBlock&) const = default;
};

struct TcpTimestamp {
    uint32_t value = 0;  // TSval
    uint32_t echo = 0;   // TSecr
    bool operator==(const TcpTimestamp&) const = default;
};

struct TcpOptions {
    std::optional<uint16_t> mss;
    std::optional<uint8_t> window_scale;  // shift count as sent (clamped to 14 by the receiver, RFC 7323 §2.3)
    bool sack_permitted = false;
    std::optional<TcpTimestamp> timestamp;
    std::array<SackBlock, 4> sack_blocks{};
    uint8_t sack_count = 0;  // 0..4 (3 when timestamps are present, by space)

    // Bytes the options take when emitted, padded to a multiple of 4.
    size_t encoded_len() const;
    // Blocks past sack_count are not part of the value.
    bool operator==(const TcpOptions& o) const {
        return mss == o.mss && window_scale == o.window_scale && sack_permitted == o.sack_permitted &&
               timestamp == o.timestamp && sack_count == o.sack_count &&
               std::equal(sack_blocks.begin(), sack_blocks.begin() + sack_count, o.sack_blocks.begin());
    }
};

struct TcpRepr {
    static constexpr Field SRC_PORT{0, 2};
    static constexpr Field DST_PORT{2, 4};
    static constexpr Field SEQ_NUM{4, 8};
    static constexpr Field ACK_NUM{8, 12};
    static constexpr Field DATA_OFF{12, 13};
    static constexpr Field FLAGS{13, 14};
    static constexpr Field WIN_SIZE{14, 16};
    static constexpr Field CHECKSUM{16, 18};
    static constexpr Field URGENT{18, 20};
    static constexpr size_t min_header_len = 20;
    static constexpr size_t max_header_len = 60;

    uint16_t src_port = 0;
    uint16_t dst_port = 0;
    SeqNumber seq;
    SeqNumber ack;  // meaningful when flags has ACK
    uint8_t flags = 0;
    uint16_t window = 0;  // raw field, unscaled
    uint16_t urgent_ptr = 0;
    TcpOptions options;

    bool has(uint8_t flag) const { return (flags & flag) != 0; }
    size_t header_len() const { return min_header_len + options.encoded_len(); }
    // Sequence space a segment occupies: payload + SYN + FIN.
    uint32_t segment_len(size_t payload_len) const {
        return static_cast<uint32_t>(payload_len) + (has(tcp_flags::SYN) ? 1 : 0) +
               (has(tcp_flags::FIN) ? 1 : 0);
    }
    // Writes header + options + a copy of payload into buf (size >=
    // header_len() + payload.size()) with the pseudo-header checksum.
    void emit(MutByteSpan buf, Ipv4Address src, Ipv4Address dst, ByteSpan payload) const;
    bool operator==(const TcpRepr&) const = default;
};

struct TcpSegment {
    TcpRepr repr;
    ByteSpan payload;
};

// Checks data offset (>= 5, within the buffer), the checksum over the
// pseudo-header (unless `check` is trusted: the device vouched for it),
// and the options' lengths.
Expected<TcpSegment, ParseError> parse_tcp(ByteSpan segment, Ipv4Address src, Ipv4Address dst,
                                           L4Checksum check = L4Checksum::verify);

}  // namespace ustack::wire
