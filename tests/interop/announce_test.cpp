// The stack announces itself with a gratuitous ARP when it starts, over
// TAP and AF_PACKET: a kernel that accepts gratuitous ARP (arp_accept=1)
// learns the stack's MAC before any packet is exchanged.
#include <gtest/gtest.h>

#include "tests/interop/kernel_link.h"

namespace ustack::testing {
namespace {

class AnnounceTest : public KernelLinkTest {
protected:
    void SetUp() override {
        LinkSetup s;
        s.kernel_arp_accept = true;
        start_link(s);
    }
};

TEST_P(AnnounceTest, KernelLearnsTheStackMacFromTheGratuitousArp) {
    std::string neigh;
    const bool learned = run_until(
        [&] {
            neigh = netns_->run({"ip", "neigh", "show", stack_addr.to_string(), "dev", kernel_ifname()}).out;
            return neigh.find(stack().mac().to_string()) != std::string::npos;
        },
        Duration::from_secs(3));
    EXPECT_TRUE(learned) << "ip neigh: '" << neigh << "', stack MAC " << stack().mac().to_string() << "; "
                         << describe_state();
    // Learned from the announcement alone: the stack answered no request.
    EXPECT_EQ(counters().get(Counter::arp_replies_sent), 0u) << describe_state();
    EXPECT_EQ(counters().get(Counter::arp_requests_sent), 1u) << describe_state();
}

INSTANTIATE_TEST_SUITE_P(Links, AnnounceTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket), link_kind_name);

}  // namespace
}  // namespace ustack::testing
