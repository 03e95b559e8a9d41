#include "stack/wire/icmpv4.h"

#include <cassert>
#include <cstring>
#include <optional>

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace ustack::wire {

namespace {

// An error message must quote enough of the invoking datagram to find its
// socket: an IPv4 header and the first 8 bytes of its payload (RFC 792
// "Destination Unreachable Message", RFC 1122 §3.2.2). Linux drops shorter
// quotes too: icmp_unreach() pulls an iphdr and refuses ihl < 5;
// icmp_socket_deliver() pulls ihl*4 + 8.
constexpr size_t quoted_transport_len = 8;

// RFC 792: in error messages the 32 bits after the checksum are "unused"
// (RFC 1191 puts the next-hop MTU in their low half).
constexpr Field rest_of_header{4, 8};

bool is_error(IcmpType t) {
    return t == IcmpType::DstUnreachable || t == IcmpType::TimeExceeded;
}

// Why a quoted datagram is unusable, or nullopt when it is usable.
std::optional<ParseError> quote_error(ByteSpan quote) {
    if (quote.size() < Ipv4Repr::header_len + quoted_transport_len) {
        return ParseError::Truncated;
    }
    const uint8_t ver_ihl = quote[Ipv4Repr::VER_IHL.start];
    const size_t ihl_bytes = size_t{ver_ihl & 0x0fu} * 4;
    if ((ver_ihl >> 4) != 4 || ihl_bytes < Ipv4Repr::header_len) {
        return ParseError::Malformed;
    }
    if (quote.size() < ihl_bytes + quoted_transport_len) {
        return ParseError::Truncated;
    }
    return std::nullopt;
}

}  // namespace

void IcmpRepr::emit(MutByteSpan buf) const {
    assert(buf.size() >= buffer_len());
    buf[TYPE.start] = static_cast<uint8_t>(type);
    buf[CODE.start] = code;
    write_u16(buf, CHECKSUM.start, 0);
    switch (type) {
        case IcmpType::EchoRequest:
        case IcmpType::EchoReply:
            write_u16(buf, IDENT.start, ident);
            write_u16(buf, SEQ_NO.start, seq_no);
            break;
        case IcmpType::DstUnreachable:
            // RFC 1191 §4: the low 16 bits of the "unused" word carry the
            // next-hop MTU for "fragmentation needed and DF set".
            write_u32(buf, rest_of_header.start, 0);
            if (code == static_cast<uint8_t>(IcmpUnreachCode::FragNeeded)) {
                write_u16(buf, NEXT_HOP_MTU.start, next_hop_mtu);
            }
            break;
        case IcmpType::TimeExceeded:
            write_u32(buf, rest_of_header.start, 0);
            break;
    }
    if (!data.empty()) {
        // memmove: the caller may have built the data in place already.
        std::memmove(buf.data() + header_len, data.data(), data.size());
    }
    // RFC 792: the checksum covers the whole ICMP message.
    write_u16(buf, CHECKSUM.start, checksum::compute(buf.first(buffer_len())));
}

Expected<IcmpRepr, ParseError> parse_icmpv4(ByteSpan message) {
    if (message.size() < IcmpRepr::header_len) {
        return make_unexpected(ParseError::Truncated);
    }
    // Checksum first (Linux icmp_rcv()): a corrupted type must count as a
    // bad checksum, not as an unsupported type.
    if (!checksum::verify(message)) {
        return make_unexpected(ParseError::BadChecksum);
    }
    IcmpRepr repr;
    repr.code = message[IcmpRepr::CODE.start];
    repr.data = message.subspan(IcmpRepr::header_len);
    switch (message[IcmpRepr::TYPE.start]) {
        case static_cast<uint8_t>(IcmpType::EchoRequest):
            repr.type = IcmpType::EchoRequest;
            break;
        case static_cast<uint8_t>(IcmpType::EchoReply):
            repr.type = IcmpType::EchoReply;
            break;
        case static_cast<uint8_t>(IcmpType::DstUnreachable):
            repr.type = IcmpType::DstUnreachable;
            break;
        case static_cast<uint8_t>(IcmpType::TimeExceeded):
            repr.type = IcmpType::TimeExceeded;
            break;
        default:
            return make_unexpected(ParseError::Unsupported);
    }
    if (is_error(repr.type)) {
        if (const auto why = quote_error(repr.data)) {
            return make_unexpected(*why);
        }
        if (repr.type == IcmpType::DstUnreachable &&
            repr.code == static_cast<uint8_t>(IcmpUnreachCode::FragNeeded)) {
            repr.next_hop_mtu = read_u16(message, IcmpRepr::NEXT_HOP_MTU.start);
        }
    } else {
        repr.ident = read_u16(message, IcmpRepr::IDENT.start);
        repr.seq_no = read_u16(message, IcmpRepr::SEQ_NO.start);
    }
    return repr;
}

}  // namespace ustack::wire
