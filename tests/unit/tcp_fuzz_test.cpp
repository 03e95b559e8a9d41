// Seeded random segments and application calls against one engine: no
// crash (run it under ASan/UBSan), and the invariants hold throughout.
#include <algorithm>
#include <cerrno>

#include "tests/unit/tcp_harness.h"

namespace ustack::tcp::testing {
namespace {

struct Fuzzer {
    explicit Fuzzer(uint64_t seed, bool options) : rng(seed), h(config(options), seed + 1) {}

    static TcpConfig config(bool options) {
        TcpConfig c = test_config();
        c.timestamps = c.sack = c.window_scaling = options;
        c.max_ooo_ranges = 4;
        c.default_rcvbuf = 8192;
        c.default_sndbuf = 8192;
        c.autotune_max_sndbuf = 8192;  // keep the send buffer small: full-buffer paths get exercised
        return c;
    }

    SeededRandom rng;
    Harness h;
    std::vector<SocketId> sockets;

    int32_t jitter(int32_t span) { return static_cast<int32_t>(rng.below(static_cast<uint32_t>(2 * span + 1))) - span; }

    TcpRepr random_segment(const std::optional<TcpInfo>& info) {
        static constexpr uint8_t combos[] = {
            f::ACK, f::ACK, f::ACK | f::PSH, f::ACK | f::FIN, f::SYN, f::SYN | f::ACK, f::RST, f::RST | f::ACK,
            f::FIN, 0, f::ACK | f::RST | f::SYN | f::FIN, f::ACK | f::URG,
        };
        TcpRepr r;
        r.src_port = static_cast<uint16_t>(remote_port + rng.below(3));
        r.dst_port = local_port;
        r.flags = combos[rng.below(sizeof(combos))];
        const SeqNumber rcv = info ? info->rcv_nxt : SeqNumber(remote_iss);
        const SeqNumber una = info ? info->snd_una : SeqNumber(rng.next_u32());
        r.seq = rng.chance(0.1) ? SeqNumber(rng.next_u32()) : rcv + static_cast<uint32_t>(jitter(rng.chance(0.5) ? 3000 : 80000));
        r.ack = rng.chance(0.1) ? SeqNumber(rng.next_u32()) : una + static_cast<uint32_t>(jitter(rng.chance(0.5) ? 3000 : 80000));
        r.window = static_cast<uint16_t>(rng.chance(0.2) ? 0 : rng.below(65536));
        if (rng.chance(0.3)) {
            r.options.timestamp = wire::TcpTimestamp{rng.next_u32(), rng.next_u32()};
        }
        if (rng.chance(0.2)) {
            r.options.mss = static_cast<uint16_t>(rng.below(3000));
        }
        if (rng.chance(0.2)) {
            r.options.window_scale = static_cast<uint8_t>(rng.below(20));
        }
        r.options.sack_permitted = rng.chance(0.2);
        if (rng.chance(0.3)) {
            r.options.sack_count = static_cast<uint8_t>(1 + rng.below(3));
            for (uint8_t i = 0; i < r.options.sack_count; ++i) {
                const SeqNumber left = una + static_cast<uint32_t>(jitter(20000));
                r.options.sack_blocks[i] = wire::SackBlock{left, left + rng.below(10000)};
            }
        }
        return r;
    }

    void check_invariants() {
        for (SocketId s : sockets) {
            auto info = h.engine.info(s);
            if (!info) {
                continue;
            }
            EXPECT_LE(info->snd_una, info->snd_nxt);
            EXPECT_LE(info->bytes_in_flight, static_cast<uint32_t>(info->snd_nxt - info->snd_una) + 0u);
            EXPECT_LE(info->recv_queued, 8192u);
            EXPECT_LE(info->send_queued, 8192u);
        }
        if (auto next = h.engine.poll_at()) {
            EXPECT_GE(*next, h.now - Duration::from_secs(1));
        }
    }

    void run(int iterations) {
        const SocketId l = h.listen(4);
        sockets.push_back(h.accept_established(std::nullopt, l));
        std::vector<uint8_t> buf(4096);
        for (int i = 0; i < iterations; ++i) {
            const uint32_t action = rng.below(100);
            const SocketId s = sockets[rng.below(static_cast<uint32_t>(sockets.size()))];
            if (action < 70) {
                const auto info = h.engine.info(s);
                TcpRepr r = random_segment(info ? std::optional<TcpInfo>(*info) : std::nullopt);
                h.remote.port = r.src_port;
                h.send(r, pattern(rng.chance(0.5) ? rng.below(3000) : 0, static_cast<uint32_t>(i)));
            } else if (action < 78) {
                h.advance(Duration::from_micros(rng.below(3000000)));
            } else if (action < 85) {
                (void)h.engine.send(s, h.now, pattern(rng.below(6000)));
            } else if (action < 90) {
                (void)h.engine.recv(s, h.now, buf, rng.chance(0.2));
            } else if (action < 92) {
                if (auto acc = h.engine.accept(l)) {
                    sockets.push_back(acc->id);
                }
            } else if (action < 94) {
                (void)h.engine.shutdown(s, h.now, static_cast<ShutdownHow>(rng.below(3)));
            } else if (action < 95 && sockets.size() > 1) {
                h.engine.close(s, h.now);
                sockets.erase(std::find(sockets.begin(), sockets.end(), s));
            } else if (action < 96) {
                (void)h.engine.set_option(s, h.now, static_cast<SockOpt>(rng.below(13)), static_cast<int>(rng.below(5)));
            } else if (action < 97) {
                h.engine.icmp_error(h.now, IcmpError{h.local, h.remote, SeqNumber(rng.next_u32()),
                                                     rng.chance(0.5) ? EHOSTUNREACH : EMSGSIZE,
                                                     static_cast<uint16_t>(rng.below(1600))});
            } else {
                const SocketId c = h.engine.open();
                (void)h.engine.connect(c, h.now, Endpoint{remote_ip, static_cast<uint16_t>(remote_port + rng.below(3))});
                sockets.push_back(c);
            }
            h.clear();
            check_invariants();
            if (::testing::Test::HasFailure()) {
                ADD_FAILURE() << "iteration " << i;
                return;
            }
        }
        // Everything winds down: close all, run out the timers.
        for (SocketId s : sockets) {
            h.engine.close(s, h.now);
        }
        h.engine.close(l, h.now);
        h.advance(Duration::from_secs(2000));
        EXPECT_EQ(h.engine.socket_count(), 0u);
        EXPECT_EQ(h.engine.time_wait_count(), 0u);
        EXPECT_FALSE(h.engine.poll_at());
    }
};

TEST(TcpFuzz, RandomSegmentsWithoutOptions) {
    for (uint64_t seed = 1; seed <= 4; ++seed) {
        Fuzzer(seed, false).run(20000);
    }
}

TEST(TcpFuzz, RandomSegmentsWithOptions) {
    for (uint64_t seed = 11; seed <= 14; ++seed) {
        Fuzzer(seed, true).run(20000);
    }
}

}  // namespace
}  // namespace ustack::tcp::testing
