#include "netdev/linux_interface.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ustack::netdev {
namespace {

// A socket only for interface ioctls; closed on scope exit.
class IoctlSocket {
public:
    IoctlSocket() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {}
    ~IoctlSocket() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    IoctlSocket(const IoctlSocket&) = delete;
    IoctlSocket& operator=(const IoctlSocket&) = delete;
    int fd() const { return fd_; }

private:
    int fd_;
};

ifreq request_for(const std::string& name) {
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name.data(), name.size());  // name checked < IFNAMSIZ
    return ifr;
}

std::string errno_text(int err) { return std::strerror(err); }

}  // namespace

bool InterfaceInfo::is_up() const { return (flags & IFF_UP) != 0; }

DeviceResult<std::string> check_interface_name(const std::string& name) {
    if (name.empty() || name.size() >= IFNAMSIZ) {
        return device_fail(EINVAL, "invalid interface name '" + name + "': must be 1.." +
                                       std::to_string(IFNAMSIZ - 1) + " characters");
    }
    for (char c : name) {
        if (c == '/' || c == ':' || c == ' ' || c == '\t' || c == '\n') {
            return device_fail(EINVAL, "invalid interface name '" + name + "'");
        }
    }
    return name;
}

DeviceError interface_down_error(const std::string& name) {
    return DeviceError{Errno{ENETDOWN}, "interface " + name + " is down: ip link set " + name + " up"};
}

DeviceResult<InterfaceInfo> query_interface(const std::string& name) {
    if (auto checked = check_interface_name(name); !checked) {
        return Unexpected<DeviceError>{checked.error()};
    }
    IoctlSocket sock;
    if (sock.fd() < 0) {
        const int err = errno;
        return device_fail(err, "cannot query interface " + name + ": socket: " + errno_text(err));
    }
    InterfaceInfo info;
    info.name = name;
    ifreq ifr = request_for(name);
    if (::ioctl(sock.fd(), SIOCGIFINDEX, &ifr) < 0) {
        const int err = errno;
        if (err == ENODEV) {
            return device_fail(ENODEV, "no such interface '" + name + "'");
        }
        return device_fail(err, "cannot query interface " + name + ": SIOCGIFINDEX: " + errno_text(err));
    }
    info.index = ifr.ifr_ifindex;
    ifr = request_for(name);
    if (::ioctl(sock.fd(), SIOCGIFFLAGS, &ifr) < 0) {
        const int err = errno;
        return device_fail(err, "cannot query interface " + name + ": SIOCGIFFLAGS: " + errno_text(err));
    }
    info.flags = static_cast<unsigned short>(ifr.ifr_flags);
    ifr = request_for(name);
    if (::ioctl(sock.fd(), SIOCGIFMTU, &ifr) < 0) {
        const int err = errno;
        return device_fail(err, "cannot query interface " + name + ": SIOCGIFMTU: " + errno_text(err));
    }
    info.mtu = static_cast<size_t>(ifr.ifr_mtu);
    ifr = request_for(name);
    if (::ioctl(sock.fd(), SIOCGIFHWADDR, &ifr) == 0) {
        for (size_t i = 0; i < info.kernel_mac.bytes.size(); ++i) {
            info.kernel_mac.bytes[i] = static_cast<uint8_t>(ifr.ifr_hwaddr.sa_data[i]);
        }
    }
    return info;
}

DeviceResult<void> bring_interface_up(const std::string& name) {
    IoctlSocket sock;
    ifreq ifr = request_for(name);
    if (sock.fd() < 0 || ::ioctl(sock.fd(), SIOCGIFFLAGS, &ifr) < 0) {
        const int err = errno;
        return device_fail(err, "cannot bring interface " + name + " up: " + errno_text(err));
    }
    if ((ifr.ifr_flags & IFF_UP) != 0) {
        return {};
    }
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    if (::ioctl(sock.fd(), SIOCSIFFLAGS, &ifr) < 0) {
        const int err = errno;
        DeviceError down = interface_down_error(name);
        if (err == EPERM || err == EACCES) {
            down.message += " (bringing it up here needs CAP_NET_ADMIN)";
        } else {
            down.message += " (SIOCSIFFLAGS: " + errno_text(err) + ")";
        }
        return Unexpected<DeviceError>{down};
    }
    return {};
}

DeviceResult<void> check_address_not_on_interface(const std::string& name, wire::Ipv4Address stack_address) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) < 0) {
        const int err = errno;
        return device_fail(err, "cannot list the addresses of " + name + ": getifaddrs: " + errno_text(err));
    }
    std::optional<std::string> conflict;
    for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
        if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET || a->ifa_name == nullptr ||
            name != a->ifa_name) {
            continue;
        }
        sockaddr_in sin{};
        std::memcpy(&sin, a->ifa_addr, sizeof sin);
        if (wire::Ipv4Address(ntohl(sin.sin_addr.s_addr)) == stack_address) {
            // ifa_name carries the label (eth0:1) for aliases; the device is what matters.
            conflict = a->ifa_name;
            break;
        }
    }
    ::freeifaddrs(list);
    if (conflict) {
        const std::string addr = stack_address.to_string();
        return device_fail(EADDRINUSE, "address " + addr + " is already configured on the kernel side of " +
                                           name + ": the kernel would answer for it; remove it (ip addr del " +
                                           addr + "/<prefix> dev " + name +
                                           ") or give the stack another address");
    }
    return {};
}

}  // namespace ustack::netdev
