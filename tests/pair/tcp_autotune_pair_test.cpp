// Buffer autotuning between two stacks over the in-memory pair, 20 ms RTT,
// simulated time, as on Linux:
// - receive (tcp_rcv_space_adjust): a receiver that keeps up grows its
//   buffer (and so its window) past the 64 KiB default, bounded by
//   tcp_rmem[2] (TcpConfig::window_scale_space), and the transfer is
//   faster for it; a receiver whose SO_RCVBUF was set keeps exactly that
//   size (SOCK_RCVBUF_LOCK);
// - send (tcp_sndbuf_expand): a sender's buffer follows its congestion
//   window past the default, bounded by tcp_wmem[2]
//   (TcpConfig::autotune_max_sndbuf); one whose SO_SNDBUF was set keeps it
//   (SOCK_SNDBUF_LOCK).
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
    int sender_sndbuf = 0;
    size_t received = 0;
};

constexpr int sender_not_the_limit = 4 << 20;

// A sends transfer_bytes to B, which reads everything as soon as it
// arrives. `receiver_rcvbuf` > 0: B sets SO_RCVBUF before listen();
// `sender_sndbuf` > 0: A sets SO_SNDBUF before connect(), 0: A's buffer
// autotunes.
Outcome transfer(int receiver_rcvbuf, int sender_sndbuf = sender_not_the_limit) {
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
    if (sender_sndbuf > 0) {
        EXPECT_TRUE(a.set_option(client, net.now(), tcp::SockOpt::SndBuf, sender_sndbuf));
    }
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
    out.sender_sndbuf = *a.get_option(client, tcp::SockOpt::SndBuf);
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

TEST(TcpAutotunePair, ASendersBufferFollowsItsCongestionWindowUpToTcpWmemMax) {
    const tcp::TcpConfig defaults{};
    const Outcome tuned = transfer(0, 0);
    // SO_SNDBUF of half the default: reported as exactly the default (the
    // value doubles), so the only difference is the lock.
    const Outcome fixed = transfer(0, static_cast<int>(defaults.default_sndbuf / 2));
    ASSERT_EQ(tuned.received, transfer_bytes);
    ASSERT_EQ(fixed.received, transfer_bytes);
    // Grown past the default, never past tcp_wmem[2].
    EXPECT_GT(static_cast<size_t>(tuned.sender_sndbuf), 4 * defaults.default_sndbuf);
    EXPECT_LE(static_cast<size_t>(tuned.sender_sndbuf), defaults.autotune_max_sndbuf);
    // Locked: exactly what SO_SNDBUF gave.
    EXPECT_EQ(static_cast<size_t>(fixed.sender_sndbuf), defaults.default_sndbuf);
    // 128 KiB of payload per 20 ms round trip moves 16 MiB in ~2.6 s; the
    // tuned sender, with the receiver's window also tuned, in well under
    // half that (simulated time, deterministic).
    EXPECT_GT(fixed.elapsed, Duration::from_secs(2));
    EXPECT_LT(tuned.elapsed.micros() * 2, fixed.elapsed.micros());
    std::printf("[  measure ] 16 MiB over 20 ms RTT: send buffer autotuned %.2f s (SO_SNDBUF grew to %d), "
                "locked at the default %.2f s\n",
                static_cast<double>(tuned.elapsed.micros()) / 1e6, tuned.sender_sndbuf,
                static_cast<double>(fixed.elapsed.micros()) / 1e6);
}

}  // namespace
}  // namespace ustack::testing
