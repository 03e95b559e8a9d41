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

struct DeviceStats {
    uint64_t tx_frames = 0;
    uint64_t tx_bytes = 0;
    uint64_t rx_frames = 0;
    uint64_t rx_bytes = 0;
    uint64_t tx_dropped = 0;  // device queue full, oversized frame...
    // Offloads (TAP IFF_VNET_HDR, AF_PACKET PACKET_VNET_HDR): frames written
    // that carried several TCP segments (tx_frames counts the segments),
    // super-frames received (up to 64 KiB, one of rx_frames each), and
    // received frames whose partial checksum we completed.
    uint64_t tx_gso_frames = 0;
    uint64_t rx_gso_frames = 0;
    uint64_t rx_checksums_completed = 0;
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
    // Takes the next received frame that is due at `now`, if any.
    virtual std::optional<Frame> receive(Instant now) = 0;
    // When a frame not yet due will become receivable (delayed delivery in
    // simulation); nullopt when nothing is pending or the device is real.
    virtual std::optional<Instant> next_arrival() const { return std::nullopt; }
    // A file descriptor to poll for readability, or -1.
    virtual int poll_fd() const { return -1; }
    // Largest IP packet the device carries (Ethernet payload), e.g. 1500.
    // A device with receive offload may hand over larger TCP packets (up
    // to 64 KiB: several segments of the peer joined, as GRO/TSO do); the
    // stack takes them whole.
    virtual size_t mtu() const = 0;
    virtual wire::MacAddress mac() const = 0;
    virtual const DeviceStats& stats() const = 0;
};

}  // namespace ustack::netdev
