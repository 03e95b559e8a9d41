#include "netdev/virtio_net_hdr.h"

#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"

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

void accept_offloaded(const VirtioNetHdr& header, std::span<uint8_t> frame, DeviceStats& stats) {
    if (header.is_gso()) {
        ++stats.rx_gso_frames;
    }
    if (header.needs_csum() && complete_partial_checksum(frame, header.csum_start, header.csum_offset)) {
        ++stats.rx_checksums_completed;
    }
}

}  // namespace ustack::netdev
