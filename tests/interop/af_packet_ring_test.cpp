// PacketDevice's receive ring (PACKET_RX_RING) against the recvmmsg path
// it replaced, with offloads on and off: the same frames arrive, byte for
// byte and in order, including one longer than a ring slot (read whole from
// the socket queue) and a kernel's UDP GSO super-frame; the same ones are
// filtered; the fd is readable exactly while frames wait, and not after
// the link went down and up again (the socket error taken); a full ring
// drops and counts in kernel_drops(); a copy out of step with the ring is
// never delivered for another frame; a ring rebuilt (by hand, or after
// the kernel wedged it with a frame it could not give a virtio-net
// header) receives again. Raw frames come from a second AF_PACKET socket
// on the kernel's veth end. Runs in a private namespace.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/udp.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "netdev/af_packet.h"
#include "netdev/mac.h"
#include "netdev/virtio_net_hdr.h"
#include "tests/interop/kernel_link.h"
#include "tests/support/netns.h"

namespace ustack::testing {
namespace {

struct RingCase {
    bool ring;
    bool offloads;
};

std::string ring_case_name(const ::testing::TestParamInfo<RingCase>& info) {
    return std::string(info.param.ring ? "Ring" : "Recvmmsg") + (info.param.offloads ? "Offloads" : "Plain");
}

// Whether this kernel gives a UDP GSO frame a virtio-net header (6.2+),
// and so lets PacketDevice use the ring with one.
bool kernel_describes_udp_gso() {
    utsname u{};
    return ::uname(&u) == 0 && netdev::ring_with_vnet_header_ok(u.release);
}

// A TAP interface (IFF_VNET_HDR) for the test to write frames into, as
// the kernel receiving them on a NIC: the AF_PACKET device under test sits
// on it instead of the veth.
class TestTap {
public:
    static constexpr const char* name = "usringtap0";
    TestTap() {
        fd_ = ::open("/dev/net/tun", O_RDWR | O_CLOEXEC);
        if (fd_ < 0) {
            return;
        }
        ifreq ifr{};
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        std::strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
        if (::ioctl(fd_, TUNSETIFF, &ifr) < 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~TestTap() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    TestTap(const TestTap&) = delete;
    TestTap& operator=(const TestTap&) = delete;
    bool ok() const { return fd_ >= 0; }
    // One frame into the kernel, after its virtio-net header.
    bool write(const netdev::VirtioNetHdr& header, const std::vector<uint8_t>& frame) const {
        std::vector<uint8_t> bytes(netdev::VirtioNetHdr::size + frame.size());
        header.encode(bytes);
        std::copy(frame.begin(), frame.end(), bytes.begin() + netdev::VirtioNetHdr::size);
        return ::write(fd_, bytes.data(), bytes.size()) == static_cast<ssize_t>(bytes.size());
    }

private:
    int fd_ = -1;
};

// An Ethernet + IPv4 + UDP frame to `dst` with `payload` bytes of pattern.
std::vector<uint8_t> udp_frame(wire::MacAddress dst, size_t payload, uint32_t seed) {
    std::vector<uint8_t> f(14 + 20 + 8 + payload);
    std::copy(dst.bytes.begin(), dst.bytes.end(), f.begin());
    const uint8_t src[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x09};
    std::copy(std::begin(src), std::end(src), f.begin() + 6);
    f[12] = 0x08;
    f[13] = 0x00;
    uint8_t* ip = f.data() + 14;
    const size_t ip_len = 20 + 8 + payload;
    ip[0] = 0x45;
    ip[2] = static_cast<uint8_t>(ip_len >> 8);
    ip[3] = static_cast<uint8_t>(ip_len);
    ip[8] = 64;
    ip[9] = 17;
    const uint8_t addrs[8] = {10, 99, 0, 1, 10, 99, 0, 2};
    std::copy(std::begin(addrs), std::end(addrs), ip + 12);
    uint8_t* udp = ip + 20;
    udp[0] = 0x04;  // port 1234
    udp[1] = 0xd2;
    udp[3] = 9;  // discard
    udp[4] = static_cast<uint8_t>((8 + payload) >> 8);
    udp[5] = static_cast<uint8_t>(8 + payload);
    const std::vector<uint8_t> data = pattern_bytes(seed, payload);
    std::copy(data.begin(), data.end(), udp + 8);
    return f;
}

class AfPacketRingTest : public ::testing::TestWithParam<RingCase> {
protected:
    void SetUp() override {
        auto ns = PrivateNetns::enter();
        if (!ns) {
            GTEST_SKIP() << "no private network namespace: " << ns.error();
        }
        netns_ = std::move(*ns);
        // No IPv6 on the link: its router and multicast listener
        // solicitations would come in among the test's frames. /proc/sys/net
        // belongs to the namespace of the thread that opens it.
        for (const char* conf : {"all", "default"}) {
            std::ofstream(std::string("/proc/sys/net/ipv6/conf/") + conf + "/disable_ipv6") << "1\n";
        }
        must_run({"ip", "link", "add", veth_kernel_end, "type", "veth", "peer", "name", veth_stack_end});
        must_run({"ip", "link", "set", veth_kernel_end, "up"});
        must_run({"ip", "link", "set", veth_stack_end, "up"});
        sender_ = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        ASSERT_GE(sender_, 0) << std::strerror(errno);
        kernel_ifindex_ = static_cast<int>(::if_nametoindex(veth_kernel_end));
        ASSERT_GT(kernel_ifindex_, 0);
    }
    void TearDown() override {
        device_.reset();
        if (sender_ >= 0) {
            ::close(sender_);
        }
        netns_.reset();
    }

    void must_run(const std::vector<std::string>& argv) {
        const CommandResult r = netns_->run(argv);
        ASSERT_TRUE(r.ok()) << argv[0] << ": " << r.describe();
    }
    void open_device(size_t ring_bytes = netdev::PacketOptions{}.rx_ring_bytes,
                     const char* ifname = veth_stack_end) {
        netdev::PacketOptions options;
        options.offloads = GetParam().offloads;
        options.rx_ring_bytes = GetParam().ring ? ring_bytes : 0;
        auto opened = netdev::PacketDevice::open(ifname, mac_, options);
        ASSERT_TRUE(opened) << opened.error().message;
        device_ = std::move(*opened);
        // This kernel (4.x and later) always takes the ring, but not with
        // a virtio-net header before 6.2 (PacketDevice refuses: see
        // af_packet.h).
        ASSERT_EQ(device_->vnet_header(), GetParam().offloads);
        ASSERT_EQ(device_->rx_ring(), GetParam().ring && (!GetParam().offloads || kernel_describes_udp_gso()));
    }
    // Whether frames come through the ring in this case.
    bool ring() const { return device_->rx_ring(); }
    // An Ethernet frame of `size` bytes to `dst` from the kernel's end,
    // optionally with an 802.1Q tag (VLAN `vid`) after the addresses.
    std::vector<uint8_t> frame(wire::MacAddress dst, size_t size, uint32_t seed, uint16_t vid = 0) const {
        std::vector<uint8_t> f = pattern_bytes(seed, size);
        std::copy(dst.bytes.begin(), dst.bytes.end(), f.begin());
        const wire::MacAddress src{{0x02, 0x00, 0x00, 0x00, 0x00, 0x09}};
        std::copy(src.bytes.begin(), src.bytes.end(), f.begin() + 6);
        size_t type_at = 12;
        if (vid != 0) {
            f[12] = 0x81;
            f[13] = 0x00;
            f[14] = static_cast<uint8_t>(vid >> 8);
            f[15] = static_cast<uint8_t>(vid & 0xff);
            type_at = 16;
        }
        f[type_at] = 0x88;  // 0x88b5: IEEE local experimental, nothing in the stack's way
        f[type_at + 1] = 0xb5;
        return f;
    }
    void send_raw(const std::vector<uint8_t>& f) {
        sockaddr_ll to{};
        to.sll_family = AF_PACKET;
        to.sll_ifindex = kernel_ifindex_;
        to.sll_halen = 6;
        std::copy_n(f.begin(), 6, to.sll_addr);
        ASSERT_EQ(::sendto(sender_, f.data(), f.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to),
                  static_cast<ssize_t>(f.size()))
            << std::strerror(errno);
    }
    bool readable(int timeout_ms = 0) const {
        pollfd p{device_->poll_fd(), POLLIN, 0};
        return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
    }
    // Everything received until `count` frames or two seconds.
    std::vector<netdev::Frame> receive(size_t count) {
        std::vector<netdev::Frame> got;
        const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (got.size() < count && std::chrono::steady_clock::now() < until) {
            (void)readable(50);
            while (auto f = device_->receive(monotonic_now())) {
                got.push_back(std::move(*f));
            }
        }
        return got;
    }

    std::unique_ptr<PrivateNetns> netns_;
    const wire::MacAddress mac_ = netdev::random_local_mac();
    std::unique_ptr<netdev::PacketDevice> device_;
    int sender_ = -1;
    int kernel_ifindex_ = 0;
};

TEST_P(AfPacketRingTest, SameFramesArriveAndSameOnesAreFiltered) {
    ASSERT_NO_FATAL_FAILURE(open_device());
    EXPECT_FALSE(readable());
    EXPECT_FALSE(device_->receive(monotonic_now()));

    const wire::MacAddress broadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};
    const wire::MacAddress stranger{{0x02, 0x00, 0x00, 0x00, 0x00, 0x77}};
    const std::vector<uint8_t> small = frame(mac_, 60, 1);
    const std::vector<uint8_t> full = frame(mac_, 1514, 2);
    const std::vector<uint8_t> to_all = frame(broadcast, 100, 3);
    for (const auto& f : {small, frame(stranger, 100, 4), full, frame(mac_, 200, 5, /*vid=*/5), to_all}) {
        ASSERT_NO_FATAL_FAILURE(send_raw(f));
    }
    EXPECT_TRUE(readable(1000));
    const std::vector<netdev::Frame> got = receive(3);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], small);
    EXPECT_EQ(got[1], full);
    EXPECT_EQ(got[2], to_all);
    EXPECT_EQ(device_->rx_filtered(), 1u);  // the tagged one (the stranger never passes the BPF filter)
    EXPECT_EQ(device_->stats().rx_frames, 3u);
    EXPECT_EQ(device_->rx_copied(), 0u);
    // Drained: every slot given back, nothing to wake epoll for.
    EXPECT_FALSE(readable());

    // Our own send is not read back: to broadcast, which the BPF filter
    // lets through, so only PACKET_IGNORE_OUTGOING (or, without it, the
    // PACKET_OUTGOING check) keeps it out.
    const uint64_t filtered = device_->rx_filtered();
    ASSERT_TRUE(device_->send(monotonic_now(), frame(broadcast, 80, 6)));
    device_->flush(monotonic_now());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(device_->receive(monotonic_now()));
    EXPECT_FALSE(readable());
    if (device_->ignores_outgoing()) {
        EXPECT_EQ(device_->rx_filtered(), filtered);  // the kernel never handed it over
    }
    EXPECT_EQ(device_->stats().rx_frames, 3u);
    EXPECT_EQ(device_->kernel_drops(), 0u);
    EXPECT_EQ(device_->rx_ring_rebuilds(), 0u);
    EXPECT_EQ(device_->rx_copy_mismatches(), 0u);
}

// A frame longer than the ring's slots (sized for the MTU at open time):
// the ring holds its head only, the socket queue the whole, in ring order.
TEST_P(AfPacketRingTest, FrameLongerThanASlotArrivesWholeInOrder) {
    ASSERT_NO_FATAL_FAILURE(open_device());
    must_run({"ip", "link", "set", veth_kernel_end, "mtu", "9000"});
    must_run({"ip", "link", "set", veth_stack_end, "mtu", "9000"});
    const std::vector<uint8_t> before = frame(mac_, 70, 1);
    const std::vector<uint8_t> jumbo = frame(mac_, 9014, 2);
    const std::vector<uint8_t> after = frame(mac_, 1514, 3);
    for (const auto& f : {before, jumbo, after, jumbo}) {
        ASSERT_NO_FATAL_FAILURE(send_raw(f));
    }
    const std::vector<netdev::Frame> got = receive(4);
    ASSERT_EQ(got.size(), 4u) << "rx_truncated " << device_->rx_truncated();
    EXPECT_EQ(got[0], before);
    EXPECT_EQ(got[1], jumbo);
    EXPECT_EQ(got[2], after);
    EXPECT_EQ(got[3], jumbo);
    EXPECT_EQ(device_->rx_copied(), ring() ? 2u : 0u);
    EXPECT_EQ(device_->rx_truncated(), 0u);
    EXPECT_EQ(device_->rx_copy_mismatches(), 0u);
    EXPECT_FALSE(readable());
}

// Long frames of the same length whose first copies are taken off the
// socket behind the device's back: matched by length, each later frame
// would be delivered for the one before (and every long frame after, one
// behind). They are not: the frames whose copies are gone are lost, the
// copy read for the first of them is kept for its own slot, and the frames
// after come in step. Once with one copy gone, once with two (the slot
// between then knows its copy is gone without reading).
TEST_P(AfPacketRingTest, CopyOutOfStepIsNeverDeliveredForAnotherFrame) {
    ASSERT_NO_FATAL_FAILURE(open_device());
    if (!ring()) {
        GTEST_SKIP() << "copies exist with the ring only";
    }
    must_run({"ip", "link", "set", veth_kernel_end, "mtu", "9000"});
    must_run({"ip", "link", "set", veth_stack_end, "mtu", "9000"});
    const size_t copy_len = 9014 + (device_->vnet_header() ? netdev::VirtioNetHdr::size : 0);
    uint32_t seed = 1;
    uint64_t lost = 0;
    for (size_t stolen : {1u, 2u}) {
        SCOPED_TRACE(stolen);
        std::vector<std::vector<uint8_t>> frames;
        for (size_t i = 0; i < stolen + 2; ++i) {
            frames.push_back(frame(mac_, 9014, seed++));
            ASSERT_NO_FATAL_FAILURE(send_raw(frames.back()));
        }
        ASSERT_TRUE(readable(1000));
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::vector<uint8_t> buffer(copy_len + 64);
        for (size_t i = 0; i < stolen; ++i) {
            ASSERT_EQ(::recv(device_->poll_fd(), buffer.data(), buffer.size(), MSG_DONTWAIT),
                      static_cast<ssize_t>(copy_len));
        }
        const std::vector<netdev::Frame> got = receive(2);
        ASSERT_EQ(got.size(), 2u);
        EXPECT_EQ(got[0], frames[stolen]);
        EXPECT_EQ(got[1], frames[stolen + 1]);
        lost += stolen;
        EXPECT_EQ(device_->rx_truncated(), lost);
        EXPECT_FALSE(readable());  // no copy left behind
    }
    EXPECT_EQ(device_->rx_copy_mismatches(), 2u);
    EXPECT_EQ(device_->rx_copied(), 4u);

    const std::vector<uint8_t> longer = frame(mac_, 9014, seed++);
    const std::vector<uint8_t> small = frame(mac_, 60, seed++);
    ASSERT_NO_FATAL_FAILURE(send_raw(longer));
    ASSERT_NO_FATAL_FAILURE(send_raw(small));
    const std::vector<netdev::Frame> again = receive(2);
    ASSERT_EQ(again.size(), 2u);
    EXPECT_EQ(again[0], longer);
    EXPECT_EQ(again[1], small);
    EXPECT_EQ(device_->rx_copy_mismatches(), 2u);
    EXPECT_EQ(device_->rx_truncated(), lost);
    EXPECT_EQ(device_->rx_copied(), 5u);
    EXPECT_FALSE(readable());
}

// A real GSO super-frame: the kernel's UDP socket with UDP_SEGMENT sends
// one 8 000-byte datagram as one skb (veth passes UDP GSO whole), to an
// address whose neighbour entry is our MAC. Longer than a slot, it comes
// whole through the copy path; with offloads, with its GSO virtio-net
// header (UDP_L4), which kernels before 6.2 cannot write (the ring would
// wedge on it there, so the device uses recvmmsg, which drops it alone).
TEST_P(AfPacketRingTest, KernelUdpGsoSuperFrameArrivesWhole) {
    ASSERT_NO_FATAL_FAILURE(open_device());
    if (GetParam().offloads && !kernel_describes_udp_gso()) {
        GTEST_SKIP() << "this kernel gives UDP GSO no virtio-net header (before 6.2)";
    }
    must_run({"ip", "addr", "add", "10.99.0.1/24", "dev", veth_kernel_end});
    must_run({"ip", "neigh", "replace", "10.99.0.2", "lladdr", mac_.to_string(), "dev", veth_kernel_end, "nud",
              "permanent"});
    const int udp = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(udp, 0) << std::strerror(errno);
    const int segment = 1000;
    if (::setsockopt(udp, IPPROTO_UDP, UDP_SEGMENT, &segment, sizeof segment) < 0) {
        ::close(udp);
        GTEST_SKIP() << "no UDP_SEGMENT: " << std::strerror(errno);
    }
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(9);
    to.sin_addr.s_addr = htonl(0x0a630002);  // 10.99.0.2
    const std::vector<uint8_t> payload = pattern_bytes(7, 8000);
    const ssize_t sent =
        ::sendto(udp, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
    const int send_errno = errno;
    ::close(udp);
    ASSERT_EQ(sent, static_cast<ssize_t>(payload.size())) << std::strerror(send_errno);

    const std::vector<netdev::Frame> got = receive(1);
    ASSERT_EQ(got.size(), 1u) << "rx_truncated " << device_->rx_truncated() << ", kernel_drops "
                              << device_->kernel_drops();
    const netdev::Frame& f = got[0];
    ASSERT_EQ(f.size(), 14u + 20 + 8 + payload.size());
    EXPECT_EQ(f[23], 17);  // UDP
    EXPECT_TRUE(std::equal(payload.begin(), payload.end(), f.begin() + 42));
    EXPECT_EQ(device_->rx_copied(), ring() ? 1u : 0u);
    if (device_->vnet_header()) {
        EXPECT_EQ(device_->stats().rx_gso_frames, 1u);
    }
    EXPECT_EQ(device_->rx_copy_mismatches(), 0u);
    EXPECT_FALSE(readable());
}

// The link goes down and up: the kernel sets the socket's error
// (ENETDOWN), which polls as POLLERR until something reads it — the ring
// reads nothing by itself. The host calls take_poll_error() on EPOLLERR;
// after that and a drain the fd is quiet, and frames arrive again.
TEST_P(AfPacketRingTest, LinkDownAndUpLeavesNoErrorBehind) {
    ASSERT_NO_FATAL_FAILURE(open_device());
    must_run({"ip", "link", "set", veth_stack_end, "down"});
    must_run({"ip", "link", "set", veth_stack_end, "up"});
    pollfd p{device_->poll_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 1000), 1);
    EXPECT_NE(p.revents & POLLERR, 0);
    // What the host's loop does with the event.
    for (int round = 0; round < 3; ++round) {
        p.revents = 0;
        if (::poll(&p, 1, 0) == 0) {
            break;
        }
        if ((p.revents & POLLERR) != 0) {
            device_->take_poll_error();
        }
        while (device_->receive(monotonic_now())) {
        }
    }
    p.revents = 0;
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "revents " << p.revents;
    EXPECT_EQ(device_->last_error(), ENETDOWN);

    const std::vector<uint8_t> later = frame(mac_, 100, 1);
    ASSERT_NO_FATAL_FAILURE(send_raw(later));
    const std::vector<netdev::Frame> got = receive(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], later);
    p.revents = 0;
    EXPECT_EQ(::poll(&p, 1, 0), 0) << "revents " << p.revents;
}

// rebuild_rx_ring() by hand: a frame that waited in the old ring is lost
// with it, frames after it arrive (short and longer than a slot), in order.
TEST_P(AfPacketRingTest, RebuiltRingReceivesAgain) {
    ASSERT_NO_FATAL_FAILURE(open_device());
    if (!ring()) {
        EXPECT_FALSE(device_->rebuild_rx_ring());
        GTEST_SKIP() << "no ring to rebuild";
    }
    must_run({"ip", "link", "set", veth_kernel_end, "mtu", "9000"});
    must_run({"ip", "link", "set", veth_stack_end, "mtu", "9000"});
    const std::vector<uint8_t> before = frame(mac_, 100, 1);
    ASSERT_NO_FATAL_FAILURE(send_raw(before));
    std::vector<netdev::Frame> got = receive(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], before);

    const std::vector<uint8_t> lost = frame(mac_, 9014, 2);
    ASSERT_NO_FATAL_FAILURE(send_raw(lost));
    ASSERT_TRUE(readable(1000));
    ASSERT_TRUE(device_->rebuild_rx_ring()) << std::strerror(device_->last_error());
    EXPECT_EQ(device_->rx_ring_rebuilds(), 1u);
    EXPECT_TRUE(device_->rx_ring());
    EXPECT_FALSE(readable());  // the old ring's frame and its copy are gone

    const std::vector<uint8_t> short_one = frame(mac_, 60, 3);
    const std::vector<uint8_t> long_one = frame(mac_, 9014, 4);
    for (const auto& f : {short_one, long_one, short_one}) {
        ASSERT_NO_FATAL_FAILURE(send_raw(f));
    }
    got = receive(3);
    ASSERT_EQ(got.size(), 3u);
    EXPECT_EQ(got[0], short_one);
    EXPECT_EQ(got[1], long_one);
    EXPECT_EQ(got[2], short_one);
    EXPECT_EQ(device_->rx_copied(), 1u);
    EXPECT_EQ(device_->rx_copy_mismatches(), 0u);
    EXPECT_FALSE(readable());
}

// A real wedge: a UFO frame (VIRTIO_NET_HDR_GSO_UDP) written into a TAP
// reaches the AF_PACKET socket on it as an SKB_GSO_UDP skb, which
// virtio_net_hdr_from_skb() cannot describe on any kernel: tpacket_rcv()
// claims the slot, drops the frame and never frees the slot, so every
// later frame is dropped too. The device notices (drops, no slot filled,
// a look that finds nothing at least ring_check_interval after the last
// check) and rebuilds the ring; frames then arrive again.
TEST_P(AfPacketRingTest, WedgedRingIsRebuilt) {
    if (!GetParam().ring || !GetParam().offloads) {
        GTEST_SKIP() << "only the ring with a virtio-net header wedges";
    }
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
        GTEST_SKIP() << "/dev/net/tun is not available";
    }
    TestTap tap;
    ASSERT_TRUE(tap.ok()) << std::strerror(errno);
    must_run({"ip", "link", "set", TestTap::name, "up"});
    ASSERT_NO_FATAL_FAILURE(open_device(netdev::PacketOptions{}.rx_ring_bytes, TestTap::name));
    if (!ring()) {
        GTEST_SKIP() << "no ring with a virtio-net header on this kernel";
    }
    const netdev::VirtioNetHdr plain{};
    const std::vector<uint8_t> first = frame(mac_, 100, 1);
    ASSERT_TRUE(tap.write(plain, first)) << std::strerror(errno);
    std::vector<netdev::Frame> got = receive(1);
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], first);

    // The frame the kernel cannot describe, then one it could.
    netdev::VirtioNetHdr ufo;
    ufo.flags = netdev::VirtioNetHdr::flag_needs_csum;
    ufo.gso_type = netdev::VirtioNetHdr::gso_udp;
    ufo.hdr_len = 42;
    ufo.gso_size = 1000;
    ufo.csum_start = 34;
    ufo.csum_offset = 6;
    ASSERT_TRUE(tap.write(ufo, udp_frame(mac_, 3000, 2))) << std::strerror(errno);
    ASSERT_TRUE(tap.write(plain, frame(mac_, 100, 3))) << std::strerror(errno);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    // Wedged: nothing readable, nothing received, only drops.
    EXPECT_FALSE(readable());
    Instant t = monotonic_now();
    EXPECT_FALSE(device_->receive(t));
    EXPECT_GE(device_->kernel_drops(), 2u);
    EXPECT_EQ(device_->stats().rx_frames, 1u);

    // Looks within ring_check_interval of the last check do nothing; one
    // after it rebuilds (the first look after the first frame checked
    // already, at most a few ms ago).
    for (int i = 0; i < 4 && device_->rx_ring_rebuilds() == 0; ++i) {
        t += Duration::from_millis(250);
        EXPECT_FALSE(device_->receive(t));
    }
    EXPECT_EQ(device_->rx_ring_rebuilds(), 1u);
    EXPECT_TRUE(device_->rx_ring());

    const std::vector<uint8_t> after = frame(mac_, 100, 4);
    ASSERT_TRUE(tap.write(plain, after)) << std::strerror(errno);
    ASSERT_TRUE(readable(1000));
    got.clear();
    while (auto f = device_->receive(t)) {
        got.push_back(std::move(*f));
    }
    ASSERT_EQ(got.size(), 1u);
    EXPECT_EQ(got[0], after);
    EXPECT_FALSE(readable());
    EXPECT_EQ(device_->rx_ring_rebuilds(), 1u);
}

// A ring of one block (a few slots) that nobody reads: the kernel drops
// the rest and says so; once read, the ring takes frames again.
TEST_P(AfPacketRingTest, FullRingDropsAndCounts) {
    if (!GetParam().ring) {
        GTEST_SKIP() << "the socket buffer's limit is the recvmmsg path's";
    }
    ASSERT_NO_FATAL_FAILURE(open_device(/*ring_bytes=*/1));  // one block
    if (!ring()) {
        GTEST_SKIP() << "no ring with a virtio-net header on this kernel";
    }
    constexpr size_t sent = 40;
    for (size_t i = 0; i < sent; ++i) {
        ASSERT_NO_FATAL_FAILURE(send_raw(frame(mac_, 100, static_cast<uint32_t>(i))));
    }
    uint64_t drops = 0;
    for (int i = 0; i < 100 && drops == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        drops = device_->kernel_drops();
    }
    ASSERT_GT(drops, 0u);
    ASSERT_LT(drops, sent);
    const std::vector<netdev::Frame> got = receive(sent - drops);
    EXPECT_EQ(got.size() + device_->kernel_drops(), sent);
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got.front(), frame(mac_, 100, 0));  // the first ones fill the ring
    EXPECT_FALSE(readable());
    // Drops with slots taken since: a full ring, not a wedged one.
    EXPECT_EQ(device_->rx_ring_rebuilds(), 0u);

    const std::vector<uint8_t> later = frame(mac_, 100, 99);
    ASSERT_NO_FATAL_FAILURE(send_raw(later));
    const std::vector<netdev::Frame> again = receive(1);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0], later);
    EXPECT_EQ(device_->rx_ring_rebuilds(), 0u);
}

TEST(AfPacketRingKernelRelease, RingWithVnetHeaderFromLinux6Point2) {
    EXPECT_FALSE(netdev::ring_with_vnet_header_ok("6.1.0-18-amd64"));  // Debian 12
    EXPECT_FALSE(netdev::ring_with_vnet_header_ok("5.10.0-28-amd64"));
    EXPECT_FALSE(netdev::ring_with_vnet_header_ok("4.19.0"));
    EXPECT_TRUE(netdev::ring_with_vnet_header_ok("6.2.0"));
    EXPECT_TRUE(netdev::ring_with_vnet_header_ok("6.12.9+bpo-amd64"));
    EXPECT_TRUE(netdev::ring_with_vnet_header_ok("6.18.44-fc-v1272"));
    EXPECT_TRUE(netdev::ring_with_vnet_header_ok("7.0-rc1"));
    EXPECT_FALSE(netdev::ring_with_vnet_header_ok(""));
    EXPECT_FALSE(netdev::ring_with_vnet_header_ok("6"));
    EXPECT_FALSE(netdev::ring_with_vnet_header_ok("6."));
    EXPECT_FALSE(netdev::ring_with_vnet_header_ok("linux"));
}

INSTANTIATE_TEST_SUITE_P(AfPacket, AfPacketRingTest,
                         ::testing::Values(RingCase{true, true}, RingCase{true, false}, RingCase{false, true},
                                           RingCase{false, false}),
                         ring_case_name);

}  // namespace
}  // namespace ustack::testing
