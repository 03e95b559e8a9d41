// A capture of a TCP exchange with the kernel, written by PcapWriter around
// the device, read back by tshark: the three-way handshake is there, in
// order and with the right flags, then the data and both FINs.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <sstream>

#include "tests/interop/kernel_link.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SocketId;

constexpr uint16_t port = 5020;

class PcapKernelTcpTest : public KernelLinkTest {
protected:
    void SetUp() override {
        char dir_template[] = "/tmp/ustack-interop-XXXXXX";
        ASSERT_NE(::mkdtemp(dir_template), nullptr);
        dir_ = dir_template;
        pcap_path_ = dir_ + "/tcp.pcap";
        LinkSetup s;
        s.tcp = true;
        s.pcap_path = pcap_path_;
        start_link(s);
    }
    void TearDown() override {
        KernelLinkTest::TearDown();
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    std::string dir_;
    std::string pcap_path_;
};

struct Segment {
    std::string src;
    std::string dst;
    std::string flags;  // "S", "SA", "A", "PA", "FA" ...
    std::string payload_len;
};

// tshark's tcp.flags is a hex number ("0x0012" or "0x012" by version);
// turn it into letters.
std::string flag_letters(const std::string& hex) {
    const unsigned long v = std::strtoul(hex.c_str(), nullptr, 16);
    std::string s;
    if (v & 0x04) s += 'R';
    if (v & 0x02) s += 'S';
    if (v & 0x01) s += 'F';
    if (v & 0x08) s += 'P';
    if (v & 0x10) s += 'A';
    return s;
}

TEST_P(PcapKernelTcpTest, CaptureShowsTheHandshake) {
    if (!have_program("socat") || !have_program("tshark")) {
        GTEST_SKIP() << "socat or tshark not installed (Debian packages socat, tshark)";
    }
    const SocketId listener = tcp().open();
    ASSERT_TRUE(tcp().bind(listener, Endpoint{wire::Ipv4Address::unspecified(), port}));
    ASSERT_TRUE(tcp().listen(listener, 4));
    const std::string message = "hello from the kernel\n";
    Subprocess client =
        netns_->spawn({"socat", "-", "TCP:" + stack_addr.to_string() + ":" + std::to_string(port)}, {.pipe_stdin = true});
    ASSERT_TRUE(client.write_stdin(message));
    client.close_stdin();  // socat sends FIN after the message
    std::optional<SocketId> conn;
    std::string got;
    std::vector<uint8_t> buf(4096);
    bool eof = false;
    ASSERT_TRUE(run_until([&] {
        if (!conn) {
            if (auto a = tcp().accept(listener)) {
                conn = a->id;
            }
        }
        while (conn && !eof) {
            auto r = tcp().recv(*conn, now(), buf);
            if (!r) {
                break;
            }
            if (*r == 0) {
                eof = true;
            }
            got.append(buf.begin(), buf.begin() + static_cast<long>(*r));
        }
        return eof;
    })) << describe_state();
    EXPECT_EQ(got, message);
    tcp().close(*conn, now());
    const CommandResult r = finish(client);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    run_for(Duration::from_millis(50));  // the last ACK of our FIN
    close_stack();  // flushes and closes the capture

    const CommandResult shark = netns_->run({"tshark", "-n", "-r", pcap_path_, "-Y", "tcp", "-T", "fields", "-e",
                                             "ip.src", "-e", "ip.dst", "-e", "tcp.flags", "-e", "tcp.len"},
                                            Duration::from_secs(60));
    ASSERT_EQ(shark.exit_code, 0) << shark.describe();
    std::vector<Segment> segments;
    std::istringstream lines(shark.out);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        Segment s;
        std::string hex;
        fields >> s.src >> s.dst >> hex >> s.payload_len;
        s.flags = flag_letters(hex);
        segments.push_back(s);
    }
    ASSERT_GE(segments.size(), 3u) << shark.out;
    const std::string k = kernel_addr.to_string();
    const std::string st = stack_addr.to_string();
    // SYN, SYN-ACK, ACK: the kernel opens, the stack answers.
    EXPECT_EQ(segments[0].src + ">" + segments[0].dst + " " + segments[0].flags, k + ">" + st + " S") << shark.out;
    EXPECT_EQ(segments[1].src + ">" + segments[1].dst + " " + segments[1].flags, st + ">" + k + " SA") << shark.out;
    EXPECT_EQ(segments[2].src + ">" + segments[2].dst + " " + segments[2].flags[0], k + ">" + st + " A")
        << shark.out;
    // The message and both FINs are in it too, and nothing was reset.
    int fins = 0;
    bool data = false;
    for (const Segment& s : segments) {
        fins += s.flags.find('F') != std::string::npos ? 1 : 0;
        data = data || (s.src == k && s.payload_len == std::to_string(message.size()));
        EXPECT_EQ(s.flags.find('R'), std::string::npos) << shark.out;
    }
    EXPECT_EQ(fins, 2) << shark.out;
    EXPECT_TRUE(data) << shark.out;
    // tshark's own analysis finds nothing wrong with the conversation.
    const CommandResult expert = netns_->run(
        {"tshark", "-n", "-r", pcap_path_, "-Y", "tcp.analysis.flags && !tcp.analysis.window_update"},
        Duration::from_secs(60));
    EXPECT_EQ(expert.out, "") << "tshark flags problems: " << expert.out;
}

INSTANTIATE_TEST_SUITE_P(Links, PcapKernelTcpTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket),
                         link_kind_name);

}  // namespace
}  // namespace ustack::testing
