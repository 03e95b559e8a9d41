#pragma once
// IPv4 header (RFC 791). Options are skipped (never interpreted): the
// payload starts at IHL*4. The payload is trimmed to Total Length, so
// Ethernet padding never reaches upper layers.
#include <cstdint>

#include "stack/core/expected.h"
#include "stack/wire/bytes.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::wire {

enum class IpProtocol : uint8_t { Icmp = 1, Tcp = 6, Udp = 17 };

struct Ipv4Repr {
    static constexpr Field VER_IHL{0, 1};
    static constexpr Field DSCP_ECN{1, 2};
    static constexpr Field LENGTH{2, 4};
    static constexpr Field IDENT{4, 6};
    static constexpr Field FLG_OFF{6, 8};
    static constexpr Field TTL{8, 9};
    static constexpr Field PROTOCOL{9, 10};
    static constexpr Field CHECKSUM{10, 12};
    static constexpr Field SRC_ADDR{12, 16};
    static constexpr Field DST_ADDR{16, 20};
    static constexpr size_t header_len = 20;  // what we emit: never options

    Ipv4Address src;
    Ipv4Address dst;
    uint8_t protocol = 0;  // raw, see IpProtocol
    uint16_t payload_len = 0;
    uint8_t ttl = 64;
    uint8_t tos = 0;  // DSCP + ECN byte
    uint16_t ident = 0;
    bool dont_fragment = false;
    bool more_fragments = false;
    uint16_t fragment_offset = 0;  // in bytes (a multiple of 8)

    // Writes a 20-byte header with a computed checksum.
    void emit(MutByteSpan buf) const;
    bool is_fragment() const { return more_fragments || fragment_offset != 0; }
    bool operator==(const Ipv4Repr&) const = default;
};

struct Ipv4Packet {
    Ipv4Repr repr;
    size_t header_len = 0;  // IHL*4, options included
    ByteSpan payload;       // exactly payload_len bytes
};

// Checks version, IHL >= 5, Total Length >= IHL*4 and <= buffer, and the
// header checksum (BadChecksum). Returns the header and its payload.
Expected<Ipv4Packet, ParseError> parse_ipv4(ByteSpan packet);

}  // namespace ustack::wire
