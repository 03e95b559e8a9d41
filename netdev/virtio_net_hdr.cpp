#include "netdev/virtio_net_hdr.h"

#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"
#include "stack/wire/udp.h"

namespace ustack::netdev {

namespace {

uint16_t read_le16(std::span<const uint8_t> b, size_t off) {
    return static_cast<uint16_t>(b[off] | (b[off + 1] << 8));
}

void write_le16(std::span<uint8_t> b, size_t off, uint16_t v) {
    b[off] = static_cast<uint8_t>(v & 0xff);
    b[off + 1] = static_cast<uint8_t>(v >> 8);
}

}  // namespace

std::optional<VirtioNetHdr> VirtioNetHdr::decode(std::span<const uint8_t> bytes) {
    if (bytes.size() < size) {
        return std::nullopt;
    }
    VirtioNetHdr h;
    h.flags = bytes[0];
    h.gso_type = bytes[1];
    h.hdr_len = read_le16(bytes, 2);
    h.gso_size = read_le16(bytes, 4);
    h.csum_start = read_le16(bytes, 6);
    h.csum_offset = read_le16(bytes, 8);
    return h;
}

void VirtioNetHdr::encode(std::span<uint8_t> out) const {
    out[0] = flags;
    out[1] = gso_type;
    write_le16(out, 2, hdr_len);
    write_le16(out, 4, gso_size);
    write_le16(out, 6, csum_start);
    write_le16(out, 8, csum_offset);
}

bool complete_partial_checksum(std::span<uint8_t> frame, uint16_t csum_start, uint16_t csum_offset) {
    const size_t field = size_t{csum_start} + csum_offset;
    if (csum_start >= frame.size() || field + 2 > frame.size()) {
        return false;
    }
    // The field holds the (uncomplemented) pseudo-header sum: summing over
    // it and the rest gives the full sum; its complement is the checksum.
    const uint16_t sum = wire::checksum::finish(wire::checksum::accumulate(frame.subspan(csum_start)));
    // skb_checksum_help(): "csum_fold(csum) ?: CSUM_MANGLED_0" — a computed
    // zero goes out as all ones (the same for TCP, required for UDP).
    wire::write_u16(frame, field, sum == 0 ? 0xffff : sum);
    return true;
}

bool partial_checksum_is_l4(std::span<const uint8_t> frame, uint16_t csum_start, uint16_t csum_offset) {
    constexpr size_t eth = wire::EthernetRepr::header_len;
    if (frame.size() < eth + wire::Ipv4Repr::header_len ||
        wire::read_u16(frame, 12) != static_cast<uint16_t>(wire::EtherType::Ipv4)) {
        return false;
    }
    const std::span<const uint8_t> ip = frame.subspan(eth);
    const size_t ihl = size_t{static_cast<uint8_t>(ip[0] & 0x0f)} * 4;
    const size_t total = wire::read_u16(ip, wire::Ipv4Repr::LENGTH.start);
    const uint16_t flags_offset = wire::read_u16(ip, wire::Ipv4Repr::FLG_OFF.start);
    if ((ip[0] >> 4) != 4 || ihl < wire::Ipv4Repr::header_len || total < ihl || total > ip.size() ||
        (flags_offset & 0x3fff) != 0 || csum_start != eth + ihl) {
        return false;
    }
    const size_t l4_len = total - ihl;
    switch (ip[wire::Ipv4Repr::PROTOCOL.start]) {
    case static_cast<uint8_t>(wire::IpProtocol::Tcp):
        return csum_offset == wire::TcpRepr::CHECKSUM.start && l4_len >= wire::TcpRepr::min_header_len;
    case static_cast<uint8_t>(wire::IpProtocol::Udp):
        return csum_offset == wire::UdpRepr::CHECKSUM.start && l4_len >= wire::UdpRepr::header_len;
    default:
        return false;
    }
}

RxFrame accept_offloaded(const VirtioNetHdr& header, std::span<uint8_t> frame, DeviceStats& stats) {
    RxFrame out{frame, RxChecksum::none, 0, 0};
    if (header.is_gso()) {
        ++stats.rx_gso_frames;
    }
    if (header.needs_csum()) {
        if (partial_checksum_is_l4(frame, header.csum_start, header.csum_offset)) {
            out.checksum = RxChecksum::partial;
            out.csum_start = header.csum_start;
            out.csum_offset = header.csum_offset;
            ++stats.rx_checksums_trusted;
        } else if (complete_partial_checksum(frame, header.csum_start, header.csum_offset)) {
            ++stats.rx_checksums_completed;
        }
    } else if (header.data_valid()) {
        out.checksum = RxChecksum::unnecessary;
        ++stats.rx_checksums_trusted;
    }
    return out;
}

void complete_rx_checksum(RxFrame& frame) {
    if (frame.checksum == RxChecksum::partial &&
        complete_partial_checksum(frame.bytes, frame.csum_start, frame.csum_offset)) {
        frame.checksum = RxChecksum::unnecessary;  // complete and still vouched for
    }
}

std::optional<Frame> owned_copy(std::optional<RxFrame> lent) {
    if (!lent) {
        return std::nullopt;
    }
    complete_rx_checksum(*lent);
    return Frame(lent->bytes.begin(), lent->bytes.end());
}

}  // namespace ustack::netdev
