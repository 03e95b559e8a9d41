// Connection refused both ways over TAP and AF_PACKET: the kernel's connect
// to a port where the stack has no listener is answered with RST (nc and
// socat say "Connection refused"), and the stack's connect to a closed
// kernel port ends with ECONNREFUSED from the kernel's RST.
#include <gtest/gtest.h>

#include <cerrno>

#include "tests/interop/kernel_link.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SocketId;
using tcp::TcpState;

class KernelTcpRefusedTest : public KernelLinkTest {
protected:
    void SetUp() override {
        LinkSetup s;
        s.tcp = true;
        start_link(s);
    }
};

TEST_P(KernelTcpRefusedTest, KernelToClosedStackPortIsRefused) {
    if (!have_program("nc") || !have_program("socat")) {
        GTEST_SKIP() << "nc or socat not installed (Debian packages netcat-openbsd, socat)";
    }
    // A listener on another port must not change the answer.
    const SocketId listener = tcp().open();
    ASSERT_TRUE(tcp().bind(listener, Endpoint{wire::Ipv4Address::unspecified(), 5010}));
    ASSERT_TRUE(tcp().listen(listener, 4));

    Subprocess nc = netns_->spawn({"nc", "-v", "-n", "-z", "-w", "5", stack_addr.to_string(), "5011"});
    const CommandResult r = finish(nc, Duration::from_secs(10));
    EXPECT_FALSE(r.timed_out) << r.describe();
    EXPECT_NE(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.err.find("Connection refused"), std::string::npos) << r.describe() << "; " << describe_state();

    Subprocess socat = netns_->spawn({"socat", "-", "TCP:" + stack_addr.to_string() + ":5012"});
    const CommandResult s = finish(socat, Duration::from_secs(10));
    EXPECT_NE(s.exit_code, 0) << s.describe();
    EXPECT_NE(s.err.find("Connection refused"), std::string::npos) << s.describe();

    // One RST per SYN, nothing else: the kernel does not retry a refused SYN.
    EXPECT_EQ(tcp().counters().resets_for_no_socket, 2u) << describe_state();
    EXPECT_EQ(tcp().counters().passive_opens, 0u);
}

TEST_P(KernelTcpRefusedTest, StackToClosedKernelPortGetsEconnrefused) {
    const SocketId c = tcp().open();
    auto r = tcp().connect(c, now(), Endpoint{kernel_addr, 9});
    ASSERT_FALSE(r);
    ASSERT_EQ(r.error().value, EINPROGRESS);
    ASSERT_TRUE(run_until([&] { return tcp().state(c) == TcpState::Closed; }, Duration::from_secs(5)))
        << "still " << static_cast<int>(*tcp().state(c)) << "; " << describe_state();
    EXPECT_EQ(tcp().take_error(c), ECONNREFUSED);
    EXPECT_EQ(tcp().counters().resets_received, 1u) << describe_state();
    EXPECT_EQ(tcp().counters().syn_retransmits, 0u);
    // The error is reported once, then the socket is plain closed.
    EXPECT_EQ(tcp().take_error(c), 0);
    tcp().close(c, now());
}

INSTANTIATE_TEST_SUITE_P(Links, KernelTcpRefusedTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket),
                         link_kind_name);

}  // namespace
}  // namespace ustack::testing
