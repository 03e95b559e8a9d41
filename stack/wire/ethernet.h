#pragma once
// Ethernet II (IEEE 802.3 with EtherType >= 0x0600). No 802.1Q tags: a
// tagged frame parses with ethertype 0x8100 and is dropped as unknown.
#include <array>
#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "stack/core/expected.h"
#include "stack/wire/bytes.h"

namespace ustack::wire {

struct MacAddress {
    std::array<uint8_t, 6> bytes{};

    static constexpr MacAddress broadcast() { return {{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}; }
    // "aa:bb:cc:dd:ee:ff"; nullopt when malformed.
    static std::optional<MacAddress> parse(std::string_view text);
    constexpr bool is_broadcast() const { return *this == broadcast(); }
    constexpr bool is_multicast() const { return (bytes[0] & 0x01) != 0; }
    constexpr bool is_unicast() const { return !is_multicast(); }
    constexpr bool is_zero() const { return *this == MacAddress{}; }
    std::string to_string() const;
    constexpr auto operator<=>(const MacAddress&) const = default;
};

enum class EtherType : uint16_t {
    Ipv4 = 0x0800,
    Arp = 0x0806,
    Ipv6 = 0x86dd,
};

struct EthernetRepr {
    static constexpr Field DST{0, 6};
    static constexpr Field SRC{6, 12};
    static constexpr Field ETHERTYPE{12, 14};
    static constexpr size_t header_len = 14;

    MacAddress dst;
    MacAddress src;
    uint16_t ethertype = 0;  // raw: unknown values must survive parsing to be counted

    // Writes the 14-byte header at the start of buf (buf.size() >= header_len).
    void emit(MutByteSpan buf) const;
};

struct EthernetFrame {
    EthernetRepr repr;
    ByteSpan payload;  // everything after the header (may include padding)
};

Expected<EthernetFrame, ParseError> parse_ethernet(ByteSpan frame);

}  // namespace ustack::wire
