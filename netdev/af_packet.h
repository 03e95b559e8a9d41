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
// the driver has no such filter).
//
// Receive ring (it replaced recvmmsg() as the way in): frames arrive in a
// memory-mapped PACKET_RX_RING (TPACKET_V2) shared with the kernel, which
// copies each into the next free slot and marks it TP_STATUS_USER; we lend
// the slot to the stack and hand it back (TP_STATUS_KERNEL) at the next
// read. Why: the stack looks for frames after every send, and usually finds
// none; with the ring a look is a load of a status word, not a syscall
// (recvmmsg() finding 0 or 1 frame was ~10 % of the thread's time in a
// request/response benchmark). Slots are sized for the interface's MTU
// at open(); a longer frame (a GSO super-frame of up to 64 KiB, which a
// local veth peer sends with or without our offloads, or any frame after
// the MTU was raised: the slots keep their size) fills its slot only
// partly and is also queued whole on the socket (PACKET_COPY_THRESH,
// TP_STATUS_COPY), where one recvmsg() takes it: the kernel queues these
// copies in ring order, and each is checked against the head its slot
// holds (a copy out of step is skipped, never delivered for another
// frame: rx_copy_mismatches()). Where the ring cannot be set up, recvmmsg()
// batches as before.
//
// The ring and the virtio-net header (offloads): tpacket_rcv() claims the
// slot (rx_owner_map) before it writes the header, and when
// virtio_net_hdr_from_skb() cannot describe the frame (a GSO type it does
// not know) it drops the frame without giving the slot back or moving its
// head: every later frame is dropped too, and the ring is wedged for good
// (net/packet/af_packet.c since rx_owner_map came in 2020, stable kernels
// of then included; still so in 6.18). Before 6.2 that function
// knows no UDP GSO (SKB_GSO_UDP_L4), which any peer using UDP_SEGMENT or
// UDP GRO sends; so before 6.2 (Debian 12: 6.1) offloads use recvmmsg(),
// which drops such a frame alone (EINVAL, counted in rx_truncated()).
// From 6.2 on only rarer kinds remain (SCTP, UFO from a TAP...): a look
// that finds the ring empty checks, at most every 200 ms, whether the
// kernel counted drops since the last check while no frame came and every
// slot was its own, and if so sets the ring up again (rx_ring_rebuilds()).
//
// Errors: the kernel sets a socket error (ENETDOWN) when the interface
// goes down; the fd then polls with EPOLLERR until it is read, which the
// ring never does by itself: take_poll_error() reads it (last_error()).
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
#include <string_view>
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
    // Frames taken per read (one recvmmsg call, or ring slots lent at once).
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
    // Size of the receive ring (rounded down to whole blocks of slots):
    // like socket_rcvbuf, what frames the kernel hands over while the stack
    // is busy can wait in; the default holds ~2500 frames of the MTU the
    // interface has at open() (longer ones, also after a later MTU change,
    // come through the socket queue). 0: no ring, recvmmsg() (the fallback
    // when the kernel refuses the ring, and with a virtio-net header on
    // kernels before 6.2: see above).
    size_t rx_ring_bytes = 4 << 20;
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
    // lends the frame where the kernel put it (its ring slot, or the batch
    // buffer recvmsg() filled), with a partial checksum left partial.
    std::optional<Frame> receive(Instant now) override;
    std::optional<RxFrame> receive_view(Instant now) override;
    int poll_fd() const override { return fd_; }
    // Reads the socket's pending error (SO_ERROR), which clears it, into
    // last_error(). The host calls it when epoll reports EPOLLERR.
    void take_poll_error() override;
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
    // (offloads, recvmmsg only) a GSO kind the virtio-net header cannot
    // describe, or (ring) longer than a slot and no copy of it found on the
    // socket (see rx_copy_mismatches()). With the ring the kernel drops the
    // GSO kind itself and counts it in kernel_drops() (and wedges the ring:
    // see above).
    uint64_t rx_truncated() const { return rx_truncated_; }
    // Whether frames come through the memory-mapped ring (else recvmmsg).
    bool rx_ring() const { return ring_ != nullptr; }
    // Frames longer than a ring slot, read whole from the socket queue.
    uint64_t rx_copied() const { return rx_copied_; }
    // Times a copy read from the socket queue was not the frame whose
    // head its ring slot holds (the queue out of step with the ring):
    // never delivered for it. A later slot's is kept for that slot (this
    // frame is lost: rx_truncated()); a leftover is dropped and the next
    // one read.
    uint64_t rx_copy_mismatches() const { return rx_copy_mismatches_; }
    // Times the ring was set up again after it was found wedged (see
    // above), or by rebuild_rx_ring().
    uint64_t rx_ring_rebuilds() const { return rx_ring_rebuilds_; }
    // Sets the ring up again: unmapped, freed (the kernel drops the copies
    // queued on the socket with it), made and mapped anew, from its first
    // slot. Frames not yet received are lost. When the kernel refuses the
    // new ring, frames come through recvmmsg() from then on (rx_ring()
    // false). The device calls it itself when it finds the ring wedged;
    // public for tests. False when there was no ring or it failed
    // (last_error()).
    bool rebuild_rx_ring();
    // Whether the kernel hides our own sends (PACKET_IGNORE_OUTGOING, 4.20+).
    bool ignores_outgoing() const { return ignore_outgoing_; }
    // Frames the kernel dropped because our socket buffer (or ring) was
    // full, or with a wedged ring (PACKET_STATISTICS tp_drops,
    // accumulated: the kernel resets its counter on every read), and, with
    // the ring, frames longer than a slot whose whole copy found the socket
    // buffer full.
    uint64_t kernel_drops();
    // The last error of a read or send that was not "try again", or the
    // socket error take_poll_error() took (ENETDOWN: the interface went
    // down). 0: none yet.
    int last_error() const { return last_error_; }
    // Whether frames carry a virtio-net header (PACKET_VNET_HDR took).
    bool vnet_header() const { return vnet_header_; }

private:
    struct RxBatch;    // recvmmsg buffers, defined in the .cpp
    struct RxRing;     // the mapped receive ring, defined in the .cpp
    struct FrameMeta;  // what the kernel says about a frame besides its bytes

    PacketDevice(int fd, std::string name, wire::MacAddress mac, wire::MacAddress kernel_mac, size_t mtu,
                 const PacketOptions& options, bool ignore_outgoing, bool vnet_header, std::unique_ptr<RxRing> ring);
    // One send of `header` (may be empty) then `frame`; counts `frames`
    // segments in the stats.
    bool send_out(std::span<const uint8_t> header, std::span<const uint8_t> frame, size_t frames);
    // Reads one batch into rx_queue_ (views of ring slots or batch buffers,
    // which the next batch reuses: called only once the queue is empty);
    // false when nothing was waiting.
    bool fill_queue(Instant now);
    bool fill_from_ring(Instant now);
    bool fill_from_socket();
    // One ring slot the kernel handed over; `seq` counts the slots taken.
    void take_ring_slot(uint8_t* slot, uint32_t status, size_t& copies, uint64_t seq);
    // After a look that found the ring empty: at most every
    // ring_check_interval, whether it is wedged; if so rebuilds it.
    void check_ring_wedged(Instant now);
    // The whole of a frame longer than its slot, from the socket queue into
    // batch buffer `index`: virtio-net header (if any) and frame. `head`:
    // the frame's first bytes as its slot holds them (no virtio-net
    // header), which the copy must start with.
    std::optional<std::span<uint8_t>> read_copy(size_t index, uint32_t frame_len, std::span<const uint8_t> head);
    // The ring_seq_ of the filled slot not taken yet whose frame `copy`
    // (of length `whole`, virtio-net header included) is, if any.
    std::optional<uint64_t> later_slot_for_copy(std::span<const uint8_t> copy, size_t whole) const;
    // PACKET_STATISTICS tp_drops added to kernel_tp_drops_ (read and reset).
    uint64_t read_kernel_tp_drops();
    // Filters one frame (`data`: virtio-net header, if any, then the frame)
    // and queues it for the stack.
    void accept_frame(std::span<uint8_t> data, const FrameMeta& meta);

    int fd_;
    std::string name_;
    wire::MacAddress mac_;
    wire::MacAddress kernel_mac_;
    size_t mtu_;
    bool ignore_outgoing_;
    bool vnet_header_;
    std::unique_ptr<GsoCoalescer> gso_;  // set when vnet_header_
    std::unique_ptr<RxBatch> rx_;
    std::unique_ptr<RxRing> ring_;  // null: recvmmsg
    uint64_t ring_seq_ = 0;         // slots taken from the ring so far
    std::deque<RxFrame> rx_queue_;
    DeviceStats stats_;
    uint64_t checksums_completed_ = 0;
    uint64_t rx_filtered_ = 0;
    uint64_t rx_truncated_ = 0;
    uint64_t rx_copied_ = 0;
    uint64_t rx_copy_mismatches_ = 0;
    uint64_t rx_ring_rebuilds_ = 0;
    uint64_t kernel_tp_drops_ = 0;  // PACKET_STATISTICS, accumulated
    uint64_t copy_drops_ = 0;       // slots whose copy found no room
    // Wedge check (check_ring_wedged): when it last ran, kernel_tp_drops_
    // then, and whether a look took a slot since.
    std::optional<Instant> ring_checked_at_;
    uint64_t ring_check_drops_ = 0;
    bool ring_taken_since_check_ = false;
    int last_error_ = 0;
};

// Whether the receive ring may be used together with PACKET_VNET_HDR on a
// kernel of this release (uname(2) release, "6.1.0-18-amd64"): from 6.2 on
// (see the top of this file); false for a release it cannot parse.
bool ring_with_vnet_header_ok(std::string_view kernel_release);

// Completes the TCP or UDP checksum of an IPv4 frame whose checksum field
// holds only the pseudo-header sum (CHECKSUM_PARTIAL). Returns false when
// the frame is not an unfragmented IPv4 TCP/UDP packet it can fix.
bool complete_l4_checksum(std::span<uint8_t> frame);

}  // namespace ustack::netdev
