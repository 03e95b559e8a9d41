#include "tests/interop/kernel_link.h"

#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>

#include "netdev/mac.h"
#include "netdev/pcap_writer.h"

namespace ustack::testing {

std::string link_kind_name(const ::testing::TestParamInfo<LinkKind>& info) {
    return info.param == LinkKind::Tap ? "Tap" : "AfPacket";
}

std::vector<uint8_t> pattern_bytes(uint32_t seed, size_t size) {
    std::vector<uint8_t> v(size);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < size; ++i) {
        x = x * 1103515245u + 12345u;
        // Printable, so that socat's output reads well in a failure message.
        v[i] = static_cast<uint8_t>('A' + (x >> 16) % 26);
    }
    return v;
}

std::string as_string(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

void KernelLinkTest::start_link(std::optional<std::string> pcap_path) {
    LinkSetup setup;
    setup.pcap_path = std::move(pcap_path);
    start_link(setup);
}

void KernelLinkTest::start_link(const LinkSetup& setup) {
    auto ns = PrivateNetns::enter();
    if (!ns) {
        GTEST_SKIP() << "no private network namespace: " << ns.error();
    }
    netns_ = std::move(*ns);
    ASSERT_TRUE(netns_->inside());
    if (setup.kernel_arp_accept) {
        // /proc/sys/net belongs to the namespace of the thread that opens it.
        for (const char* conf : {"all", "default"}) {
            std::ofstream sysctl(std::string("/proc/sys/net/ipv4/conf/") + conf + "/arp_accept");
            sysctl << "1\n";
            sysctl.close();
            ASSERT_TRUE(sysctl) << "cannot set net.ipv4.conf." << conf << ".arp_accept";
        }
    }

    netdev::DeviceResult<std::unique_ptr<netdev::NetDev>> opened = std::unique_ptr<netdev::NetDev>();
    if (GetParam() == LinkKind::Tap) {
        if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
            GTEST_SKIP() << "/dev/net/tun is not available (modprobe tun)";
        }
        netdev::TapOptions options;
        options.stack_address = stack_addr;
        options.mac = netdev::random_local_mac(random_);
        options.offloads = setup.device_offloads;
        auto tap = netdev::TapDevice::open(tap_name, options);
        ASSERT_TRUE(tap) << tap.error().message;
        tap_ = tap->get();
        EXPECT_TRUE(tap_->created());
        EXPECT_NE(tap_->mac(), tap_->kernel_mac());
        device_ = std::move(*tap);
        must_run({"ip", "addr", "add", kernel_addr.to_string() + "/24", "dev", tap_name});
        // The frames the kernel queues for us while the stack is busy: the
        // default 1000 overflows in bursts of a large window under load.
        must_run({"ip", "link", "set", tap_name, "txqueuelen", "4096"});
    } else {
        must_run({"ip", "link", "add", veth_kernel_end, "type", "veth", "peer", "name", veth_stack_end});
        must_run({"ip", "addr", "add", kernel_addr.to_string() + "/24", "dev", veth_kernel_end});
        must_run({"ip", "link", "set", veth_kernel_end, "up"});
        must_run({"ip", "link", "set", veth_stack_end, "up"});
        netdev::PacketOptions options;
        options.stack_address = stack_addr;
        options.offloads = setup.device_offloads;
        auto packet = netdev::PacketDevice::open(veth_stack_end, netdev::random_local_mac(random_), options);
        ASSERT_TRUE(packet) << packet.error().message;
        packet_ = packet->get();
        EXPECT_NE(packet_->mac(), packet_->kernel_mac());
        device_ = std::move(*packet);
    }
    if (HasFatalFailure()) {
        return;
    }
    if (setup.kernel_offloads_off) {
        if (!have_program("ethtool")) {
            GTEST_SKIP() << "ethtool not installed (Debian package ethtool)";
        }
        must_run({"ethtool", "-K", kernel_ifname(), "tso", "off", "gso", "off", "gro", "off"});
        if (HasFatalFailure()) {
            return;
        }
    }
    // The capture sits next to the stack, outside the impairment: it shows
    // what the stack really sent and received.
    if (setup.impairment) {
        auto link = std::make_unique<netdev::ImpairedLink>(std::move(device_), *setup.impairment,
                                                           setup.impairment_seed);
        impaired_ = link.get();
        device_ = std::move(link);
    }
    if (setup.pcap_path) {
        auto writer = netdev::PcapWriter::open(std::move(device_), *setup.pcap_path);
        ASSERT_TRUE(writer) << "pcap " << *setup.pcap_path << ": errno " << writer.error().value;
        device_ = std::move(*writer);
    }
    StackConfig config;
    config.address = wire::Ipv4Cidr{stack_addr, 24};
    ASSERT_FALSE(config.validate());
    stack_ = std::make_unique<Stack>(config, *device_, random_);
    if (setup.tcp) {
        tcp_ = std::make_unique<tcp::TcpTransport>(*stack_, tcp::TcpConfig{}, tcp_random_);
        stack_->attach_tcp(tcp_.get());
    }
    loop_ = std::make_unique<RealtimeLoop>(*stack_, *device_);
    stack_->announce(monotonic_now());
}

void KernelLinkTest::TearDown() {
    if (stack_ && (HasFailure() || std::getenv("USTACK_INTEROP_VERBOSE") != nullptr)) {
        std::cerr << "[" << ::testing::UnitTest::GetInstance()->current_test_info()->name() << "] "
                  << describe_state() << "\n";
    }
    // The stack before its device, the device before the namespace.
    close_stack();
    netns_.reset();
}

void KernelLinkTest::close_stack() {
    loop_.reset();
    if (tcp_) {
        stack_->attach_tcp(nullptr);
        tcp_.reset();
    }
    stack_.reset();
    device_.reset();
    tap_ = nullptr;
    packet_ = nullptr;
    impaired_ = nullptr;
}

void KernelLinkTest::must_run(const std::vector<std::string>& argv) {
    const CommandResult r = netns_->run(argv);
    std::string command;
    for (const auto& a : argv) {
        command += a + " ";
    }
    ASSERT_TRUE(r.ok()) << command << ": " << r.describe();
}

bool KernelLinkTest::run_until(const std::function<bool()>& done, Duration limit) {
    return loop_->run_for(limit, done);
}

CommandResult KernelLinkTest::finish(Subprocess& process, Duration limit) {
    loop_->run_for(limit, [&] { return process.poll_exit().has_value(); });
    return process.wait(Duration::from_millis(100));
}

std::string KernelLinkTest::kernel_interface_counters() const {
    // /proc/thread-self/net/dev is this thread's namespace (sysfs would
    // show the namespace it was mounted in).
    std::ifstream dev("/proc/thread-self/net/dev");
    const std::string name = std::string(kernel_ifname()) + ":";
    for (std::string line; std::getline(dev, line);) {
        std::istringstream fields(line);
        std::string ifname;
        fields >> ifname;
        if (ifname != name) {
            continue;
        }
        uint64_t v[16] = {};
        for (uint64_t& x : v) {
            fields >> x;
        }
        std::ostringstream out;
        out << kernel_ifname() << ": rx " << v[1] << " frames, " << v[3] << " dropped; tx " << v[9] << " frames, "
            << v[11] << " dropped";
        return out.str();
    }
    return std::string(kernel_ifname()) + ": no counters";
}

std::string KernelLinkTest::describe_state() const {
    std::ostringstream out;
    out << "stack counters:";
    stack_->counters().for_each([&](std::string_view name, uint64_t value) {
        if (value != 0) {
            out << " " << name << "=" << value;
        }
    });
    const netdev::DeviceStats& s = device_->stats();
    out << "; device rx " << s.rx_frames << " frames, tx " << s.tx_frames << " frames, tx_dropped " << s.tx_dropped
        << ", tx_gso " << s.tx_gso_frames << ", rx_gso " << s.rx_gso_frames << ", rx_csum_completed "
        << s.rx_checksums_completed << ", rx_csum_trusted " << s.rx_checksums_trusted;
    out << "; kernel side " << kernel_interface_counters();
    if (tcp_) {
        out << "; tcp counters:";
        const tcp::TcpCounters& c = tcp_->engine().counters();
        c.for_each([&](std::string_view name, std::string_view, uint64_t value) {
            if (value != 0) {
                out << " " << name << "=" << value;
            }
        });
        const tcp::TcpTransportCounters& t = tcp_->counters();
        out << " malformed=" << t.malformed << " bad_checksum=" << t.bad_checksum
            << " send_errors=" << t.send_errors;
    }
    if (impaired_ != nullptr) {
        const netdev::FaultStats& in = impaired_->ingress_stats();
        const netdev::EgressFaultStats& eg = impaired_->egress_stats();
        out << "; impairment in: " << in.frames_in << " frames, dropped " << in.dropped << ", duplicated "
            << in.duplicated << ", reordered " << in.reordered << "; out: " << eg.frames_in << " frames, dropped "
            << eg.dropped << ", duplicated " << eg.duplicated << ", reordered " << eg.reordered;
    }
    if (packet_ != nullptr) {
        out << "; af_packet checksums_completed=" << packet_->checksums_completed()
            << " rx_filtered=" << packet_->rx_filtered() << " rx_truncated=" << packet_->rx_truncated()
            << " ignores_outgoing=" << packet_->ignores_outgoing() << " kernel_drops=" << packet_->kernel_drops();
    }
    return out.str();
}

// Every TEST_P of the fixture, in every file, runs over both links.
INSTANTIATE_TEST_SUITE_P(Links, KernelLinkTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket), link_kind_name);

}  // namespace ustack::testing
