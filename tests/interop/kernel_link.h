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
#include "netdev/netdev.h"
#include "netdev/tap.h"
#include "stack/core/random.h"
#include "stack/stack.h"
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

class KernelLinkTest : public ::testing::TestWithParam<LinkKind> {
protected:
    void SetUp() override { start_link(std::nullopt); }
    void TearDown() override;

    // Enters the namespace, builds the link, opens the device (wrapped in a
    // PcapWriter when pcap_path is set), creates the stack and announces it.
    void start_link(std::optional<std::string> pcap_path);
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
    const Counters& counters() const { return stack_->counters(); }
    // Destroys the loop, the stack and the device (closing a capture),
    // keeping the namespace for kernel-side commands.
    void close_stack();
    // Non-zero stack counters and device statistics, for failure messages.
    std::string describe_state() const;

    std::unique_ptr<PrivateNetns> netns_;
    SeededRandom random_{0x75737461636bULL};
    std::unique_ptr<netdev::NetDev> device_;  // the real device, or a PcapWriter around it
    netdev::TapDevice* tap_ = nullptr;
    netdev::PacketDevice* packet_ = nullptr;
    std::unique_ptr<Stack> stack_;
    std::unique_ptr<RealtimeLoop> loop_;
};

}  // namespace ustack::testing
