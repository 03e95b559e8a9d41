// PacketDevice's receive ring (PACKET_RX_RING) against the recvmmsg path
// it replaced, with offloads on and off: the same frames arrive, byte for
// byte and in order, including one longer than a ring slot (read whole from
// the socket queue); the same ones are filtered; the fd is readable exactly
// while frames wait; a full ring drops and counts in kernel_drops(). Raw
// frames come from a second AF_PACKET socket on the kernel's veth end.
// Runs in a private namespace.
#include <gtest/gtest.h>

#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <thread>

#include "netdev/af_packet.h"
#include "netdev/mac.h"
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
    void open_device(size_t ring_bytes = netdev::PacketOptions{}.rx_ring_bytes) {
        netdev::PacketOptions options;
        options.offloads = GetParam().offloads;
        options.rx_ring_bytes = GetParam().ring ? ring_bytes : 0;
        auto opened = netdev::PacketDevice::open(veth_stack_end, mac_, options);
        ASSERT_TRUE(opened) << opened.error().message;
        device_ = std::move(*opened);
        // This kernel (4.x and later) always takes the ring.
        ASSERT_EQ(device_->rx_ring(), GetParam().ring);
    }
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

    // Our own send is not read back.
    ASSERT_TRUE(device_->send(monotonic_now(), frame(device_->kernel_mac(), 80, 6)));
    device_->flush(monotonic_now());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    EXPECT_FALSE(device_->receive(monotonic_now()));
    EXPECT_FALSE(readable());
    EXPECT_EQ(device_->kernel_drops(), 0u);
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
    EXPECT_EQ(device_->rx_copied(), GetParam().ring ? 2u : 0u);
    EXPECT_EQ(device_->rx_truncated(), 0u);
    EXPECT_FALSE(readable());
}

// A ring of one block (a few slots) that nobody reads: the kernel drops
// the rest and says so; once read, the ring takes frames again.
TEST_P(AfPacketRingTest, FullRingDropsAndCounts) {
    if (!GetParam().ring) {
        GTEST_SKIP() << "the socket buffer's limit is the recvmmsg path's";
    }
    ASSERT_NO_FATAL_FAILURE(open_device(/*ring_bytes=*/1));  // one block
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
    EXPECT_EQ(got.front(), frame(mac_, 100, 0));  // the first ones fill the ring
    EXPECT_FALSE(readable());

    const std::vector<uint8_t> later = frame(mac_, 100, 99);
    ASSERT_NO_FATAL_FAILURE(send_raw(later));
    const std::vector<netdev::Frame> again = receive(1);
    ASSERT_EQ(again.size(), 1u);
    EXPECT_EQ(again[0], later);
}

INSTANTIATE_TEST_SUITE_P(AfPacket, AfPacketRingTest,
                         ::testing::Values(RingCase{true, true}, RingCase{true, false}, RingCase{false, true},
                                           RingCase{false, false}),
                         ring_case_name);

}  // namespace
}  // namespace ustack::testing
