#include "stack/tcp/tcp_transport.h"

#include "stack/wire/ipv4.h"

namespace ustack::tcp {

TcpTransport::TcpTransport(ip::Ipv4Output& ip, ports::PortManager& ports, TcpConfig config, Random& random)
    : ip_(ip), ports_(ports), engine_(std::move(config), *this, random, &ports_) {}

TcpTransport::~TcpTransport() = default;

void TcpTransport::input(Instant now, const wire::Ipv4Repr& ip, wire::ByteSpan segment, wire::L4Checksum check) {
    // tcp_v4_rcv(): "if (skb->pkt_type != PACKET_HOST) goto discard_it".
    if (ip.dst.is_broadcast() || ip.dst.is_multicast() || ip.src.is_broadcast() || ip.src.is_multicast()) {
        ++counters_.not_unicast;
        return;
    }
    // tcp_v4_rcv(): skb_checksum_init() then tcp_checksum_complete(),
    // both no-ops for a segment the device vouched for.
    auto parsed = wire::parse_tcp(segment, ip.src, ip.dst, check);
    if (!parsed) {
        if (parsed.error() == wire::ParseError::BadChecksum) {
            ++counters_.bad_checksum;
        } else {
            ++counters_.malformed;
        }
        return;
    }
    engine_.input(now, ip.src, ip.dst, parsed->repr, parsed->payload);
}

void TcpTransport::icmp_error(Instant now, const wire::Ipv4Repr& quoted_ip, wire::ByteSpan quoted_payload,
                              int error, uint16_t next_hop_mtu) {
    // RFC 792: the quote holds at least the first 8 bytes of our header:
    // ports and sequence number.
    if (quoted_payload.size() < 8) {
        return;
    }
    IcmpError e;
    e.local = Endpoint{quoted_ip.src, wire::read_u16(quoted_payload, wire::TcpRepr::SRC_PORT.start)};
    e.remote = Endpoint{quoted_ip.dst, wire::read_u16(quoted_payload, wire::TcpRepr::DST_PORT.start)};
    e.seq = wire::SeqNumber(wire::read_u32(quoted_payload, wire::TcpRepr::SEQ_NUM.start));
    e.error = error;
    e.mtu = next_hop_mtu;
    engine_.icmp_error(now, e);
}

void TcpTransport::poll(Instant now) {
    engine_.poll(now);
}

std::optional<Instant> TcpTransport::poll_at() const {
    return engine_.poll_at();
}

void TcpTransport::send_segment(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst,
                                const wire::TcpRepr& repr, wire::ByteSpan payload) {
    ip::Ipv4SendParams params;
    params.src = src;
    params.dst = dst;
    params.protocol = static_cast<uint8_t>(wire::IpProtocol::Tcp);
    params.dont_fragment = true;
    const size_t len = repr.header_len() + payload.size();
    auto sent = ip_.send_ipv4(now, params, len,
                              [&](wire::MutByteSpan buf) { repr.emit(buf, src, dst, payload); });
    if (!sent) {
        // The segment is lost to the wire; retransmission covers it, as a
        // local drop in Linux does.
        ++counters_.send_errors;
    }
}

}  // namespace ustack::tcp
