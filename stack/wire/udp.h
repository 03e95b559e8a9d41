#pragma once
// UDP (RFC 768) with the IPv4 pseudo-header checksum.
#include <cstdint>

#include "stack/core/expected.h"
#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::wire {

struct UdpRepr {
    static constexpr Field SRC_PORT{0, 2};
    static constexpr Field DST_PORT{2, 4};
    static constexpr Field LENGTH{4, 6};
    static constexpr Field CHECKSUM{6, 8};
    static constexpr size_t header_len = 8;

    uint16_t src_port = 0;
    uint16_t dst_port = 0;

    // Writes header + payload copy into buf (size >= 8 + payload.size()),
    // computing the checksum (a computed 0 is sent as 0xffff).
    void emit(MutByteSpan buf, Ipv4Address src, Ipv4Address dst, ByteSpan payload) const;
    bool operator==(const UdpRepr&) const = default;
};

struct UdpDatagram {
    UdpRepr repr;
    ByteSpan payload;  // trimmed to the Length field
};

// Length field must be >= 8 and <= segment.size(); checksum 0 means "none"
// (accepted), anything else must verify (unless `check` is trusted: the
// device vouched for it).
Expected<UdpDatagram, ParseError> parse_udp(ByteSpan segment, Ipv4Address src, Ipv4Address dst,
                                            L4Checksum check = L4Checksum::verify);

}  // namespace ustack::wire
