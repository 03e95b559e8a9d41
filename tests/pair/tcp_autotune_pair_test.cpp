// Receive-buffer autotuning (Linux's tcp_rcv_space_adjust) between two
// stacks over the in-memory pair, 20 ms RTT, simulated time: a receiver
// that keeps up grows its buffer (and so its window) past the 64 KiB
// default, bounded by tcp_rmem[2] (TcpConfig::window_scale_space), and
// the transfer is faster for it; a receiver whose SO_RCVBUF was set keeps
// exactly that size (SOCK_RCVBUF_LOCK), as on Linux.
#include <gtest/gtest.h>

#include <cerrno>
#include <vector>

#include "stack/tcp/tcp_transport.h"
#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SocketId;

constexpr size_t transfer_bytes = 16 << 20;

struct Outcome {
    Duration elapsed;
    int receiver_rcvbuf = 0;
    size_t received = 0;
};

// A sends transfer_bytes to B, which reads everything as soon as it
// arrives. `receiver_rcvbuf` > 0: B sets SO_RCVBUF before listen().
Outcome transfer(int receiver_rcvbuf) {
    StackPairOptions options;
    netdev::FaultConfig delay;
    delay.delay = Duration::from_millis(10);
    options.faults_into_a = delay;
    options.faults_into_b = delay;
    StackPair net(options);
    SeededRandom random_a(7);
    SeededRandom random_b(8);
    tcp::TcpTransport tcp_a(net.a(), tcp::TcpConfig{}, random_a);
    tcp::TcpTransport tcp_b(net.b(), tcp::TcpConfig{}, random_b);
    net.a().attach_tcp(&tcp_a);
    net.b().attach_tcp(&tcp_b);
    struct Detach {
        StackPair& n;
        ~Detach() {
            n.a().attach_tcp(nullptr);
            n.b().attach_tcp(nullptr);
        }
    } detach{net};
    tcp::TcpEngine& a = tcp_a.engine();
    tcp::TcpEngine& b = tcp_b.engine();

    Outcome out;
    const SocketId listener = b.open();
    if (receiver_rcvbuf > 0) {
        EXPECT_TRUE(b.set_option(listener, net.now(), tcp::SockOpt::RcvBuf, receiver_rcvbuf));
    }
    EXPECT_TRUE(b.bind(listener, Endpoint{wire::Ipv4Address::unspecified(), 5001}));
    EXPECT_TRUE(b.listen(listener, 8));
    const SocketId client = a.open();
    // The sender is never the limit: 4 MiB of send buffer (locked, fine).
    EXPECT_TRUE(a.set_option(client, net.now(), tcp::SockOpt::SndBuf, 4 << 20));
    EXPECT_EQ(a.connect(client, net.now(), Endpoint{addr_b, 5001}).error().value, EINPROGRESS);
    std::optional<SocketId> server;
    EXPECT_TRUE(net.run_until(
        [&] {
            if (auto accepted = b.accept(listener)) {
                server = accepted->id;
            }
            return server.has_value();
        },
        Duration::from_secs(5)));
    if (!server) {
        return out;
    }
    const Instant started = net.now();
    std::vector<uint8_t> chunk(256 * 1024, 0x5a);
    std::vector<uint8_t> buf(256 * 1024);
    size_t written = 0;
    EXPECT_TRUE(net.run_until(
        [&] {
            while (written < transfer_bytes) {
                auto r = a.send(client, net.now(),
                                wire::ByteSpan(chunk.data(), std::min(chunk.size(), transfer_bytes - written)));
                if (!r) {
                    break;
                }
                written += *r;
            }
            while (true) {
                auto r = b.recv(*server, net.now(), buf);
                if (!r || *r == 0) {
                    break;
                }
                out.received += *r;
            }
            return out.received == transfer_bytes;
        },
        Duration::from_secs(120)));
    out.elapsed = net.now() - started;
    out.receiver_rcvbuf = *b.get_option(*server, tcp::SockOpt::RcvBuf);
    return out;
}

TEST(TcpAutotunePair, AReceiverThatKeepsUpGrowsItsWindowUpToTcpRmemMax) {
    const Outcome tuned = transfer(0);
    const Outcome fixed = transfer(65536);  // SO_RCVBUF 64 KiB: reported as 128 KiB, a 64 KiB window
    ASSERT_EQ(tuned.received, transfer_bytes);
    ASSERT_EQ(fixed.received, transfer_bytes);
    // Grown past the default 128 KiB, never past 2 * tcp_rmem[2].
    EXPECT_GT(tuned.receiver_rcvbuf, 4 * 131072);
    EXPECT_LE(static_cast<size_t>(tuned.receiver_rcvbuf), 2 * tcp::TcpConfig{}.window_scale_space);
    // Locked: exactly what SO_RCVBUF gave.
    EXPECT_EQ(fixed.receiver_rcvbuf, 131072);
    // A 64 KiB window over 20 ms moves 16 MiB in ~5 s; the tuned one in
    // well under half that (simulated time, deterministic).
    EXPECT_GT(fixed.elapsed, Duration::from_secs(4));
    EXPECT_LT(tuned.elapsed.micros() * 2, fixed.elapsed.micros());
    std::printf("[  measure ] 16 MiB over 20 ms RTT: autotuned %.2f s (SO_RCVBUF grew to %d), locked 64 KiB "
                "window %.2f s\n",
                static_cast<double>(tuned.elapsed.micros()) / 1e6, tuned.receiver_rcvbuf,
                static_cast<double>(fixed.elapsed.micros()) / 1e6);
}

}  // namespace
}  // namespace ustack::testing
