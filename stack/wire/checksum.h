#pragma once
// RFC 1071 Internet checksum, with the IPv4 pseudo-header of RFC 9293 §3.1 /
// RFC 768.
#include <cstdint>

#include "stack/wire/bytes.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::wire {

// Whether a TCP/UDP parser must verify the checksum or may take it as
// verified: `trusted` when the device vouched for the packet (Linux:
// skb_csum_unnecessary() — CHECKSUM_UNNECESSARY, or CHECKSUM_PARTIAL from
// a local sender — makes tcp_checksum_complete() and udp's check no-ops).
enum class L4Checksum : uint8_t { verify, trusted };

}  // namespace ustack::wire

namespace ustack::wire::checksum {

// Adds the bytes (as big-endian 16-bit words; an odd last byte is padded
// with zero) to a running 32-bit sum. Sums of several spans may be chained
// only when every span but the last has even length.
uint32_t accumulate(ByteSpan data, uint32_t sum = 0);
// Folds carries and complements: the value to store in a checksum field.
uint16_t finish(uint32_t sum);
// Sum of the IPv4 pseudo-header (src, dst, zero, protocol, length).
uint32_t pseudo_header(Ipv4Address src, Ipv4Address dst, uint8_t protocol, uint16_t length);
// Checksum of data alone (IPv4 header, ICMP message).
inline uint16_t compute(ByteSpan data) { return finish(accumulate(data)); }
// True when data (with its checksum field in place) sums to 0xffff.
inline bool verify(ByteSpan data, uint32_t initial = 0) {
    return finish(accumulate(data, initial)) == 0;
}

}  // namespace ustack::wire::checksum
