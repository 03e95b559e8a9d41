#pragma once
// The device interface the stack talks to: frames in, frames out. Real
// devices (TAP, AF_PACKET) ignore `now`; the in-memory pair and the fault
// injector use it to deliver delayed frames in simulated time.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "stack/core/time.h"
#include "stack/wire/ethernet.h"

namespace ustack::netdev {

using Frame = std::vector<uint8_t>;

// What the device vouches for about a received frame's TCP/UDP checksum:
// Linux's skb->ip_summed on receive (include/linux/skbuff.h).
enum class RxChecksum : uint8_t {
    // CHECKSUM_NONE: nothing known; the stack verifies it (and drops and
    // counts a bad one). Every frame of the in-memory pair, and every frame
    // that came without a virtio-net header.
    none,
    // CHECKSUM_UNNECESSARY (VIRTIO_NET_HDR_F_DATA_VALID): the checksum was
    // verified below us; the stack skips verifying it.
    unnecessary,
    // CHECKSUM_PARTIAL (VIRTIO_NET_HDR_F_NEEDS_CSUM): the frame never left
    // this machine (the local kernel built it and left the checksum to
    // "hardware"), so its data cannot be corrupt; the stack skips verifying
    // it, as skb_csum_unnecessary() does. The checksum field holds only the
    // pseudo-header sum: complete_rx_checksum() makes it a real one for
    // whoever needs it (a pcap), nothing in the stack reads it.
    partial,
};

// A received frame lent by the device (NetDev::receive_view): the bytes
// stay valid until the next receive()/receive_view() call on that device.
// Writable: completing a partial checksum (or an in-place parser) may
// change them.
struct RxFrame {
    std::span<uint8_t> bytes;
    RxChecksum checksum = RxChecksum::none;
    // partial: the sum covers bytes[csum_start, end) and goes at
    // csum_start + csum_offset (virtio_net_hdr's fields, checked by the
    // device to be the TCP/UDP checksum field of an unfragmented IPv4
    // packet, so the stack may trust it).
    uint16_t csum_start = 0;
    uint16_t csum_offset = 0;
};

struct DeviceStats {
    uint64_t tx_frames = 0;
    uint64_t tx_bytes = 0;
    uint64_t rx_frames = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_dropped = 0;  // device queue full, oversized frame...
    // Offloads (TAP IFF_VNET_HDR, AF_PACKET PACKET_VNET_HDR): frames written
    // that carried several TCP segments (tx_frames counts the segments),
    // super-frames received (up to 64 KiB, one of rx_frames each),
    // received frames whose partial checksum we completed (summing the
    // whole frame), and received frames whose checksum the kernel vouched
    // for (NEEDS_CSUM or DATA_VALID) and which went to the stack with that
    // flag instead (RxChecksum partial or unnecessary: never summed).
    uint64_t tx_gso_frames = 0;
    uint64_t rx_gso_frames = 0;
    uint64_t rx_checksums_completed = 0;
    uint64_t rx_checksums_trusted = 0;
};

class NetDev {
public:
    virtual ~NetDev() = default;

    // Queues one Ethernet frame (no FCS) for transmission. Returns false when
    // the device dropped it (counted in stats().tx_dropped). A device with
    // segmentation offload may hold a TCP segment back to join it with the
    // next ones: flush() writes what is held.
    virtual bool send(Instant now, std::span<const uint8_t> frame) = 0;
    // Writes every frame send() held back. The stack calls it at the end of
    // each poll(); whoever sends outside poll() must call it too (a frame
    // left held would never leave).
    virtual void flush(Instant) {}
    // True while send() holds frames that flush() has not written yet.
    virtual bool has_pending_tx() const { return false; }
    // Takes the next received frame that is due at `now`, if any, as a
    // frame whose checksums are all real (a partial one completed).
    virtual std::optional<Frame> receive(Instant now) = 0;
    // The same frame lent instead of copied, with what the device knows of
    // its L4 checksum (a partial one left partial). Stack::poll() uses
    // this. The default lends what receive() returned (checksum: none);
    // TAP and AF_PACKET override it to skip a copy and the checksum work.
    // A wrapper must forward it or leave the default (never both halves).
    virtual std::optional<RxFrame> receive_view(Instant now) {
        std::optional<Frame> frame = receive(now);
        if (!frame) {
            return std::nullopt;
        }
        lent_rx_frame_ = std::move(*frame);
        return RxFrame{std::span<uint8_t>(lent_rx_frame_), RxChecksum::none, 0, 0};
    }
    // When a frame not yet due will become receivable (delayed delivery in
    // simulation); nullopt when nothing is pending or the device is real.
    virtual std::optional<Instant> next_arrival() const { return std::nullopt; }
    // A file descriptor to poll for readability, or -1.
    virtual int poll_fd() const { return -1; }
    // Whoever polls poll_fd() calls this when the poll reports an error
    // condition (EPOLLERR / POLLERR), before reading frames: the device
    // takes (reads and so clears) what is pending, or a level-triggered
    // poll would report the fd again at once, forever. An AF_PACKET
    // socket gets one (ENETDOWN) when its interface goes down, and only a
    // read clears it; a device that reads frames without a syscall (a
    // memory-mapped ring) would never read it. Default: nothing. A wrapper
    // forwards it.
    virtual void take_poll_error() {}
    // Largest IP packet the device carries (Ethernet payload), e.g. 1500.
    // A device with receive offload may hand over larger TCP packets (up
    // to 64 KiB: several segments of the peer joined, as GRO/TSO do); the
    // stack takes them whole.
    virtual size_t mtu() const = 0;
    virtual wire::MacAddress mac() const = 0;
    virtual const DeviceStats& stats() const = 0;

private:
    Frame lent_rx_frame_;  // the default receive_view()'s frame
};

// Turns a lent frame's partial checksum into the real one (what
// skb_checksum_help() does), in place; then the frame is `none`-safe.
// Does nothing to other frames. Defined in virtio_net_hdr.cpp.
void complete_rx_checksum(RxFrame& frame);
// receive() of a device that lends frames: the lent frame with its
// checksum completed, copied out (the caller keeps it past the next read).
std::optional<Frame> owned_copy(std::optional<RxFrame> lent);

}  // namespace ustack::netdev
