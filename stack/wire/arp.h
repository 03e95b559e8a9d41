#pragma once
// ARP for Ethernet/IPv4 only (RFC 826): hardware type 1, protocol 0x0800,
// hlen 6, plen 4. Anything else parses as Unsupported.
#include <cstdint>

#include "stack/core/expected.h"
#include "stack/wire/bytes.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::wire {

enum class ArpOperation : uint16_t { Request = 1, Reply = 2 };

struct ArpRepr {
    static constexpr Field HTYPE{0, 2};
    static constexpr Field PTYPE{2, 4};
    static constexpr Field HLEN{4, 5};
    static constexpr Field PLEN{5, 6};
    static constexpr Field OPER{6, 8};
    static constexpr Field SHA{8, 14};
    static constexpr Field SPA{14, 18};
    static constexpr Field THA{18, 24};
    static constexpr Field TPA{24, 28};
    static constexpr size_t buffer_len = 28;

    ArpOperation operation = ArpOperation::Request;
    MacAddress sender_mac;
    Ipv4Address sender_ip;
    MacAddress target_mac;
    Ipv4Address target_ip;

    void emit(MutByteSpan buf) const;  // buf.size() >= buffer_len
    bool operator==(const ArpRepr&) const = default;
};

// Unknown operation codes are Unsupported.
Expected<ArpRepr, ParseError> parse_arp(ByteSpan payload);

}  // namespace ustack::wire
