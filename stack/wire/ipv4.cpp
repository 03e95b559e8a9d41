#include "stack/wire/ipv4.h"

#include <cassert>

#include "stack/wire/checksum.h"

namespace ustack::wire {

namespace {

// RFC 791 §3.1 "Flags" and "Fragment Offset" share one 16-bit word: bit 0
// reserved, bit 1 DF, bit 2 MF, then the offset in 8-byte units.
constexpr uint16_t flag_dont_fragment = 0x4000;
constexpr uint16_t flag_more_fragments = 0x2000;
constexpr uint16_t fragment_offset_mask = 0x1fff;
constexpr unsigned fragment_offset_unit = 8;

constexpr uint8_t version_4 = 4;

}  // namespace

void Ipv4Repr::emit(MutByteSpan buf) const {
    assert(buf.size() >= header_len);
    assert(payload_len <= 0xffff - header_len);
    // IHL 5: ustack never sends IP options.
    buf[VER_IHL.start] = static_cast<uint8_t>((version_4 << 4) | (header_len / 4));
    buf[DSCP_ECN.start] = tos;
    write_u16(buf, LENGTH.start, static_cast<uint16_t>(header_len + payload_len));
    write_u16(buf, IDENT.start, ident);
    uint16_t flg_off = static_cast<uint16_t>((fragment_offset / fragment_offset_unit) &
                                             fragment_offset_mask);
    if (dont_fragment) {
        flg_off |= flag_dont_fragment;
    }
    if (more_fragments) {
        flg_off |= flag_more_fragments;
    }
    write_u16(buf, FLG_OFF.start, flg_off);
    buf[TTL.start] = ttl;
    buf[PROTOCOL.start] = protocol;
    write_u16(buf, CHECKSUM.start, 0);
    write_u32(buf, SRC_ADDR.start, src.to_u32());
    write_u32(buf, DST_ADDR.start, dst.to_u32());
    // RFC 791 §3.1 "Header Checksum": over the header only, the field
    // itself taken as zero.
    write_u16(buf, CHECKSUM.start, checksum::compute(buf.first(header_len)));
}

Expected<Ipv4Packet, ParseError> parse_ipv4(ByteSpan packet) {
    // The checks of Linux ip_rcv_core(), in its order.
    if (packet.size() < Ipv4Repr::header_len) {
        return make_unexpected(ParseError::Truncated);
    }
    const uint8_t ver_ihl = packet[Ipv4Repr::VER_IHL.start];
    if ((ver_ihl >> 4) != version_4) {
        return make_unexpected(ParseError::BadVersion);
    }
    const size_t header_len = size_t{ver_ihl & 0x0fu} * 4;
    if (header_len < Ipv4Repr::header_len) {
        return make_unexpected(ParseError::BadLength);
    }
    if (header_len > packet.size()) {
        return make_unexpected(ParseError::Truncated);
    }
    const ByteSpan header = packet.first(header_len);
    if (!checksum::verify(header)) {
        return make_unexpected(ParseError::BadChecksum);
    }
    const uint16_t total_len = read_u16(packet, Ipv4Repr::LENGTH.start);
    if (total_len > packet.size()) {
        return make_unexpected(ParseError::Truncated);  // the datagram was cut short
    }
    if (total_len < header_len) {
        return make_unexpected(ParseError::BadLength);
    }

    Ipv4Packet out;
    out.header_len = header_len;
    // Bytes beyond Total Length are link padding (Ethernet's 60-byte
    // minimum), never payload (RFC 791 §3.1 "Total Length").
    out.payload = packet.subspan(header_len, total_len - header_len);
    Ipv4Repr& r = out.repr;
    r.src = Ipv4Address(read_u32(packet, Ipv4Repr::SRC_ADDR.start));
    r.dst = Ipv4Address(read_u32(packet, Ipv4Repr::DST_ADDR.start));
    r.protocol = packet[Ipv4Repr::PROTOCOL.start];
    r.payload_len = static_cast<uint16_t>(total_len - header_len);
    r.ttl = packet[Ipv4Repr::TTL.start];
    r.tos = packet[Ipv4Repr::DSCP_ECN.start];
    r.ident = read_u16(packet, Ipv4Repr::IDENT.start);
    const uint16_t flg_off = read_u16(packet, Ipv4Repr::FLG_OFF.start);
    // The reserved flag is ignored, as Linux does.
    r.dont_fragment = (flg_off & flag_dont_fragment) != 0;
    r.more_fragments = (flg_off & flag_more_fragments) != 0;
    r.fragment_offset =
        static_cast<uint16_t>((flg_off & fragment_offset_mask) * fragment_offset_unit);
    // Options (header_len > 20) are skipped, never interpreted.
    return out;
}

}  // namespace ustack::wire
