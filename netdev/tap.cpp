#include "netdev/tap.h"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "netdev/linux_interface.h"
#include "netdev/mac.h"

namespace ustack::netdev {
namespace {

constexpr size_t ethernet_header_len = wire::EthernetRepr::header_len;
// Room for anything the tun driver can hand over: a frame is at most MTU +
// Ethernet header (+ a VLAN tag), the MTU of a TAP is at most 65535 -
// header, and a TSO super-frame at most 64 KiB of IP (gso_max_size) plus
// headers, after the virtio-net header. tun refuses (EINVAL) to hand over
// a frame larger than the buffer rather than cutting it, so be generous.
constexpr size_t max_frame_len = 2 * 65536;

// Closes fd unless released: open() has several ways to fail.
class FdGuard {
public:
    explicit FdGuard(int fd) : fd_(fd) {}
    ~FdGuard() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    FdGuard(const FdGuard&) = delete;
    FdGuard& operator=(const FdGuard&) = delete;
    int release() { return std::exchange(fd_, -1); }
    int get() const { return fd_; }

private:
    int fd_;
};

}  // namespace

DeviceResult<std::unique_ptr<TapDevice>> TapDevice::open(const std::string& name, TapOptions options) {
    if (auto checked = check_interface_name(name); !checked) {
        return Unexpected<DeviceError>{checked.error()};
    }
    // Tell "missing" from "exists" first: TUNSETIFF would silently create it.
    auto before = query_interface(name);
    const bool existed = before.has_value();
    if (!existed && before.error().error.value != ENODEV) {
        return Unexpected<DeviceError>{before.error()};
    }
    if (!existed && !options.create) {
        return device_fail(ENODEV, "no such interface '" + name +
                                       "' (create it with: ip tuntap add dev " + name + " mode tap)");
    }
    if (existed && options.stack_address) {
        if (auto ok = check_address_not_on_interface(name, *options.stack_address); !ok) {
            return Unexpected<DeviceError>{ok.error()};
        }
    }

    FdGuard fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
    if (fd.get() < 0) {
        const int err = errno;
        if (err == ENOENT || err == ENXIO || err == ENODEV) {
            return device_fail(err, "/dev/net/tun is missing: load the tun module (modprobe tun) or create "
                                    "the node (mknod /dev/net/tun c 10 200)");
        }
        if (err == EACCES || err == EPERM) {
            return device_fail(err, "cannot open /dev/net/tun for TAP " + name +
                                        ": permission denied (need CAP_NET_ADMIN or access to /dev/net/tun)");
        }
        return device_fail(err, "cannot open /dev/net/tun: " + std::string(std::strerror(err)));
    }
    ifreq ifr{};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | (options.offloads ? IFF_VNET_HDR : 0);
    std::memcpy(ifr.ifr_name, name.data(), name.size());
    if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) {
        const int err = errno;
        switch (err) {
        case EPERM:
        case EACCES:
            return device_fail(err, existed ? "need CAP_NET_ADMIN (or to own the persistent TAP) to attach to " +
                                                  name
                                            : "need CAP_NET_ADMIN to create TAP " + name);
        case EINVAL:
            return device_fail(err, "interface " + name + " exists and is not a TAP device (TUNSETIFF: " +
                                        std::strerror(err) + ")");
        case EBUSY:
            return device_fail(err, "TAP " + name + " is in use by another process");
        default:
            return device_fail(err, "TUNSETIFF " + name + ": " + std::strerror(err));
        }
    }
    // The kernel may have changed the name (a pattern like "tap%d").
    const std::string actual(ifr.ifr_name, ::strnlen(ifr.ifr_name, IFNAMSIZ));

    // Offloads: with IFF_VNET_HDR the header comes with every frame whatever
    // follows (its size is 10 unless set; set it anyway). TUNSETOFFLOAD is
    // what lets the kernel send us partial checksums and super-frames; when
    // refused, it sends complete frames with an empty header, and our own
    // GSO frames still work (that needs only the header).
    bool vnet_header = false;
    bool receive_offload = false;
    if (options.offloads && (ifr.ifr_flags & IFF_VNET_HDR) != 0) {
        int header_size = static_cast<int>(VirtioNetHdr::size);
        vnet_header = true;
        if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &header_size) < 0) {
            const int err = errno;
            return device_fail(err, "TAP " + actual + ": TUNSETVNETHDRSZ: " + std::strerror(err));
        }
        const unsigned offload = TUN_F_CSUM | TUN_F_TSO4;
        receive_offload = ::ioctl(fd.get(), TUNSETOFFLOAD, offload) == 0;
    } else if (::ioctl(fd.get(), TUNSETOFFLOAD, 0u) < 0) {
        // A persistent TAP keeps the offloads its last user set: without
        // clearing them the kernel would go on sending partial checksums
        // and 64 KiB super-frames to a reader that expects plain frames.
        const int err = errno;
        return device_fail(err, "TAP " + actual + ": cannot turn off the offloads a previous user set "
                                                  "(TUNSETOFFLOAD 0): " + std::strerror(err));
    }

    auto info = query_interface(actual);
    if (!info) {
        return Unexpected<DeviceError>{info.error()};
    }
    if (!info->is_up()) {
        if (!options.bring_up) {
            return Unexpected<DeviceError>{interface_down_error(actual)};
        }
        if (auto up = bring_interface_up(actual); !up) {
            return Unexpected<DeviceError>{up.error()};
        }
    }
    const wire::MacAddress mac = options.mac ? *options.mac : random_local_mac();
    if (mac.is_multicast() || mac.is_zero()) {
        return device_fail(EINVAL, "the stack's MAC " + mac.to_string() + " on " + actual +
                                       " must be a unicast address");
    }
    return std::unique_ptr<TapDevice>(
        new TapDevice(fd.release(), actual, mac, info->kernel_mac, info->mtu, !existed, vnet_header, receive_offload));
}

TapDevice::TapDevice(int fd, std::string name, wire::MacAddress mac, wire::MacAddress kernel_mac, size_t mtu,
                     bool created, bool vnet_header, bool receive_offload)
    : fd_(fd),
      name_(std::move(name)),
      mac_(mac),
      kernel_mac_(kernel_mac),
      mtu_(mtu),
      created_(created),
      vnet_header_(vnet_header),
      receive_offload_(receive_offload),
      gso_(vnet_header ? std::make_unique<GsoCoalescer>(VirtioNetHdr::size) : nullptr),
      rx_buffer_(max_frame_len) {}

TapDevice::~TapDevice() { ::close(fd_); }

bool TapDevice::write_out(std::span<const uint8_t> header, std::span<const uint8_t> frame, size_t frames) {
    iovec iov[2] = {{const_cast<uint8_t*>(header.data()), header.size()},
                    {const_cast<uint8_t*>(frame.data()), frame.size()}};
    const int count = header.empty() ? 1 : 2;
    ssize_t n = -1;
    do {
        n = ::writev(fd_, header.empty() ? &iov[1] : iov, count);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(header.size() + frame.size())) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            last_error_ = errno;
        }
        stats_.tx_dropped += frames;
        return false;
    }
    stats_.tx_frames += frames;
    stats_.tx_bytes += frame.size();
    return true;
}

bool TapDevice::send(Instant, std::span<const uint8_t> frame) {
    if (frame.size() > mtu_ + ethernet_header_len || frame.size() < ethernet_header_len) {
        ++stats_.tx_dropped;
        return false;
    }
    if (!vnet_header_) {
        return write_out({}, frame, 1);
    }
    return gso_->send(frame, [this](std::span<const uint8_t> header, std::span<const uint8_t> bytes, size_t n) {
        return write_out(header, bytes, n);
    }, stats_);
}

void TapDevice::flush(Instant) {
    if (gso_) {
        gso_->flush([this](std::span<const uint8_t> header, std::span<const uint8_t> bytes,
                           size_t n) { return write_out(header, bytes, n); },
                    stats_);
    }
}

std::optional<RxFrame> TapDevice::receive_view(Instant) {
    for (;;) {
        const ssize_t n = ::read(fd_, rx_buffer_.data(), rx_buffer_.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                last_error_ = errno;
            }
            return std::nullopt;
        }
        if (n == 0) {
            return std::nullopt;
        }
        const std::span<uint8_t> read(rx_buffer_.data(), static_cast<size_t>(n));
        ++stats_.rx_frames;
        if (!vnet_header_) {
            stats_.rx_bytes += read.size();
            return RxFrame{read, RxChecksum::none, 0, 0};
        }
        const std::optional<VirtioNetHdr> header = VirtioNetHdr::decode(read);
        if (!header) {
            return RxFrame{read, RxChecksum::none, 0, 0};  // too short to be anything; the stack counts it
        }
        // Lent in place, after the header: the stack reads it from the
        // buffer the kernel wrote (no copy; the next read reuses it).
        const std::span<uint8_t> frame = read.subspan(VirtioNetHdr::size);
        stats_.rx_bytes += frame.size();
        return accept_offloaded(*header, frame, stats_);
    }
}

std::optional<Frame> TapDevice::receive(Instant now) { return owned_copy(receive_view(now)); }

}  // namespace ustack::netdev
