#pragma once
// What TAP and AF_PACKET devices need to know about a kernel interface
// before using it, each failure turned into a DeviceError that names the
// interface and the fix. Thin wrappers over SIOCGIF* ioctls and getifaddrs.
#include <cstddef>
#include <optional>
#include <string>

#include "netdev/device_error.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::netdev {

struct InterfaceInfo {
    std::string name;
    int index = 0;
    unsigned flags = 0;  // IFF_UP, IFF_RUNNING, ...
    size_t mtu = 0;      // SIOCGIFMTU: largest IP packet
    wire::MacAddress kernel_mac;  // the kernel's own address on the link (not the stack's)

    bool is_up() const;
};

// EINVAL when the name cannot be an interface name (empty, >= IFNAMSIZ,
// contains '/' or whitespace), so no ioctl sees a truncated name.
DeviceResult<std::string> check_interface_name(const std::string& name);
// ENODEV: "no such interface 'x'".
DeviceResult<InterfaceInfo> query_interface(const std::string& name);
// Sets IFF_UP (SIOCSIFFLAGS). EPERM/EACCES: "interface x is down: ip link
// set x up (bringing it up needs CAP_NET_ADMIN)".
DeviceResult<void> bring_interface_up(const std::string& name);
// The stack's address must not also be the kernel's on the same link: the
// kernel would answer ARP for it and take the stack's traffic. EADDRINUSE
// naming the address when getifaddrs shows it on `name`.
DeviceResult<void> check_address_not_on_interface(const std::string& name, wire::Ipv4Address stack_address);
// "interface x is down: ip link set x up", ENETDOWN.
DeviceError interface_down_error(const std::string& name);

}  // namespace ustack::netdev
