#pragma once
// A Linux TAP device: the kernel sees an Ethernet interface, the stack reads
// and writes its frames through /dev/net/tun. The stack is one more host on
// that link with its own MAC (never the interface's kernel MAC); the kernel
// side usually carries an address of the same subnet and is the peer.
//
// No IFF_VNET_HDR for now: without it the tun driver hands us complete
// frames with finished checksums and never a GSO super-frame, at the price
// of one syscall per frame. (Later: IFF_VNET_HDR + TUNSETOFFLOAD for TSO/GRO,
// and IFF_MULTI_QUEUE for one queue per thread.)
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netdev/device_error.h"
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
    bool send(Instant now, std::span<const uint8_t> frame) override;
    // Reads one frame, nullopt when none is waiting (EAGAIN). Never blocks.
    std::optional<Frame> receive(Instant now) override;
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

private:
    TapDevice(int fd, std::string name, wire::MacAddress mac, wire::MacAddress kernel_mac, size_t mtu,
              bool created);

    int fd_;
    std::string name_;
    wire::MacAddress mac_;
    wire::MacAddress kernel_mac_;
    size_t mtu_;
    bool created_;
    int last_error_ = 0;
    DeviceStats stats_;
    std::vector<uint8_t> rx_buffer_;
};

}  // namespace ustack::netdev
