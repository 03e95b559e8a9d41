#pragma once
// Device-level TCP segmentation offload, the other way round: the engine
// emits MSS-sized segments; consecutive segments of one flow queued in the
// same poll round are joined into ONE frame of up to 64 KiB with a
// virtio-net header (gso_type TCPV4, gso_size = the first segment's
// payload), which the kernel (tun, AF_PACKET) cuts back into the same
// segments — or, on a local peer, takes whole, as it takes a GRO packet.
// One write per 64 KiB instead of one per 1 514 bytes.
//
// What joins (the inverse of tcp_gso_segment(), net/ipv4/tcp_offload.c,
// which copies one header onto every segment and clears PSH/FIN on all but
// the last): the same Ethernet header, the same IPv4 header but for total
// length, ident and checksum (no fragment, no MF), the same ports, ACK
// number, window, urgent pointer and TCP options byte for byte (so the
// same timestamps), the same flags except that the last segment may add
// PSH or FIN, contiguous sequence numbers, every segment but the last
// exactly gso_size bytes of payload, at most 65 535 bytes of IP packet.
// Never SYN, RST, URG or CWR (the kernel would need SKB_GSO_TCP_ECN), never
// a segment without payload.
//
// The joined frame: the first segment's headers with total length and IP
// checksum rewritten, the last segment's flags, and the TCP checksum field
// holding the pseudo-header sum over the whole TCP length
// (__tcp_v4_send_check for a GSO skb), with VIRTIO_NET_HDR_F_NEEDS_CSUM
// (csum_start = the TCP header, csum_offset = 16): the kernel computes each
// segment's checksum. A batch of one segment goes out unchanged with an
// empty virtio-net header.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "netdev/netdev.h"
#include "netdev/virtio_net_hdr.h"
#include "stack/core/function_ref.h"

namespace ustack::netdev {

class GsoCoalescer {
public:
    // vnet_hdr_len: bytes reserved in front of the frame for the header
    // (10 for tun's default and AF_PACKET). max_ip_len: the largest joined
    // IPv4 packet (65 535: the total-length field).
    explicit GsoCoalescer(size_t vnet_hdr_len = VirtioNetHdr::size, size_t max_ip_len = 65535);

    // Joins `frame` to the pending batch when it continues it (see above).
    // False when there is no batch or the frame does not continue it: the
    // caller then flushes the batch and calls start() or sends the frame
    // on its own.
    bool append(std::span<const uint8_t> frame);
    // Starts a batch with `frame` (the batch must be empty). False when the
    // frame cannot start one (not IPv4 TCP with payload, SYN/RST/URG/CWR,
    // malformed): send it on its own.
    bool start(std::span<const uint8_t> frame);

    bool empty() const { return segments_ == 0; }
    size_t segments() const { return segments_; }
    size_t payload_bytes() const { return payload_bytes_; }

    // The batch as one frame preceded by its virtio-net header (GSO when it
    // holds two segments or more). Valid until clear() or the next start().
    std::span<const uint8_t> finish();
    // What a device with offloads (TAP, AF_PACKET) does with each frame it
    // is asked to send, through `write(vnet_header, frame, segments)`,
    // which puts bytes on the wire and returns false when they did not go:
    // join the frame to the batch; else write the batch and start a new
    // one with the frame; else write the frame alone after the batch (order
    // kept). False when a write failed.
    using Writer = FunctionRef<bool(std::span<const uint8_t>, std::span<const uint8_t>, size_t)>;
    bool send(std::span<const uint8_t> frame, Writer write, DeviceStats& stats);
    // Writes the held batch, if any (NetDev::flush()).
    void flush(Writer write, DeviceStats& stats);

    // The header finish() wrote (for tests).
    VirtioNetHdr header() const { return header_; }
    void clear();

private:
    // Offsets of one frame's headers; nullopt-like via ok=false.
    struct Layout {
        bool ok = false;
        size_t ip_len = 0;       // IPv4 header bytes
        size_t tcp_len = 0;      // TCP header bytes
        size_t packet_len = 0;   // IPv4 total length
        size_t payload_len = 0;  // TCP payload bytes
        uint32_t seq = 0;
        uint8_t flags = 0;
    };
    static Layout parse(std::span<const uint8_t> frame);
    bool same_headers(std::span<const uint8_t> frame, const Layout& layout) const;
    std::span<uint8_t> frame_bytes() { return std::span<uint8_t>(buffer_).subspan(vnet_hdr_len_, frame_len_); }

    size_t vnet_hdr_len_;
    size_t max_ip_len_;
    std::vector<uint8_t> buffer_;  // [vnet header][first frame's headers][payloads...]
    size_t frame_len_ = 0;         // bytes after the vnet header
    Layout first_;
    size_t segments_ = 0;
    size_t payload_bytes_ = 0;
    uint32_t next_seq_ = 0;
    uint8_t last_flags_ = 0;
    bool closed_ = false;  // the last segment ended the batch (PSH, FIN, short)
    VirtioNetHdr header_;
};

}  // namespace ustack::netdev
