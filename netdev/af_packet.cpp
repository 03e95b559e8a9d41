#include "netdev/af_packet.h"

#include <arpa/inet.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstring>
#include <utility>

#include "netdev/linux_interface.h"
#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"
#include "stack/wire/udp.h"

namespace ustack::netdev {

namespace {

constexpr size_t ethernet_header_len = wire::EthernetRepr::header_len;
constexpr uint8_t ip_proto_tcp = 6;
constexpr uint8_t ip_proto_udp = 17;
// How often a look that finds the ring empty may check whether it is
// wedged (one getsockopt): rarely enough to cost nothing on the stack's
// looks after every send, often enough that a wedge costs little.
constexpr Duration ring_check_interval = Duration::from_millis(200);

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

std::string errno_text(int err) { return std::strerror(err); }

// Classic BPF: accept a frame whose destination is multicast/broadcast (I/G
// bit of the first octet) or exactly `mac`; drop the rest in the kernel,
// before it is copied to us.
std::vector<sock_filter> destination_filter(wire::MacAddress mac) {
    const auto& m = mac.bytes;
    const uint32_t low4 = (uint32_t{m[2]} << 24) | (uint32_t{m[3]} << 16) | (uint32_t{m[4]} << 8) | m[5];
    const uint32_t high2 = (uint32_t{m[0]} << 8) | m[1];
    constexpr uint32_t accept_len = 0x7fffffff;  // whole frame
    return {
        BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),                 // 0: A = dst[0]
        BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x01, 4, 0),      // 1: multicast → accept (6)
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 2),                 // 2: A = dst[2..6]
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, low4, 0, 3),       // 3: ≠ → reject (7)
        BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 0),                 // 4: A = dst[0..2]
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, high2, 0, 1),      // 5: = → accept, ≠ → reject
        BPF_STMT(BPF_RET | BPF_K, accept_len),                 // 6: accept
        BPF_STMT(BPF_RET | BPF_K, 0),                          // 7: reject
    };
}

}  // namespace

// The receive ring as mapped into our address space. Slot i sits at
// block i / slots_per_block, offset (i % slots_per_block) * slot_size (the
// kernel's packet_lookup_frame); it starts with a tpacket2_hdr, then the
// sockaddr_ll, then (tp_mac) the frame, preceded by its virtio-net header.
struct PacketDevice::RxRing {
    uint8_t* base = nullptr;
    size_t length = 0;  // bytes mapped
    size_t block_size = 0;
    size_t slot_size = 0;
    size_t slots_per_block = 0;
    size_t slots = 0;
    // The slot the kernel fills after the last one we took, and the slots
    // of the last batch, lent to the stack until the next fill_queue().
    size_t next = 0;
    size_t lent_first = 0;
    size_t lent = 0;

    // Maps a TPACKET_V2 receive ring of about `bytes` on `fd` (not bound
    // yet); nullptr when the kernel refuses a step, leaving the socket
    // without a ring (an error only if the ring it made cannot be undone).
    static DeviceResult<std::unique_ptr<RxRing>> map(int fd, size_t mtu, bool vnet_header, size_t bytes);

    RxRing() = default;
    RxRing(const RxRing&) = delete;
    RxRing& operator=(const RxRing&) = delete;
    ~RxRing() { unmap(); }

    void unmap() {
        if (base != nullptr) {
            ::munmap(base, length);
            base = nullptr;
        }
    }
    // Maps the ring the socket has again (after unmap()).
    bool remap(int fd) {
        void* mapped = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (mapped == MAP_FAILED) {
            return false;
        }
        base = static_cast<uint8_t*>(mapped);
        return true;
    }

    uint8_t* slot(size_t i) const {
        return base + (i / slots_per_block) * block_size + (i % slots_per_block) * slot_size;
    }
    // The kernel writes the frame, then tp_status with a barrier between:
    // acquire here makes the frame visible once TP_STATUS_USER is.
    static uint32_t status(uint8_t* slot) {
        return std::atomic_ref<uint32_t>(reinterpret_cast<tpacket2_hdr*>(slot)->tp_status)
            .load(std::memory_order_acquire);
    }
    // Gives the last batch's slots back. Release: the stack's reads (and
    // writes: a completed checksum) of them are done before the kernel may
    // overwrite them.
    void give_back() {
        for (size_t k = 0; k < lent; ++k) {
            uint8_t* s = slot((lent_first + k) % slots);
            std::atomic_ref<uint32_t>(reinterpret_cast<tpacket2_hdr*>(s)->tp_status)
                .store(TP_STATUS_KERNEL, std::memory_order_release);
        }
        lent_first = next;
        lent = 0;
    }
};

// What the kernel says about a frame besides its bytes: the aux data of
// recvmsg(), or the same fields in the frame's ring slot.
struct PacketDevice::FrameMeta {
    uint8_t pkttype = PACKET_HOST;  // sockaddr_ll
    uint32_t status = 0;            // TP_STATUS_*
    uint16_t vlan_tci = 0;
};

namespace {

// Ring slots hold a frame of the interface's MTU after the headers the
// kernel puts first (tpacket_rcv: the frame's network header lands at
// TPACKET_ALIGN(tp_hdrlen + link header) + virtio-net header). A longer
// frame arrives through the socket queue, so the slot need not hold a
// 64 KiB super-frame: 2500 MTU-sized slots take the memory of 64 large ones.
size_t ring_slot_size(size_t mtu, bool vnet_header) {
    constexpr size_t link_header = ethernet_header_len + 4;  // an in-band 802.1Q tag
    const size_t before_l3 = TPACKET_ALIGN(TPACKET2_HDRLEN + link_header) + (vnet_header ? VirtioNetHdr::size : 0);
    return TPACKET_ALIGN(before_l3 + mtu);
}

}  // namespace

// Slots are MTU-sized (ring_slot_size). Blocks are a power-of-two number
// of pages holding at least 8 slots: the kernel allocates each block as a
// power-of-two run of pages, so any other size wastes the rest, and 8 slots
// leave little of a block unused. PACKET_VNET_HDR must be set before: the
// kernel refuses to change it once a ring exists.
DeviceResult<std::unique_ptr<PacketDevice::RxRing>> PacketDevice::RxRing::map(int fd, size_t mtu, bool vnet_header,
                                                                               size_t bytes) {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    auto ring = std::make_unique<RxRing>();
    ring->slot_size = ring_slot_size(mtu, vnet_header);
    ring->block_size = std::bit_ceil(std::max(ring->slot_size * 8, page));
    ring->slots_per_block = ring->block_size / ring->slot_size;
    const size_t blocks = std::max<size_t>(bytes / ring->block_size, 1);
    ring->slots = blocks * ring->slots_per_block;
    ring->length = blocks * ring->block_size;
    if (ring->block_size > UINT32_MAX || ring->slots > UINT32_MAX) {
        return std::unique_ptr<RxRing>();
    }
    // V2 before the ring (the version fixes the slot header); a frame
    // longer than a slot is then also queued whole on the socket (any
    // non-zero threshold: the kernel only tests it).
    const int version = TPACKET_V2;
    const int copy_thresh = 1;
    tpacket_req req{};
    req.tp_block_size = static_cast<unsigned>(ring->block_size);
    req.tp_block_nr = static_cast<unsigned>(blocks);
    req.tp_frame_size = static_cast<unsigned>(ring->slot_size);
    req.tp_frame_nr = static_cast<unsigned>(ring->slots);
    if (::setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof version) < 0 ||
        ::setsockopt(fd, SOL_PACKET, PACKET_COPY_THRESH, &copy_thresh, sizeof copy_thresh) < 0 ||
        ::setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &req, sizeof req) < 0) {
        return std::unique_ptr<RxRing>();
    }
    void* base = ::mmap(nullptr, ring->length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        // Back to recvmsg: an empty request frees the ring (unmapped, so
        // the kernel lets it go). Kept, it would take every frame.
        const int err = errno;
        tpacket_req none{};
        if (::setsockopt(fd, SOL_PACKET, PACKET_RX_RING, &none, sizeof none) < 0) {
            return device_fail(errno, std::string("mmap of the AF_PACKET receive ring: ") + std::strerror(err));
        }
        return std::unique_ptr<RxRing>();
    }
    ring->base = static_cast<uint8_t*>(base);
    return ring;
}

struct PacketDevice::RxBatch {
    struct Slot {
        std::vector<uint8_t> buffer;
        sockaddr_ll from{};
        alignas(cmsghdr) uint8_t control[CMSG_SPACE(sizeof(tpacket_auxdata))]{};
        iovec iov{};
    };
    std::vector<Slot> slots;
    std::vector<mmsghdr> messages;
    // A copy read from the socket for a later ring slot than the one that
    // read it (that one's copy was gone): kept until its slot comes.
    std::vector<uint8_t> stash;
    size_t stash_len = 0;  // the copy's whole length (may exceed the buffer)
    std::optional<uint64_t> stash_seq;  // its slot's ring_seq_
};

bool ring_with_vnet_header_ok(std::string_view release) {
    // "6.1.0-18-amd64", "6.18.44-fc-v1272", "5.10.0": major.minor first.
    auto number = [&release]() -> std::optional<unsigned> {
        size_t digits = 0;
        unsigned value = 0;
        while (digits < release.size() && digits < 6 && release[digits] >= '0' && release[digits] <= '9') {
            value = value * 10 + static_cast<unsigned>(release[digits] - '0');
            ++digits;
        }
        if (digits == 0) {
            return std::nullopt;
        }
        release.remove_prefix(digits);
        return value;
    };
    const std::optional<unsigned> major = number();
    if (!major || release.empty() || release.front() != '.') {
        return false;
    }
    release.remove_prefix(1);
    const std::optional<unsigned> minor = number();
    if (!minor) {
        return false;
    }
    return *major > 6 || (*major == 6 && *minor >= 2);
}

bool complete_l4_checksum(std::span<uint8_t> frame) {
    constexpr size_t eth = ethernet_header_len;
    if (frame.size() < eth + wire::Ipv4Repr::header_len ||
        wire::read_u16(frame, 12) != static_cast<uint16_t>(wire::EtherType::Ipv4)) {
        return false;
    }
    const std::span<uint8_t> ip = frame.subspan(eth);
    const size_t ihl = size_t{static_cast<uint8_t>(ip[0] & 0x0f)} * 4;
    const size_t total = wire::read_u16(ip, wire::Ipv4Repr::LENGTH.start);
    const uint16_t flags_offset = wire::read_u16(ip, wire::Ipv4Repr::FLG_OFF.start);
    if ((ip[0] >> 4) != 4 || ihl < wire::Ipv4Repr::header_len || total < ihl || total > ip.size() ||
        (flags_offset & 0x3fff) != 0) {  // MF or an offset: a fragment never has a partial checksum
        return false;
    }
    const uint8_t protocol = ip[wire::Ipv4Repr::PROTOCOL.start];
    const std::span<uint8_t> l4 = ip.subspan(ihl, total - ihl);
    size_t checksum_at = 0;
    if (protocol == ip_proto_udp && l4.size() >= wire::UdpRepr::header_len) {
        checksum_at = wire::UdpRepr::CHECKSUM.start;
    } else if (protocol == ip_proto_tcp && l4.size() >= wire::TcpRepr::min_header_len) {
        checksum_at = wire::TcpRepr::CHECKSUM.start;
    } else {
        return false;
    }
    const wire::Ipv4Address src(wire::read_u32(ip, wire::Ipv4Repr::SRC_ADDR.start));
    const wire::Ipv4Address dst(wire::read_u32(ip, wire::Ipv4Repr::DST_ADDR.start));
    wire::write_u16(l4, checksum_at, 0);
    uint16_t sum = wire::checksum::finish(wire::checksum::accumulate(
        l4, wire::checksum::pseudo_header(src, dst, protocol, static_cast<uint16_t>(l4.size()))));
    if (sum == 0 && protocol == ip_proto_udp) {
        sum = 0xffff;  // RFC 768: a computed zero is sent as all ones
    }
    wire::write_u16(l4, checksum_at, sum);
    return true;
}

DeviceResult<std::unique_ptr<PacketDevice>> PacketDevice::open(const std::string& ifname, wire::MacAddress mac,
                                                             PacketOptions options) {
    auto info = query_interface(ifname);
    if (!info) {
        return Unexpected<DeviceError>{info.error()};
    }
    if (!info->is_up()) {
        return Unexpected<DeviceError>{interface_down_error(ifname)};
    }
    if (options.stack_address) {
        if (auto ok = check_address_not_on_interface(ifname, *options.stack_address); !ok) {
            return Unexpected<DeviceError>{ok.error()};
        }
    }
    if (mac.is_multicast() || mac.is_zero()) {
        return device_fail(EINVAL, "the stack's MAC " + mac.to_string() + " on " + ifname +
                                       " must be a unicast address");
    }
    // Protocol 0: the socket receives nothing until bind(), so no frame
    // slips in before the filter is attached.
    FdGuard fd(::socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd.get() < 0) {
        const int err = errno;
        if (err == EPERM || err == EACCES) {
            return device_fail(err, "need CAP_NET_RAW to open an AF_PACKET socket on " + ifname);
        }
        return device_fail(err, "AF_PACKET socket for " + ifname + ": " + errno_text(err));
    }
    std::vector<sock_filter> filter = destination_filter(mac);
    sock_fprog program{static_cast<unsigned short>(filter.size()), filter.data()};
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof program) < 0) {
        const int err = errno;
        return device_fail(err, "AF_PACKET on " + ifname + ": SO_ATTACH_FILTER: " + errno_text(err));
    }
    // Without it we would read back every frame we send; the fallback is the
    // PACKET_OUTGOING check in fill_queue().
    const int one = 1;
    const bool ignore_outgoing =
        ::setsockopt(fd.get(), SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one) == 0;
    // TP_STATUS_CSUMNOTREADY arrives in the aux data.
    if (::setsockopt(fd.get(), SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) < 0) {
        const int err = errno;
        return device_fail(err, "AF_PACKET on " + ifname + ": PACKET_AUXDATA: " + errno_text(err));
    }
    // Offloads: set before bind(), so every frame queued to us has the
    // header. Refused (an old kernel): plain frames, as without offloads.
    bool vnet_header = false;
    if (options.offloads) {
        vnet_header = ::setsockopt(fd.get(), SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) == 0;
    }
    // The ring after PACKET_VNET_HDR (fixed once a ring exists), before
    // bind() (no frame is queued to the socket in between). Not with the
    // virtio-net header before 6.2: there tpacket_rcv() wedges the ring
    // for good on the first UDP GSO frame (UDP_SEGMENT, UDP GRO), which
    // virtio_net_hdr_from_skb() cannot describe yet (see the header's top
    // comment); recvmmsg() drops that frame alone. Offloads matter more
    // than the ring: they carry 64 KiB per frame.
    bool ring_allowed = options.rx_ring_bytes > 0;
    if (ring_allowed && vnet_header) {
        utsname uts{};
        ring_allowed = ::uname(&uts) == 0 && ring_with_vnet_header_ok(uts.release);
    }
    std::unique_ptr<RxRing> ring;
    if (ring_allowed) {
        auto mapped = RxRing::map(fd.get(), info->mtu, vnet_header, options.rx_ring_bytes);
        if (!mapped) {
            return Unexpected<DeviceError>{DeviceError{mapped.error().error, "AF_PACKET on " + ifname + ": " +
                                                                                 mapped.error().message}};
        }
        ring = std::move(*mapped);
    }
    if (options.socket_rcvbuf > 0) {
        const int size = static_cast<int>(std::min<size_t>(options.socket_rcvbuf, 1 << 30));
        // FORCE passes rmem_max (needs CAP_NET_ADMIN); without it the
        // plain option gives what rmem_max allows, which still works.
        if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) {
            (void)::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
        }
    }
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_protocol = htons(ETH_P_ALL);
    addr.sll_ifindex = info->index;
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) < 0) {
        const int err = errno;
        if (err == ENETDOWN) {
            return Unexpected<DeviceError>{interface_down_error(ifname)};
        }
        if (err == ENODEV) {
            return device_fail(ENODEV, "no such interface '" + ifname + "'");
        }
        return device_fail(err, "AF_PACKET bind to " + ifname + ": " + errno_text(err));
    }
    // Frames for our MAC must reach the interface at all: add the MAC to its
    // unicast filter (or go promiscuous). The membership ends with the socket.
    if (mac != info->kernel_mac || options.promiscuous) {
        packet_mreq mreq{};
        mreq.mr_ifindex = info->index;
        if (options.promiscuous) {
            mreq.mr_type = PACKET_MR_PROMISC;
        } else {
            mreq.mr_type = PACKET_MR_UNICAST;
            mreq.mr_alen = static_cast<unsigned short>(mac.bytes.size());
            std::copy(mac.bytes.begin(), mac.bytes.end(), mreq.mr_address);
        }
        if (::setsockopt(fd.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0) {
            const int err = errno;
            if (options.promiscuous) {
                return device_fail(err, "cannot put " + ifname + " in promiscuous mode: " + errno_text(err));
            }
            // A device without a unicast address list (rare): promiscuous
            // mode gets our frames as well.
            mreq.mr_type = PACKET_MR_PROMISC;
            mreq.mr_alen = 0;
            if (::setsockopt(fd.get(), SOL_PACKET, PACKET_ADD_MEMBERSHIP, &mreq, sizeof mreq) < 0) {
                return device_fail(err, "cannot receive frames for " + mac.to_string() + " on " + ifname +
                                            ": PACKET_ADD_MEMBERSHIP: " + errno_text(err));
            }
        }
    }
    return std::unique_ptr<PacketDevice>(
        new PacketDevice(fd.release(), ifname, mac, info->kernel_mac, info->mtu, options, ignore_outgoing,
                         vnet_header, std::move(ring)));
}

PacketDevice::PacketDevice(int fd, std::string name, wire::MacAddress mac, wire::MacAddress kernel_mac, size_t mtu,
                           const PacketOptions& options, bool ignore_outgoing, bool vnet_header,
                           std::unique_ptr<RxRing> ring)
    : fd_(fd),
      name_(std::move(name)),
      mac_(mac),
      kernel_mac_(kernel_mac),
      mtu_(mtu),
      ignore_outgoing_(ignore_outgoing),
      vnet_header_(vnet_header),
      gso_(vnet_header ? std::make_unique<GsoCoalescer>(VirtioNetHdr::size) : nullptr),
      rx_(std::make_unique<RxBatch>()),
      ring_(std::move(ring)) {
    const size_t frame_len = std::max(options.max_frame_len, mtu + ethernet_header_len + 4) +
                             (vnet_header ? VirtioNetHdr::size : 0);
    rx_->slots.resize(std::max<size_t>(options.batch, 1));
    rx_->messages.resize(rx_->slots.size());
    for (RxBatch::Slot& slot : rx_->slots) {
        slot.buffer.resize(frame_len);
    }
}

PacketDevice::~PacketDevice() {
    ring_.reset();  // munmap
    ::close(fd_);
}

uint64_t PacketDevice::read_kernel_tp_drops() {
    tpacket_stats stats{};
    socklen_t len = sizeof stats;
    if (::getsockopt(fd_, SOL_PACKET, PACKET_STATISTICS, &stats, &len) == 0) {
        kernel_tp_drops_ += stats.tp_drops;
    }
    return kernel_tp_drops_;
}

uint64_t PacketDevice::kernel_drops() { return read_kernel_tp_drops() + copy_drops_; }

// The kernel's packet_notifier() sets sk_err (ENETDOWN) when the interface
// goes down, and datagram_poll() reports EPOLLERR until a read or SO_ERROR
// takes it. recvmmsg() took it with the next read; the ring reads nothing
// (a frame longer than a slot aside), so without this the host's level-
// triggered epoll would report the fd again at once, for as long as the
// link is down and after it is up again, until a send took the error (and
// lost its frame). Called only on EPOLLERR: no syscall on the looks.
void PacketDevice::take_poll_error() {
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) {
        last_error_ = err;
    }
}

bool PacketDevice::send_out(std::span<const uint8_t> header, std::span<const uint8_t> frame, size_t frames) {
    iovec iov[2] = {{const_cast<uint8_t*>(header.data()), header.size()},
                    {const_cast<uint8_t*>(frame.data()), frame.size()}};
    msghdr msg{};
    msg.msg_iov = header.empty() ? &iov[1] : iov;
    msg.msg_iovlen = header.empty() ? 1 : 2;
    const size_t total = header.size() + frame.size();
    ssize_t n = -1;
    do {
        n = ::sendmsg(fd_, &msg, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n != static_cast<ssize_t>(total)) {
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
            last_error_ = errno;
        }
        stats_.tx_dropped += frames;
        return false;
    }
    stats_.tx_frames += frames;
    stats_.tx_bytes += frame.size();
    return true;
}

bool PacketDevice::send(Instant, std::span<const uint8_t> frame) {
    if (frame.size() > mtu_ + ethernet_header_len || frame.size() < ethernet_header_len) {
        ++stats_.tx_dropped;
        return false;
    }
    if (!vnet_header_) {
        return send_out({}, frame, 1);
    }
    return gso_->send(frame, [this](std::span<const uint8_t> header, std::span<const uint8_t> bytes, size_t n) {
        return send_out(header, bytes, n);
    }, stats_);
}

void PacketDevice::flush(Instant) {
    if (gso_) {
        gso_->flush([this](std::span<const uint8_t> header, std::span<const uint8_t> bytes,
                           size_t n) { return send_out(header, bytes, n); },
                    stats_);
    }
}

std::optional<RxFrame> PacketDevice::receive_view(Instant now) {
    while (rx_queue_.empty()) {
        if (!fill_queue(now)) {
            return std::nullopt;
        }
    }
    const RxFrame frame = rx_queue_.front();
    rx_queue_.pop_front();
    return frame;
}

std::optional<Frame> PacketDevice::receive(Instant now) { return owned_copy(receive_view(now)); }

bool PacketDevice::fill_queue(Instant now) { return ring_ ? fill_from_ring(now) : fill_from_socket(); }

// The frames the kernel handed over since the last batch, lent to the
// stack in place: up to a batch (which bounds the copies read into the
// batch buffers) and half the ring (the kernel keeps room, and a batch
// never wraps onto its own slots). The previous batch's slots go back
// first: the stack is done with them (the queue is empty).
//
// No wakeup is lost, and none is left over: the kernel's poll reports the
// socket readable while the slot before its head (the last it filled) is
// not TP_STATUS_KERNEL. We take and give back slots in ring order, so when
// a look stops at an empty slot right after giving everything back, the
// slot before the head is ours again: not readable, and epoll, level-
// triggered, stops reporting it; a frame filled after the look makes it
// readable (and wakes epoll). A look that stops at a full batch leaves
// the last filled slot TP_STATUS_USER: still readable.
bool PacketDevice::fill_from_ring(Instant now) {
    RxRing& ring = *ring_;
    ring.give_back();
    size_t copies = 0;
    const size_t batch = std::max<size_t>(std::min(rx_->slots.size(), ring.slots / 2), 1);
    while (ring.lent < batch) {
        uint8_t* slot = ring.slot(ring.next);
        const uint32_t status = RxRing::status(slot);
        // TP_STATUS_USER is set in every slot the kernel filled. A slot
        // it is still filling while it fills the next one (two CPUs) stops
        // us here; the next look finds both.
        if ((status & TP_STATUS_USER) == 0) {
            break;
        }
        ring.next = (ring.next + 1) % ring.slots;
        ++ring.lent;
        take_ring_slot(slot, status, copies, ring_seq_++);
    }
    if (ring.lent > 0) {
        ring_taken_since_check_ = true;
        return true;
    }
    check_ring_wedged(now);
    return false;
}

// A wedged ring (see the header's top comment: a frame the kernel could
// not describe in a virtio-net header left it a slot it claimed and never
// filled) looks empty: its slots are all the kernel's, the fd never
// readable; only the kernel's drop count grows, with every frame. So a
// look that finds nothing reads that count, at most every
// ring_check_interval (by the Instant the stack passes: no clock read of
// our own), and rebuilds the ring when the count grew since the last
// check while we took no slot at all and hold none (we lent nothing, the
// slot at our head is TP_STATUS_KERNEL: every slot is the kernel's to
// fill, so a kernel that fills none is stuck). A ring that was full,
// then drained, has its drops but also its slots taken since the last
// check, so it is left alone; one whose drops and drain fall into
// different checks could still be rebuilt for nothing (a few frames in
// flight lost, which TCP sends again): accepted. A real wedge is found by
// the second check after the first frame it drops, at the latest (given
// looks: the stack's timers and sends make them; ~400 ms of frames lost).
void PacketDevice::check_ring_wedged(Instant now) {
    if (ring_checked_at_ && now >= *ring_checked_at_ && now - *ring_checked_at_ < ring_check_interval) {
        return;
    }
    ring_checked_at_ = now;
    const uint64_t drops = read_kernel_tp_drops();
    const bool dropped = drops > ring_check_drops_;
    ring_check_drops_ = drops;
    const bool taken = std::exchange(ring_taken_since_check_, false);
    RxRing& ring = *ring_;
    if (dropped && !taken && ring.lent == 0 && RxRing::status(ring.slot(ring.next)) == TP_STATUS_KERNEL) {
        (void)rebuild_rx_ring();
    }
}

bool PacketDevice::rebuild_rx_ring() {
    if (!ring_) {
        return false;
    }
    // Frames not yet taken point into the ring; a copy kept for a slot
    // goes with the ring.
    rx_queue_.clear();
    rx_->stash_seq.reset();
    ring_taken_since_check_ = false;
    // The kernel frees a ring only while nobody maps it; an empty request
    // frees it (and purges the socket queue: no copy of the old ring's
    // slots survives), then the same geometry is set up and mapped anew,
    // with the kernel's head at slot 0 and a clean rx_owner_map.
    ring_->unmap();
    tpacket_req none{};
    if (::setsockopt(fd_, SOL_PACKET, PACKET_RX_RING, &none, sizeof none) < 0) {
        last_error_ = errno;
        // The kernel kept the old ring: keep using it as it is.
        if (!ring_->remap(fd_)) {
            ring_.reset();  // nothing left to read frames from but copies
        }
        return false;
    }
    const size_t bytes = ring_->length;
    ring_.reset();
    ++rx_ring_rebuilds_;
    auto mapped = RxRing::map(fd_, mtu_, vnet_header_, bytes);
    if (!mapped) {
        last_error_ = mapped.error().error.value;
        return false;
    }
    ring_ = std::move(*mapped);  // null: refused, recvmmsg() from now on
    return ring_ != nullptr;
}

namespace {

// The first bytes of the frame a ring slot holds (after its virtio-net
// header, if any); empty when the slot's offsets are not what the kernel
// writes.
std::span<const uint8_t> slot_frame_head(const uint8_t* slot, size_t slot_size, size_t vnet) {
    const auto* header = reinterpret_cast<const tpacket2_hdr*>(slot);
    if (header->tp_mac < vnet || header->tp_mac + size_t{header->tp_snaplen} > slot_size) {
        return {};
    }
    return {slot + header->tp_mac, header->tp_snaplen};
}

}  // namespace

std::optional<uint64_t> PacketDevice::later_slot_for_copy(std::span<const uint8_t> copy, size_t whole) const {
    const RxRing& ring = *ring_;
    const size_t vnet = vnet_header_ ? VirtioNetHdr::size : 0;
    // The slots the kernel filled after the one being read, not lent yet
    // (those lent in this batch are still TP_STATUS_USER: never past them).
    for (size_t d = 0; d + ring.lent < ring.slots; ++d) {
        const uint8_t* slot = ring.slot((ring.next + d) % ring.slots);
        const uint32_t status = RxRing::status(const_cast<uint8_t*>(slot));
        if ((status & TP_STATUS_USER) == 0) {
            break;
        }
        if ((status & TP_STATUS_COPY) == 0) {
            continue;
        }
        const auto* header = reinterpret_cast<const tpacket2_hdr*>(slot);
        const std::span<const uint8_t> head = slot_frame_head(slot, ring.slot_size, vnet);
        if (whole == size_t{header->tp_len} + vnet && copy.size() >= vnet + head.size() &&
            (head.empty() || std::memcmp(copy.data() + vnet, head.data(), head.size()) == 0)) {
            return ring_seq_ + d;
        }
    }
    return std::nullopt;
}

void PacketDevice::take_ring_slot(uint8_t* slot, uint32_t status, size_t& copies, uint64_t seq) {
    const auto* header = reinterpret_cast<const tpacket2_hdr*>(slot);
    const auto* from = reinterpret_cast<const sockaddr_ll*>(slot + TPACKET_ALIGN(sizeof(tpacket2_hdr)));
    const FrameMeta meta{from->sll_pkttype, status, header->tp_vlan_tci};
    const size_t vnet = vnet_header_ ? VirtioNetHdr::size : 0;
    // The virtio-net header sits right before the frame (tpacket_rcv:
    // h.raw + macoff - sizeof(struct virtio_net_hdr)).
    const bool in_slot = header->tp_mac >= vnet && header->tp_mac + size_t{header->tp_snaplen} <= ring_->slot_size;
    if ((status & TP_STATUS_COPY) != 0) {
        // Longer than a slot: the kernel queued the whole frame on the
        // socket too, in ring order. Read it even if the frame is then
        // filtered, or the next copied slot would get this frame. The
        // slot holds its head, which the copy must start with.
        std::optional<std::span<uint8_t>> whole;
        if (rx_->stash_seq && seq < *rx_->stash_seq) {
            ++rx_truncated_;  // its copy was gone: a later one came first
        } else if (rx_->stash_seq && seq == *rx_->stash_seq) {
            // Read for this slot by an earlier one: into this slot's
            // buffer (a lent frame must stay put until the next read).
            std::vector<uint8_t>& buffer = rx_->slots[copies++].buffer;
            std::swap(buffer, rx_->stash);
            rx_->stash_seq.reset();
            if (rx_->stash_len > buffer.size()) {
                ++rx_truncated_;  // longer than max_frame_len
            } else {
                whole = std::span<uint8_t>(buffer.data(), rx_->stash_len);
            }
        } else {
            rx_->stash_seq.reset();  // (a slot past it: cannot happen)
            whole = read_copy(copies++, header->tp_len, slot_frame_head(slot, ring_->slot_size, vnet));
        }
        if (whole) {
            ++rx_copied_;
            accept_frame(*whole, meta);
        }
        return;
    }
    if (header->tp_snaplen < header->tp_len) {
        // Longer than a slot, and no copy: the socket buffer was full (a
        // drop for want of room), unless the frame is too long anyway.
        if (header->tp_len + vnet > rx_->slots.front().buffer.size()) {
            ++rx_truncated_;
        } else {
            ++copy_drops_;
        }
        return;
    }
    if (!in_slot) {
        ++rx_filtered_;  // not what the kernel writes
        return;
    }
    accept_frame(std::span<uint8_t>(slot + header->tp_mac - vnet, header->tp_snaplen + vnet), meta);
}

// The kernel queues the copy in ring order (tpacket_rcv: under the queue's
// lock, as it moves its head), so the next one on the socket is this
// slot's — unless an earlier read gave up before it consumed its copy, or
// this one's copy is gone (read by someone else, or a kernel that breaks
// the order). Matched by length alone, every later copy would then go one
// frame behind: wrong frames delivered, and a leftover copy keeping the fd
// readable. So the copy must also start with the bytes the slot holds (the
// same skb's first tp_snaplen bytes; the slot's virtio-net header, written
// apart from the copy's, is not compared). One that does not is either a
// later slot's (one the kernel filled already, matched the same way): this
// frame's copy is gone, it is lost, and the copy is kept for its slot (so
// the queue is in step again, and no later slot loses its copy); or a
// leftover (or a later slot's the kernel is still filling, which then
// loses its frame): dropped, and the next one read, until the right one
// or EAGAIN (this frame lost). Reading until EAGAIN and dropping every
// copy instead would take later slots' copies too, and each of those
// slots would then do the same to copies queued meanwhile: under a steady
// stream of long frames the queue might never come back in step.
std::optional<std::span<uint8_t>> PacketDevice::read_copy(size_t index, uint32_t frame_len,
                                                          std::span<const uint8_t> head) {
    std::vector<uint8_t>& buffer = rx_->slots[index].buffer;
    const size_t vnet = vnet_header_ ? VirtioNetHdr::size : 0;
    const size_t expected = size_t{frame_len} + vnet;
    bool mismatched = false;
    // Errors that consume nothing (a pending socket error: ENETDOWN comes
    // before the frame, and reading it clears it) are read until the
    // frame or EAGAIN; a bound keeps a kernel that keeps failing from
    // holding us here.
    int errors = 0;
    while (errors < 16) {
        iovec iov{buffer.data(), buffer.size()};
        msghdr h{};
        h.msg_iov = &iov;
        h.msg_iovlen = 1;
        // MSG_TRUNC: the frame's whole length even when it does not fit.
        const ssize_t n = ::recvmsg(fd_, &h, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
            const int err = errno;
            if (err == EINTR) {
                continue;
            }
            if (err == EAGAIN || err == EWOULDBLOCK) {
                break;  // no copy (left) for this slot
            }
            ++errors;
            // EINVAL: the kernel could not describe the queued frame in a
            // virtio-net header and dropped it (not ours: it described
            // ours for the slot). Anything else: a socket error, taken.
            if (!(err == EINVAL && vnet_header_)) {
                last_error_ = err;
            }
            continue;
        }
        const size_t whole = static_cast<size_t>(n);
        const std::span<const uint8_t> copy(buffer.data(), std::min(whole, buffer.size()));
        if (whole == expected && copy.size() >= vnet + head.size() &&
            (head.empty() || std::memcmp(copy.data() + vnet, head.data(), head.size()) == 0)) {
            if (whole > buffer.size()) {
                ++rx_truncated_;  // longer than max_frame_len
                return std::nullopt;
            }
            return std::span<uint8_t>(buffer.data(), whole);
        }
        if (!mismatched) {
            mismatched = true;
            ++rx_copy_mismatches_;
        }
        if (const std::optional<uint64_t> later = later_slot_for_copy(copy, whole)) {
            const size_t size = buffer.size();
            std::swap(buffer, rx_->stash);
            buffer.resize(size);  // the first time: the stash was empty
            rx_->stash_len = whole;
            rx_->stash_seq = *later;
            break;
        }
    }
    ++rx_truncated_;  // lost: no copy of it on the socket
    return std::nullopt;
}

bool PacketDevice::fill_from_socket() {
    std::vector<RxBatch::Slot>& slots = rx_->slots;
    std::vector<mmsghdr>& messages = rx_->messages;
    for (size_t i = 0; i < slots.size(); ++i) {
        RxBatch::Slot& slot = slots[i];
        slot.iov = iovec{slot.buffer.data(), slot.buffer.size()};
        msghdr& h = messages[i].msg_hdr;
        h = msghdr{};
        h.msg_name = &slot.from;
        h.msg_namelen = sizeof slot.from;
        h.msg_iov = &slot.iov;
        h.msg_iovlen = 1;
        h.msg_control = slot.control;
        h.msg_controllen = sizeof slot.control;
    }
    int got = -1;
    do {
        got = ::recvmmsg(fd_, messages.data(), static_cast<unsigned>(messages.size()), MSG_DONTWAIT, nullptr);
    } while (got < 0 && errno == EINTR);
    if (got < 0 && errno == EINVAL && vnet_header_) {
        // virtio_net_hdr_from_skb() could not describe the first frame (a
        // GSO type other than TCP): the kernel dropped it. The rest waits
        // for the next poll (the fd stays readable); never spin here.
        ++rx_truncated_;
        return false;
    }
    if (got <= 0) {
        if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            last_error_ = errno;
        }
        return false;
    }
    for (int i = 0; i < got; ++i) {
        RxBatch::Slot& slot = slots[static_cast<size_t>(i)];
        const msghdr& h = messages[static_cast<size_t>(i)].msg_hdr;
        if ((h.msg_flags & MSG_TRUNC) != 0) {
            ++rx_truncated_;
            continue;
        }
        FrameMeta meta{slot.from.sll_pkttype, 0, 0};
        for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(const_cast<msghdr*>(&h), c)) {
            if (c->cmsg_level == SOL_PACKET && c->cmsg_type == PACKET_AUXDATA) {
                tpacket_auxdata aux;
                std::memcpy(&aux, CMSG_DATA(c), sizeof aux);
                meta.status = aux.tp_status;
                meta.vlan_tci = aux.tp_vlan_tci;
            }
        }
        accept_frame(std::span<uint8_t>(slot.buffer.data(), messages[static_cast<size_t>(i)].msg_len), meta);
    }
    return true;
}

void PacketDevice::accept_frame(std::span<uint8_t> data, const FrameMeta& meta) {
    // With PACKET_VNET_HDR the frame follows its virtio-net header.
    std::optional<VirtioNetHdr> vnet;
    size_t skip = 0;
    if (vnet_header_) {
        vnet = VirtioNetHdr::decode(data);
        if (!vnet) {
            ++rx_filtered_;
            return;
        }
        skip = VirtioNetHdr::size;
    }
    const std::span<uint8_t> bytes = data.subspan(skip);
    if (meta.pkttype == PACKET_OUTGOING || bytes.size() < ethernet_header_len) {
        ++rx_filtered_;
        return;
    }
    wire::MacAddress dst;
    std::copy_n(bytes.begin(), dst.bytes.size(), dst.bytes.begin());
    if (dst != mac_ && !dst.is_multicast()) {
        ++rx_filtered_;  // only if the BPF filter let it through (it should not)
        return;
    }
    // The kernel took the 802.1Q tag off; the stack has no VLANs and must
    // not mistake the frame for one of the untagged link. VLAN 0: a
    // priority tag only.
    if ((meta.status & TP_STATUS_VLAN_VALID) != 0 && (meta.vlan_tci & 0x0fff) != 0) {
        ++rx_filtered_;
        return;
    }
    RxFrame frame{bytes, RxChecksum::none, 0, 0};
    if (vnet && (vnet->is_gso() || vnet->needs_csum() || vnet->data_valid())) {
        const uint64_t before = stats_.rx_checksums_completed;
        frame = accept_offloaded(*vnet, bytes, stats_);
        if (stats_.rx_checksums_completed != before) {
            ++checksums_completed_;
        }
    } else if ((meta.status & TP_STATUS_CSUMNOTREADY) != 0 && complete_l4_checksum(bytes)) {
        // No virtio-net header (offloads off): completed and then
        // verified by the stack, as every frame without one.
        ++checksums_completed_;
        ++stats_.rx_checksums_completed;
    }
    ++stats_.rx_frames;
    stats_.rx_bytes += bytes.size();
    rx_queue_.push_back(frame);
}

}  // namespace ustack::netdev
