#include "stack/wire/udp.h"

#include <cassert>
#include <cstring>

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace ustack::wire {

namespace {

constexpr uint8_t protocol_udp = static_cast<uint8_t>(IpProtocol::Udp);
// RFC 768 "Fields": an all-zero checksum field means the sender computed
// none; a computed zero is therefore sent as all ones.
constexpr uint16_t checksum_none = 0;
constexpr uint16_t checksum_zero_sent_as = 0xffff;

}  // namespace

void UdpRepr::emit(MutByteSpan buf, Ipv4Address src, Ipv4Address dst, ByteSpan payload) const {
    assert(payload.size() <= 0xffff - header_len);
    assert(buf.size() >= header_len + payload.size());
    const auto length = static_cast<uint16_t>(header_len + payload.size());
    write_u16(buf, SRC_PORT.start, src_port);
    write_u16(buf, DST_PORT.start, dst_port);
    write_u16(buf, LENGTH.start, length);
    write_u16(buf, CHECKSUM.start, 0);
    if (!payload.empty()) {
        // memmove: the caller may have built the payload in place already.
        std::memmove(buf.data() + header_len, payload.data(), payload.size());
    }
    const uint32_t pseudo = checksum::pseudo_header(src, dst, protocol_udp, length);
    uint16_t sum = checksum::finish(checksum::accumulate(buf.first(length), pseudo));
    if (sum == checksum_none) {
        sum = checksum_zero_sent_as;
    }
    write_u16(buf, CHECKSUM.start, sum);
}

Expected<UdpDatagram, ParseError> parse_udp(ByteSpan segment, Ipv4Address src, Ipv4Address dst, L4Checksum check) {
    if (segment.size() < UdpRepr::header_len) {
        return make_unexpected(ParseError::Truncated);
    }
    // Linux __udp4_lib_rcv(): ulen < sizeof(udphdr) or ulen > skb->len is
    // a short packet; a shorter ulen trims the datagram.
    const uint16_t length = read_u16(segment, UdpRepr::LENGTH.start);
    if (length < UdpRepr::header_len) {
        return make_unexpected(ParseError::BadLength);
    }
    if (length > segment.size()) {
        return make_unexpected(ParseError::Truncated);
    }
    const ByteSpan datagram = segment.first(length);
    if (check == L4Checksum::verify && read_u16(segment, UdpRepr::CHECKSUM.start) != checksum_none) {
        const uint32_t pseudo = checksum::pseudo_header(src, dst, protocol_udp, length);
        if (!checksum::verify(datagram, pseudo)) {
            return make_unexpected(ParseError::BadChecksum);
        }
    }
    UdpDatagram out;
    out.repr.src_port = read_u16(segment, UdpRepr::SRC_PORT.start);
    out.repr.dst_port = read_u16(segment, UdpRepr::DST_PORT.start);
    out.payload = datagram.subspan(UdpRepr::header_len);
    return out;
}

}  // namespace ustack::wire
