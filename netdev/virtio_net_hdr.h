#pragma once
// The virtio-net header (struct virtio_net_hdr, include/uapi/linux/
// virtio_net.h) that the tun driver (IFF_VNET_HDR) and AF_PACKET
// (PACKET_VNET_HDR) put in front of every frame once asked to. It carries
// the two offloads a device would do for us: checksum completion
// (NEEDS_CSUM: the L4 checksum field holds only the pseudo-header sum; the
// sum over [csum_start, end) goes at csum_start + csum_offset) and
// segmentation (gso_type/gso_size: one frame of up to 64 KiB stands for
// several MSS-sized TCP segments with the same header).
//
// Byte order: the legacy header is in the host's order (tun and AF_PACKET
// use virtio_legacy_is_little_endian(), i.e. native), which on the hosts
// we run on (x86-64, arm64) is little-endian; we read and write it as
// little-endian explicitly.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "netdev/netdev.h"

namespace ustack::netdev {

struct VirtioNetHdr {
    // VIRTIO_NET_HDR_F_*
    static constexpr uint8_t flag_needs_csum = 1;
    static constexpr uint8_t flag_data_valid = 2;
    // VIRTIO_NET_HDR_GSO_*
    static constexpr uint8_t gso_none = 0;
    static constexpr uint8_t gso_tcpv4 = 1;
    static constexpr uint8_t gso_udp = 3;
    static constexpr uint8_t gso_tcpv6 = 4;
    static constexpr uint8_t gso_ecn = 0x80;
    // sizeof(struct virtio_net_hdr): what TUNSETVNETHDRSZ and AF_PACKET use.
    static constexpr size_t size = 10;

    uint8_t flags = 0;
    uint8_t gso_type = gso_none;
    uint16_t hdr_len = 0;      // Ethernet + IP + TCP header bytes (a hint)
    uint16_t gso_size = 0;     // payload bytes per segment
    uint16_t csum_start = 0;   // from the start of the Ethernet frame
    uint16_t csum_offset = 0;  // of the checksum field within the L4 header

    bool needs_csum() const { return (flags & flag_needs_csum) != 0; }
    bool data_valid() const { return (flags & flag_data_valid) != 0; }
    bool is_gso() const { return gso_type != gso_none; }

    // nullopt when `bytes` is shorter than the header.
    static std::optional<VirtioNetHdr> decode(std::span<const uint8_t> bytes);
    // Writes `size` bytes; `out` must hold them.
    void encode(std::span<uint8_t> out) const;

    bool operator==(const VirtioNetHdr&) const = default;
};

// Completes the partial L4 checksum a NEEDS_CSUM frame carries (what
// skb_checksum_help does): the Internet checksum of frame[csum_start, end),
// starting from the pseudo-header sum already in the field, stored at
// csum_start + csum_offset. False (frame unchanged) when the offsets do not
// fit in the frame.
bool complete_partial_checksum(std::span<uint8_t> frame, uint16_t csum_start, uint16_t csum_offset);

// True when csum_start/csum_offset name the checksum field of the TCP or
// UDP header of an unfragmented IPv4 packet in this Ethernet frame: the
// only partial checksum the stack may take as verified without looking
// (it then reads nothing that the offsets would have misplaced).
bool partial_checksum_is_l4(std::span<const uint8_t> frame, uint16_t csum_start, uint16_t csum_offset);

// Turns a received frame and its header into what the stack takes: an
// ordinary (if large) packet and what the kernel vouches for about its
// L4 checksum (virtio_net_hdr_from_skb() on the kernel side wrote
// NEEDS_CSUM for CHECKSUM_PARTIAL, DATA_VALID for CHECKSUM_UNNECESSARY):
// - NEEDS_CSUM naming the TCP/UDP checksum field: RxChecksum::partial,
//   left partial (the frame never left this machine; summing it would
//   only be checked again by nobody). Any other NEEDS_CSUM: completed here
//   (skb_checksum_help) and `none`, so the stack verifies it as usual.
// - DATA_VALID: RxChecksum::unnecessary.
// - neither: `none`.
// Counts super-frames, completions and trusted checksums in `stats`. A
// super-frame's IPv4 total length already covers all of it (the sender's
// TCP built it whole), so it needs nothing else.
RxFrame accept_offloaded(const VirtioNetHdr& header, std::span<uint8_t> frame, DeviceStats& stats);

}  // namespace ustack::netdev
