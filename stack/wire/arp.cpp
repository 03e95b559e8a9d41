#include "stack/wire/arp.h"

#include <algorithm>
#include <cassert>

namespace ustack::wire {

namespace {

// RFC 826 field values for Ethernet/IPv4 (IANA ARP parameters).
constexpr uint16_t htype_ethernet = 1;
constexpr uint16_t ptype_ipv4 = 0x0800;
constexpr uint8_t hlen_ethernet = 6;
constexpr uint8_t plen_ipv4 = 4;

MacAddress read_mac(ByteSpan b, Field f) {
    MacAddress mac;
    std::copy_n(b.begin() + f.start, f.size(), mac.bytes.begin());
    return mac;
}

void write_mac(MutByteSpan b, Field f, const MacAddress& mac) {
    std::copy(mac.bytes.begin(), mac.bytes.end(), b.begin() + f.start);
}

}  // namespace

void ArpRepr::emit(MutByteSpan buf) const {
    assert(buf.size() >= buffer_len);
    write_u16(buf, HTYPE.start, htype_ethernet);
    write_u16(buf, PTYPE.start, ptype_ipv4);
    buf[HLEN.start] = hlen_ethernet;
    buf[PLEN.start] = plen_ipv4;
    write_u16(buf, OPER.start, static_cast<uint16_t>(operation));
    write_mac(buf, SHA, sender_mac);
    write_u32(buf, SPA.start, sender_ip.to_u32());
    write_mac(buf, THA, target_mac);
    write_u32(buf, TPA.start, target_ip.to_u32());
}

Expected<ArpRepr, ParseError> parse_arp(ByteSpan payload) {
    // The fixed part says how long the addresses are; only then can the
    // rest be located (RFC 826 "Packet format").
    if (payload.size() < ArpRepr::OPER.start) {
        return make_unexpected(ParseError::Truncated);
    }
    if (read_u16(payload, ArpRepr::HTYPE.start) != htype_ethernet ||
        read_u16(payload, ArpRepr::PTYPE.start) != ptype_ipv4 ||
        payload[ArpRepr::HLEN.start] != hlen_ethernet ||
        payload[ArpRepr::PLEN.start] != plen_ipv4) {
        return make_unexpected(ParseError::Unsupported);
    }
    // Longer is fine: Ethernet pads ARP to the 60-byte minimum frame.
    if (payload.size() < ArpRepr::buffer_len) {
        return make_unexpected(ParseError::Truncated);
    }
    const uint16_t oper = read_u16(payload, ArpRepr::OPER.start);
    if (oper != static_cast<uint16_t>(ArpOperation::Request) &&
        oper != static_cast<uint16_t>(ArpOperation::Reply)) {
        return make_unexpected(ParseError::Unsupported);  // RARP, InARP...
    }
    ArpRepr repr;
    repr.operation = static_cast<ArpOperation>(oper);
    repr.sender_mac = read_mac(payload, ArpRepr::SHA);
    repr.sender_ip = Ipv4Address(read_u32(payload, ArpRepr::SPA.start));
    repr.target_mac = read_mac(payload, ArpRepr::THA);
    repr.target_ip = Ipv4Address(read_u32(payload, ArpRepr::TPA.start));
    return repr;
}

}  // namespace ustack::wire
