// Bulk TCP between the Linux kernel (python3) and the stack, over TAP and
// AF_PACKET: 256 MiB each way at the same time on one connection, with the
// stack as server and as client, byte-exact by SHA-256 computed on both
// sides; then the same over a link losing, duplicating and reordering 2 %
// of the frames in each direction.
//
// Kernel offloads: the kernel side runs with TSO/GSO/GRO off (ethtool -K),
// so it hands the link wire-sized frames as a physical NIC would; the
// OffloadKernelTcpTest cases keep them on (64 KiB super-frames from the
// kernel) with the stack device's offloads on and off.
//
// Impairment: `tc netem` on the kernel-side interface is the first choice,
// but kernels without sch_netem (and without tc actions) are common in VMs;
// the impairment then sits in the stack's device (netdev/ImpairedLink) and
// acts on both directions, so the kernel's TCP recovers from loss,
// duplication and reordering as well as the stack's.
//
// For experiments: USTACK_INTEROP_BULK_MIB overrides the size (MiB each
// way), USTACK_INTEROP_PCAP=FILE records the stack's frames,
// USTACK_INTEROP_DEVICE_OFFLOADS=off turns the stack device's offloads off.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "tests/interop/kernel_link.h"
#include "tests/interop/tcp_peer.h"

namespace ustack::testing {
namespace {

// CPU seconds (user + system) of this process, or of its reaped children.
double cpu_seconds(int who) {
    rusage usage{};
    ::getrusage(who, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

using tcp::Endpoint;
using tcp::SocketId;
using tcp::TcpState;

constexpr uint16_t stack_port = 5001;
constexpr uint16_t kernel_port = 5002;
constexpr int peer_idle_timeout_s = 60;

uint64_t bulk_bytes() {
    if (const char* mib = std::getenv("USTACK_INTEROP_BULK_MIB")) {
        return std::strtoull(mib, nullptr, 10) << 20;
    }
    return uint64_t{256} << 20;
}

enum class StackRole { Server, Client };

class KernelTcpTest : public KernelLinkTest {
protected:
    void SetUp() override { start_link(setup()); }
    virtual LinkSetup setup() const {
        LinkSetup s;
        s.tcp = true;
        s.kernel_offloads_off = true;
        // For comparisons by hand: USTACK_INTEROP_DEVICE_OFFLOADS=off.
        if (const char* offloads = std::getenv("USTACK_INTEROP_DEVICE_OFFLOADS")) {
            s.device_offloads = std::string_view(offloads) != "off";
        }
        if (const char* pcap = std::getenv("USTACK_INTEROP_PCAP")) {
            s.pcap_path = pcap;
        }
        return s;
    }

    // One connection, `bytes` each way at once, hashes compared.
    void run_bulk(StackRole role, uint64_t bytes);
    // Buffers as large as Linux autotunes them for a bulk transfer (the
    // default 128 KiB SO_RCVBUF gives a 64 KiB window: one window per
    // loop round trip would cap the transfer far below the link). Set
    // before listen()/connect(): children inherit, and the window scale
    // in the SYN is chosen for them.
    void set_buffers(tcp::SocketId s) {
        const int size = buffer_bytes();
        ASSERT_TRUE(tcp().set_option(s, now(), tcp::SockOpt::RcvBuf, size));
        ASSERT_TRUE(tcp().set_option(s, now(), tcp::SockOpt::SndBuf, size));
    }
    static int buffer_bytes() {
        if (const char* kib = std::getenv("USTACK_INTEROP_BUF_KIB")) {
            return std::atoi(kib) * 1024;
        }
        return 2 << 20;
    }
};

void KernelTcpTest::run_bulk(StackRole role, uint64_t bytes) {
    if (!have_program("python3")) {
        GTEST_SKIP() << "python3 not installed";
    }
    tcp::TcpEngine& engine = tcp();
    std::optional<Subprocess> peer;
    SocketId conn = 0;
    if (role == StackRole::Server) {
        const SocketId listener = engine.open();
        set_buffers(listener);
        ASSERT_TRUE(engine.bind(listener, Endpoint{wire::Ipv4Address::unspecified(), stack_port}));
        ASSERT_TRUE(engine.listen(listener, 4));
        peer.emplace(netns_->spawn(
            kernel_tcp_peer_argv("connect", stack_addr.to_string(), stack_port, bytes, peer_idle_timeout_s)));
        std::optional<SocketId> accepted;
        ASSERT_TRUE(run_until([&] {
            if (auto a = engine.accept(listener)) {
                accepted = a->id;
            }
            return accepted.has_value() || peer->poll_exit().has_value();
        })) << "no connection from the kernel; " << describe_state();
        ASSERT_TRUE(accepted) << "peer exited: " << peer->wait(Duration::zero()).describe();
        conn = *accepted;
        engine.close(listener, now());
    } else {
        peer.emplace(netns_->spawn(
            kernel_tcp_peer_argv("listen", kernel_addr.to_string(), kernel_port, bytes, peer_idle_timeout_s)));
        ASSERT_TRUE(run_until([&] { return peer->out().find("listening") != std::string::npos ||
                                           peer->poll_exit().has_value(); }))
            << "python3 never listened: " << peer->err();
        conn = engine.open();
        set_buffers(conn);
        auto r = engine.connect(conn, now(), Endpoint{kernel_addr, kernel_port});
        ASSERT_TRUE(r || r.error().value == EINPROGRESS) << "connect: errno " << r.error().value;
        ASSERT_TRUE(run_until([&] {
            const auto state = engine.state(conn);
            return state != TcpState::SynSent;
        })) << describe_state();
        ASSERT_EQ(engine.state(conn), TcpState::Established) << "errno " << engine.take_error(conn);
    }

    BulkTransfer transfer(engine, conn, bytes, 0x62756c6bULL + static_cast<uint64_t>(GetParam()));
    const auto started = std::chrono::steady_clock::now();
    const double cpu_started = cpu_seconds(RUSAGE_SELF);
    const double children_cpu_started = cpu_seconds(RUSAGE_CHILDREN);
    int failed = 0;
    std::optional<int> peer_exit;
    const bool finished = run_until(
        [&] {
            failed = transfer.pump(now());
            if (!peer_exit) {
                peer_exit = peer->poll_exit();
            }
            return failed != 0 || (transfer.eof() && transfer.all_sent() && peer_exit.has_value());
        },
        Duration::from_secs(600));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const double stack_cpu = cpu_seconds(RUSAGE_SELF) - cpu_started;
    const CommandResult result = peer->wait(Duration::from_secs(5));
    const double peer_cpu = cpu_seconds(RUSAGE_CHILDREN) - children_cpu_started;
    ASSERT_TRUE(finished) << "transfer stuck after " << seconds << " s: stack sent " << transfer.sent()
                          << ", received " << transfer.received() << "; " << describe_state() << "; peer "
                          << result.describe();
    ASSERT_EQ(failed, 0) << "socket error " << failed << " after sending " << transfer.sent() << ", receiving "
                         << transfer.received() << "; " << describe_state() << "; peer " << result.describe();
    ASSERT_EQ(result.exit_code, 0) << result.describe() << "; " << describe_state();
    const std::optional<PeerReport> report = parse_peer_report(result.out);
    ASSERT_TRUE(report) << result.describe();
    EXPECT_EQ(report->sent, bytes);
    EXPECT_EQ(transfer.received(), bytes);
    EXPECT_EQ(report->received, bytes);
    EXPECT_EQ(transfer.sent(), bytes);
    EXPECT_EQ(transfer.received_sha256(), report->sent_sha256) << "kernel → stack corrupted";
    EXPECT_EQ(report->received_sha256, transfer.sent_sha256()) << "stack → kernel corrupted";

    const double mb = static_cast<double>(bytes) / 1e6;
    std::printf("[  measure ] %s, stack as %s, %.0f MiB each way at once: %.2f s, %.1f MB/s each way "
                "(%.1f MB/s total); CPU: stack %.2f s, kernel-side peer %.2f s\n",
                ::testing::UnitTest::GetInstance()->current_test_info()->name(),
                role == StackRole::Server ? "server" : "client", static_cast<double>(bytes >> 20), seconds,
                mb / seconds, 2 * mb / seconds, stack_cpu, peer_cpu);
    if (std::getenv("USTACK_INTEROP_VERBOSE") == nullptr) {
        std::printf("[  measure ] %s\n", describe_state().c_str());
    }
    std::fflush(stdout);

    engine.close(conn, now());
    EXPECT_EQ(tcp_->counters().bad_checksum, 0u) << describe_state();
    EXPECT_EQ(counters().get(Counter::drop_ip_bad_checksum), 0u);
}

TEST_P(KernelTcpTest, StackServerKernelClient256MiBEachWay) { run_bulk(StackRole::Server, bulk_bytes()); }

TEST_P(KernelTcpTest, StackClientKernelServer256MiBEachWay) { run_bulk(StackRole::Client, bulk_bytes()); }

INSTANTIATE_TEST_SUITE_P(Links, KernelTcpTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket),
                         link_kind_name);

// 2 % loss, 2 % reordering, 1 % duplication, each direction.
class ImpairedKernelTcpTest : public KernelTcpTest {
protected:
    LinkSetup setup() const override {
        LinkSetup s = KernelTcpTest::setup();
        netdev::ImpairmentConfig impairment;
        impairment.loss = 0.02;
        impairment.reorder = 0.02;
        impairment.duplicate = 0.01;
        s.impairment = impairment;
        s.impairment_seed = 0x6e6574656dULL + static_cast<uint64_t>(GetParam());
        // The impairment stands for a lossy wire, which carries segments:
        // behind a real NIC's TSO a loss hits one segment of a super-frame
        // and the receiver sees (and ACKs) the rest one by one. Here the
        // loss would hit our segments before the device joins them, and
        // the kernel would take each joined run whole and ACK it once —
        // a link no hardware makes, and twice as slow for our RTO-bound
        // recovery (64 MiB each way: 18.5 s against 8.5 s). So the wire
        // is emulated without device offloads (the kernel side has its
        // own off as well, see setup()).
        s.device_offloads = false;
        return s;
    }
};

TEST_P(ImpairedKernelTcpTest, StackServerKernelClient256MiBEachWay) { run_bulk(StackRole::Server, bulk_bytes()); }

TEST_P(ImpairedKernelTcpTest, StackClientKernelServer256MiBEachWay) { run_bulk(StackRole::Client, bulk_bytes()); }

INSTANTIATE_TEST_SUITE_P(Links, ImpairedKernelTcpTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket),
                         link_kind_name);

// The kernel side with its offloads on (veth and TAP default: TSO/GSO),
// so it sends the stack 64 KiB super-frames, and the stack's device with
// its offloads on (virtio-net header, GSO both ways) or off. 64 MiB each
// way (USTACK_INTEROP_BULK_MIB overrides), byte-exact by SHA-256 both ways.
class OffloadKernelTcpTest : public KernelTcpTest {
protected:
    LinkSetup setup() const override {
        LinkSetup s = KernelTcpTest::setup();
        s.kernel_offloads_off = false;
        s.device_offloads = device_offloads();
        return s;
    }
    virtual bool device_offloads() const { return true; }
    static uint64_t bytes() { return std::getenv("USTACK_INTEROP_BULK_MIB") ? bulk_bytes() : uint64_t{64} << 20; }
    // With offloads on, both directions really used them: super-frames
    // came in whole (their checksums trusted) and our segments left
    // joined. Off: never.
    void check_offloads_used() {
        const netdev::DeviceStats& s = device_->stats();
        if (device_offloads()) {
            EXPECT_GT(s.rx_gso_frames, 0u) << describe_state();
            // NEEDS_CSUM super-frames go to the stack as trusted, never summed.
            EXPECT_GT(s.rx_checksums_trusted, 0u) << describe_state();
            EXPECT_GT(s.tx_gso_frames, 0u) << describe_state();
        } else {
            EXPECT_EQ(s.rx_gso_frames, 0u) << describe_state();
            EXPECT_EQ(s.tx_gso_frames, 0u) << describe_state();
        }
    }
};

TEST_P(OffloadKernelTcpTest, StackServerKernelClient) {
    run_bulk(StackRole::Server, bytes());
    check_offloads_used();
}

TEST_P(OffloadKernelTcpTest, StackClientKernelServer) {
    run_bulk(StackRole::Client, bytes());
    check_offloads_used();
}

INSTANTIATE_TEST_SUITE_P(Links, OffloadKernelTcpTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket),
                         link_kind_name);

class NoDeviceOffloadKernelTcpTest : public OffloadKernelTcpTest {
protected:
    bool device_offloads() const override { return false; }
};

TEST_P(NoDeviceOffloadKernelTcpTest, StackServerKernelClient) {
    run_bulk(StackRole::Server, bytes());
    check_offloads_used();
}

TEST_P(NoDeviceOffloadKernelTcpTest, StackClientKernelServer) {
    run_bulk(StackRole::Client, bytes());
    check_offloads_used();
}

INSTANTIATE_TEST_SUITE_P(Links, NoDeviceOffloadKernelTcpTest, ::testing::Values(LinkKind::Tap, LinkKind::AfPacket),
                         link_kind_name);

}  // namespace
}  // namespace ustack::testing
