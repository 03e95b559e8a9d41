// Opening TAP and AF_PACKET devices: what they learn from the interface, and
// each misconfiguration refused with a message that names the interface and
// the fix. Runs in a private namespace.
#include <gtest/gtest.h>

#include <linux/capability.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "netdev/af_packet.h"
#include "netdev/mac.h"
#include "netdev/tap.h"
#include "tests/interop/kernel_link.h"
#include "tests/support/netns.h"

namespace ustack::testing {
namespace {

// "haystack contains needle", printing both on failure.
::testing::AssertionResult contains(const std::string& haystack, const std::string& needle) {
    if (haystack.find(needle) != std::string::npos) {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure() << "\"" << haystack << "\" does not contain \"" << needle << "\"";
}

class DeviceOpen : public ::testing::Test {
protected:
    void SetUp() override {
        auto ns = PrivateNetns::enter();
        if (!ns) {
            GTEST_SKIP() << "no private network namespace: " << ns.error();
        }
        netns_ = std::move(*ns);
    }
    void TearDown() override { netns_.reset(); }

    void must_run(const std::vector<std::string>& argv) {
        const CommandResult r = netns_->run(argv);
        ASSERT_TRUE(r.ok()) << argv[0] << ": " << r.describe();
    }
    void make_veth(bool up) {
        must_run({"ip", "link", "add", veth_kernel_end, "type", "veth", "peer", "name", veth_stack_end});
        if (up) {
            must_run({"ip", "link", "set", veth_kernel_end, "up"});
            must_run({"ip", "link", "set", veth_stack_end, "up"});
        }
    }

    std::unique_ptr<PrivateNetns> netns_;
    const wire::MacAddress mac_ = netdev::random_local_mac();
};

TEST_F(DeviceOpen, MtuAndKernelMacComeFromTheInterface) {
    ASSERT_NO_FATAL_FAILURE(make_veth(/*up=*/true));
    ASSERT_NO_FATAL_FAILURE(must_run({"ip", "link", "set", veth_stack_end, "mtu", "9000"}));
    auto packet = netdev::PacketDevice::open(veth_stack_end, mac_);
    ASSERT_TRUE(packet) << packet.error().message;
    EXPECT_EQ((*packet)->mtu(), 9000u);
    EXPECT_EQ((*packet)->mac(), mac_);
    EXPECT_FALSE((*packet)->kernel_mac().is_zero());
    EXPECT_NE((*packet)->kernel_mac(), mac_);

    ASSERT_NO_FATAL_FAILURE(must_run({"ip", "tuntap", "add", "dev", "ustap1", "mode", "tap"}));
    ASSERT_NO_FATAL_FAILURE(must_run({"ip", "link", "set", "ustap1", "mtu", "1280"}));
    auto tap = netdev::TapDevice::open("ustap1");
    ASSERT_TRUE(tap) << tap.error().message;
    EXPECT_EQ((*tap)->mtu(), 1280u);
    // A generated MAC: unicast, locally administered, not the kernel's.
    EXPECT_EQ((*tap)->mac().bytes[0], 0x02);
    EXPECT_NE((*tap)->mac(), (*tap)->kernel_mac());
}

// A persistent TAP keeps the offloads its last user turned on. A reader
// without them must clear them, or the kernel goes on sending it partial
// checksums and 64 KiB super-frames (found as a hang: bench rr over the
// same TAP with --offload off after a run with offloads).
TEST_F(DeviceOpen, TapWithoutOffloadsClearsThoseAPreviousUserSet) {
    ASSERT_NO_FATAL_FAILURE(must_run({"ip", "tuntap", "add", "dev", "ustap4", "mode", "tap"}));
    auto tso = [&] {
        const CommandResult r = netns_->run({"ethtool", "-k", "ustap4"});
        EXPECT_TRUE(r.ok()) << r.describe();
        return r.out.find("tcp-segmentation-offload: on") != std::string::npos;
    };
    {
        auto with = netdev::TapDevice::open("ustap4");
        ASSERT_TRUE(with) << with.error().message;
        if (!tso()) {
            GTEST_SKIP() << "this kernel refused TUNSETOFFLOAD: nothing to clear";
        }
    }
    EXPECT_TRUE(tso()) << "the offloads outlive the fd on a persistent TAP";
    netdev::TapOptions plain;
    plain.offloads = false;
    auto without = netdev::TapDevice::open("ustap4", plain);
    ASSERT_TRUE(without) << without.error().message;
    EXPECT_FALSE(tso());
}

TEST_F(DeviceOpen, MissingInterface) {
    netdev::TapOptions no_create;
    no_create.create = false;
    auto tap = netdev::TapDevice::open("nosuch0", no_create);
    ASSERT_FALSE(tap);
    EXPECT_EQ(tap.error().error.value, ENODEV);
    EXPECT_TRUE(contains(tap.error().message, "no such interface 'nosuch0'"));

    auto packet = netdev::PacketDevice::open("nosuch0", mac_);
    ASSERT_FALSE(packet);
    EXPECT_EQ(packet.error().error.value, ENODEV);
    EXPECT_TRUE(contains(packet.error().message, "no such interface 'nosuch0'"));
}

TEST_F(DeviceOpen, BadInterfaceName) {
    auto packet = netdev::PacketDevice::open("a-name-far-too-long-for-ifnamsiz", mac_);
    ASSERT_FALSE(packet);
    EXPECT_EQ(packet.error().error.value, EINVAL);
}

TEST_F(DeviceOpen, InterfaceDown) {
    ASSERT_NO_FATAL_FAILURE(make_veth(/*up=*/false));
    auto packet = netdev::PacketDevice::open(veth_stack_end, mac_);
    ASSERT_FALSE(packet);
    EXPECT_EQ(packet.error().error.value, ENETDOWN);
    EXPECT_EQ(packet.error().message, std::string("interface uss0 is down: ip link set uss0 up"));

    // A persistent TAP that is down: refused when we may not bring it up...
    ASSERT_NO_FATAL_FAILURE(must_run({"ip", "tuntap", "add", "dev", "ustap1", "mode", "tap"}));
    netdev::TapOptions keep_down;
    keep_down.bring_up = false;
    auto tap = netdev::TapDevice::open("ustap1", keep_down);
    ASSERT_FALSE(tap);
    EXPECT_EQ(tap.error().error.value, ENETDOWN);
    EXPECT_EQ(tap.error().message, std::string("interface ustap1 is down: ip link set ustap1 up"));
    // ...and brought up by default, attaching to the existing TAP.
    auto attached = netdev::TapDevice::open("ustap1");
    ASSERT_TRUE(attached) << attached.error().message;
    EXPECT_FALSE((*attached)->created());
    EXPECT_GE((*attached)->mtu(), 1500u);
}

TEST_F(DeviceOpen, StackAddressAlreadyOnKernelSide) {
    ASSERT_NO_FATAL_FAILURE(make_veth(/*up=*/true));
    ASSERT_NO_FATAL_FAILURE(must_run({"ip", "addr", "add", "10.77.0.2/24", "dev", veth_stack_end}));
    netdev::PacketOptions options;
    options.stack_address = stack_addr;
    auto packet = netdev::PacketDevice::open(veth_stack_end, mac_, options);
    ASSERT_FALSE(packet);
    EXPECT_EQ(packet.error().error.value, EADDRINUSE);
    EXPECT_TRUE(contains(packet.error().message, "10.77.0.2"));
    EXPECT_TRUE(contains(packet.error().message, "uss0"));
    // The same address on the other end of the veth is not this device's.
    options.stack_address = wire::Ipv4Address(10, 77, 0, 3);
    EXPECT_TRUE(netdev::PacketDevice::open(veth_stack_end, mac_, options));

    ASSERT_NO_FATAL_FAILURE(must_run({"ip", "tuntap", "add", "dev", "ustap1", "mode", "tap"}));
    ASSERT_NO_FATAL_FAILURE(must_run({"ip", "addr", "add", "10.77.1.2/24", "dev", "ustap1"}));
    netdev::TapOptions tap_options;
    tap_options.stack_address = wire::Ipv4Address(10, 77, 1, 2);
    auto tap = netdev::TapDevice::open("ustap1", tap_options);
    ASSERT_FALSE(tap);
    EXPECT_EQ(tap.error().error.value, EADDRINUSE);
    EXPECT_TRUE(contains(tap.error().message, "address 10.77.1.2 is already configured on the kernel side of ustap1"));
}

TEST_F(DeviceOpen, NotATap) {
    ASSERT_NO_FATAL_FAILURE(make_veth(/*up=*/true));
    auto tap = netdev::TapDevice::open(veth_stack_end);
    ASSERT_FALSE(tap);
    EXPECT_EQ(tap.error().error.value, EINVAL);
    EXPECT_TRUE(contains(tap.error().message, "uss0 exists and is not a TAP device"));
}

TEST_F(DeviceOpen, TapInUse) {
    auto first = netdev::TapDevice::open("ustap2");
    ASSERT_TRUE(first) << first.error().message;
    auto second = netdev::TapDevice::open("ustap2");
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().error.value, EBUSY);
    EXPECT_TRUE(contains(second.error().message, "in use"));
}

// Opens both devices in a child process stripped of every capability and
// reports what it got: "<tap errno>|<tap message>|<packet errno>|<packet message>".
std::string open_without_capabilities() {
    int fds[2];
    if (::pipe(fds) < 0) {
        return "pipe failed";
    }
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::close(fds[0]);
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2] = {};
        std::string report;
        if (::syscall(SYS_capset, &header, data) != 0) {
            report = std::string("capset failed: ") + std::strerror(errno);
        } else {
            auto tap = netdev::TapDevice::open("ustap3");
            report += tap ? "0|opened" : std::to_string(tap.error().error.value) + "|" + tap.error().message;
            auto packet = netdev::PacketDevice::open(veth_stack_end, netdev::random_local_mac());
            report += "|";
            report += packet ? "0|opened" : std::to_string(packet.error().error.value) + "|" + packet.error().message;
        }
        const ssize_t ignored = ::write(fds[1], report.data(), report.size());
        (void)ignored;
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string report;
    char buf[1024];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) {
        report.append(buf, static_cast<size_t>(n));
    }
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    return report;
}

TEST_F(DeviceOpen, WithoutCapabilities) {
    ASSERT_NO_FATAL_FAILURE(make_veth(/*up=*/true));
    const std::string report = open_without_capabilities();
    EXPECT_TRUE(contains(report, std::to_string(EPERM) + "|need CAP_NET_ADMIN to create TAP ustap3"));
    EXPECT_TRUE(contains(report, std::to_string(EPERM) + "|need CAP_NET_RAW to open an AF_PACKET socket on uss0"));
}

}  // namespace
}  // namespace ustack::testing
