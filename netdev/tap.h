#pragma once
// A Linux TAP device: the kernel sees an Ethernet interface, the stack reads
// and writes its frames through /dev/net/tun. The stack is one more host on
// that link with its own MAC (never the interface's kernel MAC); the kernel
// side usually carries an address of the same subnet and is the peer.
//
// Offloads (TapOptions::offloads, on by default): IFF_VNET_HDR puts a
// virtio-net header in front of every frame; TUNSETOFFLOAD(TUN_F_CSUM |
// TUN_F_TSO4) lets the kernel hand us TCP super-frames of up to 64 KiB with
// a partial checksum (we complete it: the stack sees ordinary, if large,
// IPv4 packets), and on the way out consecutive segments of one flow are
// joined into one GSO frame (GsoCoalescer) that the kernel cuts up or
// takes whole — one syscall per 64 KiB instead of one per frame. Without
// offloads (refused by the kernel, or turned off) the tun driver hands us
// complete frames with finished checksums, one syscall per frame.
// (Later: IFF_MULTI_QUEUE for one queue per thread.)
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

struct TapOptions {
    // The stack's MAC; a random locally administered one when unset.
    std::optional<wire::MacAddress> mac;
    // Create the TAP when no interface has that name (needs CAP_NET_ADMIN).
    // A TAP we create is not persistent: it disappears when we close it.
    bool create = true;
    // Set the interface up when it is down (needs CAP_NET_ADMIN). When
    // false, a down interface is an error ("ip link set x up").
    bool bring_up = true;
    // The stack's IPv4 address: refused (EADDRINUSE) when the kernel side of
    // the same interface already has it.
    std::optional<wire::Ipv4Address> stack_address;
    // IFF_VNET_HDR with checksum and TSO offloads both ways (see above).
    // When the kernel refuses them the device works without, as if false.
    bool offloads = true;
};

class TapDevice final : public NetDev {
public:
    // Attaches to the TAP `name`, creating it when missing and allowed to.
    // Errors name the problem: "no such interface 'x'" (ENODEV, create
    // off), "need CAP_NET_ADMIN ..." (EPERM), "x is not a TAP device"
    // (EINVAL), "x is in use by another process" (EBUSY), "interface x is
    // down: ip link set x up" (ENETDOWN), an address conflict (EADDRINUSE).
    static DeviceResult<std::unique_ptr<TapDevice>> open(const std::string& name, TapOptions options = {});
    ~TapDevice() override;

    TapDevice(const TapDevice&) = delete;
    TapDevice& operator=(const TapDevice&) = delete;

    // Writes one frame; false (tx_dropped) when it exceeds mtu + 14 bytes or
    // the kernel refuses it (queue full: EAGAIN/ENOBUFS; interface down: EIO).
    // With offloads a TCP segment may be held to join the next ones; flush()
    // writes it (Stack::poll() calls it at the end of every poll).
    bool send(Instant now, std::span<const uint8_t> frame) override;
    void flush(Instant now) override;
    bool has_pending_tx() const override { return gso_ && !gso_->empty(); }
    // Reads one frame, nullopt when none is waiting (EAGAIN). Never blocks.
    // With offloads it may be a TCP super-frame larger than the MTU.
    // receive() returns a copy with every checksum complete; receive_view()
    // lends the read buffer itself, with a partial checksum left partial.
    std::optional<Frame> receive(Instant now) override;
    std::optional<RxFrame> receive_view(Instant now) override;
    int poll_fd() const override { return fd_; }
    size_t mtu() const override { return mtu_; }
    wire::MacAddress mac() const override { return mac_; }
    const DeviceStats& stats() const override { return stats_; }

    const std::string& name() const { return name_; }
    // True when open() created the interface (it goes away with us).
    bool created() const { return created_; }
    // The kernel's MAC on this interface, which the stack must not use.
    wire::MacAddress kernel_mac() const { return kernel_mac_; }
    // The errno of the last failed read/write other than EAGAIN, 0 if none.
    int last_error() const { return last_error_; }
    // Whether frames carry a virtio-net header (IFF_VNET_HDR took), and
    // whether the kernel may send us super-frames (TUNSETOFFLOAD took).
    bool vnet_header() const { return vnet_header_; }
    bool receive_offload() const { return receive_offload_; }

private:
    TapDevice(int fd, std::string name, wire::MacAddress mac, wire::MacAddress kernel_mac, size_t mtu,
              bool created, bool vnet_header, bool receive_offload);
    // One writev() of `header` (may be empty) then `frame`; counts `frames`
    // segments in the stats.
    bool write_out(std::span<const uint8_t> header, std::span<const uint8_t> frame, size_t frames);

    int fd_;
    std::string name_;
    wire::MacAddress mac_;
    wire::MacAddress kernel_mac_;
    size_t mtu_;
    bool created_;
    int last_error_ = 0;
    DeviceStats stats_;
    bool vnet_header_;
    bool receive_offload_;
    std::unique_ptr<GsoCoalescer> gso_;  // set when vnet_header_
    std::vector<uint8_t> rx_buffer_;
};

}  // namespace ustack::netdev
