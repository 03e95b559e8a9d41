// UDP between the Linux kernel (socat) and the stack, both ways and with
// fragmentation, and ICMP port unreachable both ways, over TAP and AF_PACKET.
#include <gtest/gtest.h>

#include <cerrno>

#include "tests/interop/kernel_link.h"

namespace ustack::testing {
namespace {

using udp::Endpoint;

// Datagram sizes: tiny, typical, the largest unfragmented (1500 - 20 - 8),
// the smallest fragmented, and two that need three fragments.
const std::vector<size_t> datagram_sizes = {1, 17, 512, 1472, 1473, 3000, 4000};

TEST_P(KernelLinkTest, KernelClientStackEchoServer) {
    if (!have_program("socat")) {
        GTEST_SKIP() << "socat not installed";
    }
    auto& udp = stack().udp();
    const udp::SocketId server = udp.open();
    ASSERT_TRUE(udp.bind(server, {wire::Ipv4Address::unspecified(), 7000}));
    // A connected kernel UDP socket: every write to its stdin is one
    // datagram, every datagram back one write to its stdout.
    Subprocess client = netns_->spawn({"socat", "-b", "65536", "-", "UDP:" + stack_addr.to_string() + ":7000"},
                                      {.pipe_stdin = true});
    std::string expected_out;
    std::vector<uint8_t> buf(65536);
    std::optional<Endpoint> client_endpoint;
    for (size_t i = 0; i < datagram_sizes.size(); ++i) {
        const std::vector<uint8_t> message = pattern_bytes(static_cast<uint32_t>(i), datagram_sizes[i]);
        ASSERT_TRUE(client.write_stdin(message)) << client.err();
        std::optional<udp::RecvResult> got;
        ASSERT_TRUE(run_until([&] {
            if (auto r = udp.recv_from(server, buf)) {
                got = *r;
                return true;
            }
            return false;
        })) << "datagram " << i << " (" << message.size() << " bytes) never reached the stack; " << describe_state()
            << "; socat: " << client.err();
        ASSERT_EQ(got->datagram_len, message.size());
        EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + static_cast<long>(got->copied)), message)
            << "datagram " << i;
        EXPECT_EQ(got->from.addr, kernel_addr);
        if (client_endpoint) {
            EXPECT_EQ(got->from, *client_endpoint);  // one connected socket, one source port
        }
        client_endpoint = got->from;
        // Echo it back.
        ASSERT_TRUE(udp.send_to(server, now(), wire::ByteSpan(buf.data(), got->copied), got->from));
        expected_out += as_string(message);
        ASSERT_TRUE(run_until([&] {
            client.pump();
            return client.out().size() >= expected_out.size();
        })) << "echo of datagram " << i << " never reached socat; " << describe_state();
        ASSERT_EQ(client.out(), expected_out) << "datagram " << i;
    }
    EXPECT_EQ(counters().get(Counter::udp_datagrams_in), datagram_sizes.size());
    EXPECT_EQ(counters().get(Counter::udp_datagrams_out), datagram_sizes.size());
    EXPECT_EQ(counters().get(Counter::drop_udp_bad_checksum), 0u);
    EXPECT_GE(counters().get(Counter::ip_reassembled), 3u);
    EXPECT_GE(counters().get(Counter::ip_frags_created), 6u);
}

TEST_P(KernelLinkTest, StackClientKernelServer) {
    if (!have_program("socat")) {
        GTEST_SKIP() << "socat not installed";
    }
    // socat waits for the first datagram on 7001, then talks to its sender.
    Subprocess server = netns_->spawn({"socat", "-b", "65536", "UDP-LISTEN:7001", "-"}, {.pipe_stdin = true});
    ASSERT_TRUE(run_until([&] { return kernel_udp_port_bound(7001) || server.poll_exit().has_value(); }))
        << "socat never listened: " << server.err();
    ASSERT_FALSE(server.poll_exit()) << server.err();
    auto& udp = stack().udp();
    const udp::SocketId client = udp.open();
    const Endpoint server_endpoint{kernel_addr, 7001};
    std::string expected_out;
    std::vector<uint8_t> buf(65536);
    for (size_t i = 0; i < datagram_sizes.size(); ++i) {
        const std::vector<uint8_t> outbound = pattern_bytes(static_cast<uint32_t>(100 + i), datagram_sizes[i]);
        ASSERT_TRUE(udp.send_to(client, now(), outbound, server_endpoint));
        expected_out += as_string(outbound);
        ASSERT_TRUE(run_until([&] {
            server.pump();
            return server.out().size() >= expected_out.size() || server.poll_exit().has_value();
        })) << "datagram " << i << " never reached socat; " << describe_state() << "; socat: " << server.err();
        ASSERT_EQ(server.out(), expected_out) << "datagram " << i;
        // And the kernel answers.
        const std::vector<uint8_t> inbound = pattern_bytes(static_cast<uint32_t>(200 + i), datagram_sizes[i]);
        ASSERT_TRUE(server.write_stdin(inbound)) << server.err();
        std::optional<udp::RecvResult> got;
        ASSERT_TRUE(run_until([&] {
            if (auto r = udp.recv_from(client, buf)) {
                got = *r;
                return true;
            }
            return false;
        })) << "reply " << i << " never reached the stack; " << describe_state();
        EXPECT_EQ(got->from, server_endpoint);
        ASSERT_EQ(got->datagram_len, inbound.size());
        EXPECT_EQ(std::vector<uint8_t>(buf.begin(), buf.begin() + static_cast<long>(got->copied)), inbound)
            << "reply " << i;
    }
    EXPECT_EQ(counters().get(Counter::drop_udp_bad_checksum), 0u);
}

TEST_P(KernelLinkTest, KernelToClosedStackPortGetsPortUnreachable) {
    if (!have_program("socat")) {
        GTEST_SKIP() << "socat not installed";
    }
    // A connected kernel socket reports the ICMP error as ECONNREFUSED on
    // its next read, and socat exits with "Connection refused".
    Subprocess client = netns_->spawn({"socat", "-", "UDP:" + stack_addr.to_string() + ":9999"}, {.pipe_stdin = true});
    ASSERT_TRUE(client.write_stdin(std::string("anyone there?\n")));
    const CommandResult r = finish(client, Duration::from_secs(10));
    EXPECT_FALSE(r.timed_out);
    EXPECT_NE(r.exit_code, 0) << r.describe();
    EXPECT_NE(r.err.find("Connection refused"), std::string::npos) << r.describe();
    EXPECT_EQ(counters().get(Counter::drop_udp_no_socket), 1u);
    EXPECT_EQ(counters().get(Counter::icmp_errors_sent), 1u);
}

TEST_P(KernelLinkTest, StackToClosedKernelPortGetsEconnrefused) {
    // Nothing listens on the kernel's port 9: the kernel answers with ICMP
    // port unreachable, which a connected stack socket reports.
    auto& udp = stack().udp();
    const udp::SocketId s = udp.open();
    ASSERT_TRUE(udp.connect(s, {kernel_addr, 9}));
    ASSERT_TRUE(udp.send_to(s, now(), pattern_bytes(1, 32), std::nullopt));
    ASSERT_TRUE(run_until([&] { return udp.readable(s); }, Duration::from_secs(3))) << describe_state();
    std::vector<uint8_t> buf(64);
    auto got = udp.recv_from(s, buf);
    ASSERT_FALSE(got);
    EXPECT_EQ(got.error().value, ECONNREFUSED);
}

}  // namespace
}  // namespace ustack::testing
