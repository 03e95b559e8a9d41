#pragma once
// The interop fixture: a private network namespace holding one link between
// the Linux kernel (10.77.0.1/24) and a ustack Stack (10.77.0.2/24), over a
// TAP or over a veth pair whose far end the stack drives through AF_PACKET.
// Each test runs once per link kind; kernel-side tools (ping, socat) run in
// the same namespace while the test drives the stack in real time.
#include <gtest/gtest.h>

#include <functional>
#include <ostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "netdev/af_packet.h"
#include "netdev/impaired_link.h"
#include "netdev/netdev.h"
#include "netdev/tap.h"
#include "stack/core/random.h"
#include "stack/stack.h"
#include "stack/tcp/tcp_transport.h"
#include "tests/support/netns.h"
#include "tests/support/realtime_loop.h"
#include "tests/support/subprocess.h"

namespace ustack::testing {

enum class LinkKind { Tap, AfPacket };

std::string link_kind_name(const ::testing::TestParamInfo<LinkKind>& info);
inline void PrintTo(LinkKind kind, std::ostream* os) { *os << (kind == LinkKind::Tap ? "Tap" : "AfPacket"); }

inline const wire::Ipv4Address kernel_addr{10, 77, 0, 1};
inline const wire::Ipv4Address stack_addr{10, 77, 0, 2};
inline constexpr const char* tap_name = "ustap0";
inline constexpr const char* veth_kernel_end = "usk0";  // the kernel's, with 10.77.0.1
inline constexpr const char* veth_stack_end = "uss0";   // AF_PACKET's, no kernel address

// Deterministic bytes for datagram and echo payloads.
std::vector<uint8_t> pattern_bytes(uint32_t seed, size_t size);
std::string as_string(const std::vector<uint8_t>& bytes);

// How start_link builds the link beyond the defaults.
struct LinkSetup {
    // Record every frame of the stack's device to this pcap file.
    std::optional<std::string> pcap_path;
    // Impair both directions in user space (this kernel may lack sch_netem);
    // see netdev/impaired_link.h.
    std::optional<netdev::ImpairmentConfig> impairment;
    uint64_t impairment_seed = 1;
    // `ethtool -K <kernel side> tso off gso off gro off`: the kernel then
    // hands the link wire-sized frames, as a physical NIC would, instead of
    // GSO super-frames (veth) — see tests/interop/tcp_bulk_test.cpp.
    bool kernel_offloads_off = false;
    // The stack device's own offloads (TapOptions/PacketOptions::offloads:
    // virtio-net header, GSO frames both ways).
    bool device_offloads = true;
    // Attach a TCP engine (TcpTransport) to the stack.
    bool tcp = false;
    // net.ipv4.conf.*.arp_accept = 1 on the kernel side before the link
    // exists: a gratuitous ARP then creates a neighbour entry, so the
    // stack's announcement becomes visible in `ip neigh`.
    bool kernel_arp_accept = false;
};

class KernelLinkTest : public ::testing::TestWithParam<LinkKind> {
protected:
    void SetUp() override { start_link(std::nullopt); }
    void TearDown() override;

    // Enters the namespace, builds the link, opens the device (wrapped in a
    // PcapWriter when pcap_path is set), creates the stack and announces it.
    void start_link(std::optional<std::string> pcap_path);
    void start_link(const LinkSetup& setup);
    // Runs a command in the namespace and fails the test if it fails.
    void must_run(const std::vector<std::string>& argv);
    // Drives the stack until done() or `limit` passes.
    bool run_until(const std::function<bool()>& done, Duration limit = Duration::from_secs(10));
    void run_for(Duration d) { loop_->run_for(d); }
    Instant now() const { return monotonic_now(); }
    // Runs the stack until the subprocess exits (or `limit`), then collects it.
    CommandResult finish(Subprocess& process, Duration limit = Duration::from_secs(30));

    const char* kernel_ifname() const { return GetParam() == LinkKind::Tap ? tap_name : veth_kernel_end; }
    Stack& stack() { return *stack_; }
    // The TCP engine (LinkSetup::tcp).
    tcp::TcpEngine& tcp() { return tcp_->engine(); }
    const Counters& counters() const { return stack_->counters(); }
    // Destroys the loop, the stack and the device (closing a capture),
    // keeping the namespace for kernel-side commands.
    void close_stack();
    // Non-zero stack counters and device statistics, for failure messages.
    std::string describe_state() const;
    // The kernel-side interface's frame and drop counts (/proc/net/dev).
    std::string kernel_interface_counters() const;

    std::unique_ptr<PrivateNetns> netns_;
    SeededRandom random_{0x75737461636bULL};
    std::unique_ptr<netdev::NetDev> device_;  // the real device, or a PcapWriter around it
    netdev::TapDevice* tap_ = nullptr;
    netdev::PacketDevice* packet_ = nullptr;
    netdev::ImpairedLink* impaired_ = nullptr;
    std::unique_ptr<Stack> stack_;
    SeededRandom tcp_random_{0x746370ULL};
    std::unique_ptr<tcp::TcpTransport> tcp_;
    std::unique_ptr<RealtimeLoop> loop_;
};

}  // namespace ustack::testing
