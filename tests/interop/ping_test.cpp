// ICMP echo between the Linux kernel and the stack, both ways, over TAP and
// AF_PACKET; and a pcap of it that tshark reads.
#include <gtest/gtest.h>

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "tests/interop/kernel_link.h"

namespace ustack::testing {
namespace {

TEST_P(KernelLinkTest, KernelPingsStackWithoutLoss) {
    if (!have_program("ping")) {
        GTEST_SKIP() << "ping not installed (Debian package iputils-ping)";
    }
    // -i 0.01 needs root (below 0.2 s); -W 1: a lost reply counts after 1 s.
    Subprocess ping = netns_->spawn({"ping", "-n", "-q", "-c", "100", "-i", "0.01", "-W", "1", "-w", "20",
                                     stack_addr.to_string()});
    const CommandResult r = finish(ping);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.out.find("100 packets transmitted, 100 received, 0% packet loss"), std::string::npos) << r.out;
    EXPECT_EQ(counters().get(Counter::icmp_echo_replies_sent), 100u);
    EXPECT_EQ(counters().get(Counter::drop_ip_bad_checksum), 0u);
    EXPECT_EQ(counters().get(Counter::drop_icmp_bad_checksum), 0u);
    // The kernel learned the stack's own MAC, not the interface's.
    const CommandResult neigh = netns_->run({"ip", "neigh", "show", stack_addr.to_string(), "dev", kernel_ifname()});
    EXPECT_NE(neigh.out.find(stack().mac().to_string()), std::string::npos)
        << neigh.out << " (stack MAC " << stack().mac().to_string() << ")";
}

TEST_P(KernelLinkTest, StackPingsKernel) {
    constexpr uint16_t ident = 0x7573;
    constexpr uint16_t count = 20;
    std::map<uint16_t, EchoReply> replies;
    for (uint16_t seq = 1; seq <= count; ++seq) {
        const std::vector<uint8_t> data = pattern_bytes(seq, 8 + seq * 50);  // up to 1008 bytes
        ASSERT_TRUE(stack().send_echo_request(now(), kernel_addr, ident, seq, data)) << "seq " << seq;
        const bool got = run_until(
            [&] {
                for (EchoReply& reply : stack().take_echo_replies()) {
                    replies.emplace(reply.seq_no, std::move(reply));
                }
                return replies.contains(seq);
            },
            Duration::from_secs(3));
        ASSERT_TRUE(got) << "no reply to seq " << seq << "; " << describe_state();
        const EchoReply& reply = replies.at(seq);
        EXPECT_EQ(reply.from, kernel_addr);
        EXPECT_EQ(reply.ident, ident);
        EXPECT_EQ(reply.data, data) << "seq " << seq;
    }
    EXPECT_EQ(replies.size(), count);
    // One ARP request resolved the kernel; nothing failed.
    EXPECT_EQ(counters().get(Counter::drop_tx_arp_failed), 0u);
    EXPECT_EQ(counters().get(Counter::drop_icmp_unclaimed_reply), 0u);
}

TEST_P(KernelLinkTest, StackPingsKernelWithFragmentedEcho) {
    // 3000 bytes of echo data: the stack fragments, the kernel reassembles,
    // replies in fragments, and the stack reassembles.
    const std::vector<uint8_t> data = pattern_bytes(99, 3000);
    ASSERT_TRUE(stack().send_echo_request(now(), kernel_addr, 0x1234, 1, data));
    std::vector<EchoReply> replies;
    ASSERT_TRUE(run_until([&] {
        for (EchoReply& reply : stack().take_echo_replies()) {
            replies.push_back(std::move(reply));
        }
        return !replies.empty();
    })) << describe_state();
    EXPECT_EQ(replies[0].data, data);
    EXPECT_EQ(counters().get(Counter::ip_frags_created), 3u);
    EXPECT_EQ(counters().get(Counter::ip_reassembled), 1u);
}

// The same ping, recorded by PcapWriter around the device.
class PcapKernelLinkTest : public KernelLinkTest {
protected:
    void SetUp() override {
        char dir_template[] = "/tmp/ustack-interop-XXXXXX";
        ASSERT_NE(::mkdtemp(dir_template), nullptr);
        dir_ = dir_template;
        pcap_path_ = dir_ + "/ping.pcap";
        start_link(pcap_path_);
    }
    void TearDown() override {
        KernelLinkTest::TearDown();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    std::string dir_;
    std::string pcap_path_;
};

TEST_P(PcapKernelLinkTest, CaptureOfPingOpensInTshark) {
    if (!have_program("ping")) {
        GTEST_SKIP() << "ping not installed (Debian package iputils-ping)";
    }
    if (!have_program("tshark")) {
        GTEST_SKIP() << "tshark not installed (Debian package tshark)";
    }
    Subprocess ping =
        netns_->spawn({"ping", "-n", "-q", "-c", "5", "-i", "0.02", "-W", "1", "-w", "20", stack_addr.to_string()});
    const CommandResult r = finish(ping);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    // Close the capture (PcapWriter flushes on destruction).
    close_stack();
    const CommandResult shark = netns_->run(
        {"tshark", "-n", "-r", pcap_path_, "-Y", "icmp", "-T", "fields", "-e", "icmp.type", "-e", "ip.src",
         "-e", "ip.dst"},
        Duration::from_secs(60));
    ASSERT_EQ(shark.exit_code, 0) << shark.describe();
    std::map<std::string, int> seen;
    std::istringstream lines(shark.out);
    for (std::string line; std::getline(lines, line);) {
        ++seen[line];
    }
    const std::string request = "8\t" + kernel_addr.to_string() + "\t" + stack_addr.to_string();
    const std::string reply = "0\t" + stack_addr.to_string() + "\t" + kernel_addr.to_string();
    EXPECT_EQ(seen[request], 5) << shark.out;
    EXPECT_EQ(seen[reply], 5) << shark.out;
    // ARP is in the capture too: the announcement and the resolution.
    const CommandResult arp = netns_->run({"tshark", "-n", "-r", pcap_path_, "-Y", "arp"}, Duration::from_secs(60));
    EXPECT_NE(arp.out.find("ARP"), std::string::npos) << arp.describe();
}

INSTANTIATE_TEST_SUITE_P(Links, PcapKernelLinkTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket),
                         link_kind_name);

}  // namespace
}  // namespace ustack::testing
