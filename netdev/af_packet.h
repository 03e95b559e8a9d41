#pragma once
// A kernel interface used through an AF_PACKET socket: the stack sends and
// receives raw Ethernet frames on an existing interface (a veth end, a NIC)
// next to the kernel, under its own MAC address. The kernel keeps the
// interface; the stack is another host on its link. On a NIC this is how a
// user-space stack shares a real network; on a veth pair it is the
// AF_PACKET twin of a TAP.
//
// Receive path: a classic BPF filter lets through only frames for our MAC or
// multicast/broadcast, PACKET_IGNORE_OUTGOING hides our own sends (with a
// fallback on sll_pkttype), PACKET_ADD_MEMBERSHIP(PACKET_MR_UNICAST) puts
// our MAC in the NIC's unicast filter (the kernel turns promiscuity on where
// the driver has no such filter). Frames are read in batches (recvmmsg) into
// an internal queue.
//
// Offloads (PacketOptions::offloads, on by default): PACKET_VNET_HDR puts a
// virtio-net header in front of every frame both ways. Received TCP
// super-frames (GSO from a local veth peer, up to 64 KiB) come whole with
// NEEDS_CSUM, which we complete; sent segments of one flow are joined into
// one GSO frame (GsoCoalescer) that the kernel segments — or a local veth
// peer takes whole. Without offloads, a partial checksum is recognised by
// TP_STATUS_CSUMNOTREADY in the aux data and completed the same way.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netdev/device_error.h"
#include "netdev/gso_coalescer.h"
#include "netdev/netdev.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::netdev {

struct PacketOptions {
    // The stack's IPv4 address: refused (EADDRINUSE) when the kernel side of
    // the same interface already has it.
    std::optional<wire::Ipv4Address> stack_address;
    // PACKET_MR_PROMISC instead of PACKET_MR_UNICAST for our MAC.
    bool promiscuous = false;
    // Frames taken per recvmmsg call.
    size_t batch = 16;
    // The socket's receive buffer (SO_RCVBUFFORCE, else SO_RCVBUF capped
    // by net.core.rmem_max): frames the kernel hands over while the stack
    // is busy wait here; when it is full the kernel drops them (counted in
    // kernel_drops()). The default ~208 KiB holds ~100 full frames, less
    // than one burst of a kernel sender with a large window.
    size_t socket_rcvbuf = 4 << 20;
    // Largest frame read; a longer one (a GSO super-frame from a local veth
    // peer larger than this) is dropped and counted in rx_truncated().
    size_t max_frame_len = 65536 + 64;
    // PACKET_VNET_HDR with GSO both ways (see above). When the kernel
    // refuses it the device works without, as if false.
    bool offloads = true;
};

class PacketDevice final : public NetDev {
public:
    // Errors name the problem: "no such interface 'x'" (ENODEV), "need
    // CAP_NET_RAW ..." (EPERM), "interface x is down: ip link set x up"
    // (ENETDOWN), an address already on the kernel side (EADDRINUSE).
    static DeviceResult<std::unique_ptr<PacketDevice>> open(const std::string& ifname, wire::MacAddress mac,
                                                           PacketOptions options = {});
    ~PacketDevice() override;

    PacketDevice(const PacketDevice&) = delete;
    PacketDevice& operator=(const PacketDevice&) = delete;

    // With offloads a TCP segment may be held to join the next ones; flush()
    // writes it (Stack::poll() calls it at the end of every poll).
    bool send(Instant now, std::span<const uint8_t> frame) override;
    void flush(Instant now) override;
    bool has_pending_tx() const override { return gso_ && !gso_->empty(); }
    // receive() returns a copy with every checksum complete; receive_view()
    // lends the frame in the batch buffer recvmmsg() filled, with a partial
    // checksum left partial.
    std::optional<Frame> receive(Instant now) override;
    std::optional<RxFrame> receive_view(Instant now) override;
    int poll_fd() const override { return fd_; }
    size_t mtu() const override { return mtu_; }
    wire::MacAddress mac() const override { return mac_; }
    const DeviceStats& stats() const override { return stats_; }

    const std::string& name() const { return name_; }
    wire::MacAddress kernel_mac() const { return kernel_mac_; }
    // Frames whose TCP/UDP checksum the kernel had left to "hardware"
    // (TP_STATUS_CSUMNOTREADY: sent by the local kernel through a veth with
    // checksum offload on) and that we completed, as a NIC would have.
    uint64_t checksums_completed() const { return checksums_completed_; }
    // Frames skipped: our own sends, frames for other MACs, VLAN-tagged.
    uint64_t rx_filtered() const { return rx_filtered_; }
    // Frames lost before we saw them whole: longer than max_frame_len, or
    // (offloads) a GSO kind the virtio-net header cannot describe.
    uint64_t rx_truncated() const { return rx_truncated_; }
    // Whether the kernel hides our own sends (PACKET_IGNORE_OUTGOING, 4.20+).
    bool ignores_outgoing() const { return ignore_outgoing_; }
    // Frames the kernel dropped because our socket buffer was full
    // (PACKET_STATISTICS tp_drops, accumulated: the kernel resets its
    // counter on every read).
    uint64_t kernel_drops();
    int last_error() const { return last_error_; }
    // Whether frames carry a virtio-net header (PACKET_VNET_HDR took).
    bool vnet_header() const { return vnet_header_; }

private:
    PacketDevice(int fd, std::string name, wire::MacAddress mac, wire::MacAddress kernel_mac, size_t mtu,
                 const PacketOptions& options, bool ignore_outgoing, bool vnet_header);
    // One send of `header` (may be empty) then `frame`; counts `frames`
    // segments in the stats.
    bool send_out(std::span<const uint8_t> header, std::span<const uint8_t> frame, size_t frames);
    // Reads one batch into rx_queue_ (views of the batch buffers, which the
    // next batch overwrites: called only once the queue is empty); false
    // when nothing was waiting.
    bool fill_queue();

    struct RxBatch;  // recvmmsg buffers, defined in the .cpp

    int fd_;
    std::string name_;
    wire::MacAddress mac_;
    wire::MacAddress kernel_mac_;
    size_t mtu_;
    bool ignore_outgoing_;
    bool vnet_header_;
    std::unique_ptr<GsoCoalescer> gso_;  // set when vnet_header_
    std::unique_ptr<RxBatch> rx_;
    std::deque<RxFrame> rx_queue_;
    DeviceStats stats_;
    uint64_t checksums_completed_ = 0;
    uint64_t rx_filtered_ = 0;
    uint64_t rx_truncated_ = 0;
    uint64_t kernel_drops_ = 0;
    int last_error_ = 0;
};

// Completes the TCP or UDP checksum of an IPv4 frame whose checksum field
// holds only the pseudo-header sum (CHECKSUM_PARTIAL). Returns false when
// the frame is not an unfragmented IPv4 TCP/UDP packet it can fix.
bool complete_l4_checksum(std::span<uint8_t> frame);

}  // namespace ustack::netdev
