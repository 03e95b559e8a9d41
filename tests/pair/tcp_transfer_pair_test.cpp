// Bulk TCP between two full stacks (Ethernet, ARP, IPv4, TCP) over the
// in-memory device pair, in simulated time: 64 MiB each way at once on
// one connection, through a FaultInjector on both receive paths (fixed
// seeds) with 0 %, 1 % and 5 % loss plus reordering and duplication.
// Each direction's bytes come from a position-keyed generator and are
// hashed as written and as read; the hashes, the byte counts and the
// first mismatching offset (if any) are compared. The engines'
// retransmission counters are printed and checked for what the faults
// must have caused; real time is printed too, never asserted.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <vector>

#include "stack/tcp/tcp_transport.h"
#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SocketId;
using tcp::TcpState;

// 64 MiB each way. For exploring other seeds and sizes by hand (never
// set in CI): USTACK_TRANSFER_SEED adds to every case's seed and
// USTACK_TRANSFER_MIB changes the size; USTACK_TRANSFER_JITTER_US adds
// delay jitter (which shuffles whole bursts) and USTACK_TRANSFER_LOSS_PCT
// replaces every case's loss.
size_t env_or(const char* name, size_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? static_cast<size_t>(std::strtoull(v, nullptr, 10)) : fallback;
}
const size_t transfer_bytes = env_or("USTACK_TRANSFER_MIB", 64) << 20;
const uint64_t seed_offset = env_or("USTACK_TRANSFER_SEED", 0);

// Byte i of stream `seed`: byte (i % 8) of a splitmix64 of the word index
// i / 8, so a segment delivered at the wrong offset changes the hash.
uint64_t word_at(uint64_t seed, uint64_t word) {
    uint64_t z = seed * 0x9e3779b97f4a7c15ULL + word;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
uint8_t byte_at(uint64_t seed, uint64_t pos) {
    return static_cast<uint8_t>(word_at(seed, pos >> 3) >> ((pos & 7) * 8));
}
// A whole word at a time where the stream offset is word-aligned (this is
// the test's own hot loop, so it matters for the sanitizer run).
void generate(uint64_t seed, uint64_t offset, std::span<uint8_t> out) {
    size_t i = 0;
    for (; i < out.size() && ((offset + i) & 7) != 0; ++i) {
        out[i] = byte_at(seed, offset + i);
    }
    for (; i + 8 <= out.size(); i += 8) {
        const uint64_t w = word_at(seed, (offset + i) >> 3);
        for (size_t k = 0; k < 8; ++k) {
            out[i + k] = static_cast<uint8_t>(w >> (k * 8));
        }
    }
    for (; i < out.size(); ++i) {
        out[i] = byte_at(seed, offset + i);
    }
}

// A 64-bit hash of the byte stream, independent of how it is split into
// calls: bytes are gathered into little-endian 8-byte words by stream
// position, each word mixed in order (multiply-xorshift).
class StreamHash {
public:
    void add(std::span<const uint8_t> bytes) {
        size_t i = 0;
        while (i < bytes.size()) {
            if ((length_ & 7) == 0 && bytes.size() - i >= 8) {
                uint64_t w = 0;
                for (size_t k = 0; k < 8; ++k) {
                    w |= uint64_t{bytes[i + k]} << (8 * k);
                }
                mix(w);
                length_ += 8;
                i += 8;
                continue;
            }
            pending_ |= uint64_t{bytes[i]} << (8 * (length_ & 7));
            ++length_;
            ++i;
            if ((length_ & 7) == 0) {
                mix(pending_);
                pending_ = 0;
            }
        }
    }
    uint64_t value() const {
        uint64_t h = state_;
        h = (h ^ pending_) * 0x9fb21c651e98df25ULL;
        h = (h ^ length_) * 0x9fb21c651e98df25ULL;
        return h ^ (h >> 28);
    }

private:
    void mix(uint64_t w) {
        state_ = (state_ ^ w) * 0x9e3779b97f4a7c15ULL;
        state_ ^= state_ >> 29;
    }
    uint64_t state_ = 0xcbf29ce484222325ULL;
    uint64_t pending_ = 0;
    uint64_t length_ = 0;
};

// One direction of the transfer: the writer side feeds `total` generated
// bytes into `from`, the reader side drains `to`.
struct Stream {
    Stream(uint64_t stream_seed, tcp::TcpEngine& from_engine, SocketId from_socket, tcp::TcpEngine& to_engine,
           SocketId to_socket)
        : seed(stream_seed), from(from_engine), sender(from_socket), to(to_engine), receiver(to_socket) {}

    uint64_t seed;
    tcp::TcpEngine& from;
    SocketId sender;
    tcp::TcpEngine& to;
    SocketId receiver;

    std::vector<uint8_t> chunk = std::vector<uint8_t>(256 * 1024);
    size_t chunk_offset = 0;  // stream offset of chunk[0]
    size_t chunk_len = 0;
    size_t written = 0;
    size_t read = 0;
    StreamHash sent_hash;
    StreamHash received_hash;
    std::vector<uint8_t> buf = std::vector<uint8_t>(256 * 1024);
    std::vector<uint8_t> expected = std::vector<uint8_t>(256 * 1024);
    std::optional<size_t> first_mismatch;
    int write_error = 0;
    int read_error = 0;
    bool eof = false;

    void pump(Instant now) {
        while (written < transfer_bytes) {
            if (written == chunk_offset + chunk_len) {
                chunk_offset = written;
                chunk_len = std::min(chunk.size(), transfer_bytes - written);
                generate(seed, chunk_offset, std::span(chunk.data(), chunk_len));
                sent_hash.add(std::span(chunk.data(), chunk_len));
            }
            const size_t at = written - chunk_offset;
            auto r = from.send(sender, now, wire::ByteSpan(chunk.data() + at, chunk_len - at));
            if (!r) {
                if (r.error().value != EAGAIN) {
                    write_error = r.error().value;
                }
                break;
            }
            written += *r;
        }
        while (!eof) {
            auto r = to.recv(receiver, now, buf);
            if (!r) {
                if (r.error().value != EAGAIN) {
                    read_error = r.error().value;
                }
                break;
            }
            if (*r == 0) {
                eof = true;
                break;
            }
            const std::span<const uint8_t> got(buf.data(), *r);
            received_hash.add(got);
            if (!first_mismatch) {
                generate(seed, read, std::span(expected.data(), got.size()));
                const auto diff = std::mismatch(got.begin(), got.end(), expected.begin());
                if (diff.first != got.end()) {
                    first_mismatch = read + static_cast<size_t>(diff.first - got.begin());
                }
            }
            read += got.size();
        }
    }
    bool failed() const { return write_error != 0 || read_error != 0 || first_mismatch.has_value(); }
};

struct TransferCase {
    const char* name;
    double loss;
    double duplicate;
    double reorder;
    uint64_t seed;
    // Both ends: SACK (RFC 6675 recovery) or not (NewReno, RFC 6582), and
    // the congestion control.
    bool sack = true;
    tcp::CongestionAlgorithm congestion = tcp::CongestionAlgorithm::Cubic;
};

netdev::FaultConfig faults_of(const TransferCase& c) {
    netdev::FaultConfig f;
    f.drop_probability = c.loss;
    f.duplicate_probability = c.duplicate;
    f.reorder_probability = c.reorder;
    f.reorder_timeout = Duration::from_millis(5);
    // One-way delay 10 ms (RTT 20 ms), no jitter: the pair has no
    // bandwidth limit, so a whole window leaves at one instant and any
    // jitter would shuffle every burst. Reordering comes from
    // reorder_probability (a frame overtaken by its successor).
    f.delay = Duration::from_millis(10);
    f.jitter = Duration::from_micros(static_cast<int64_t>(env_or("USTACK_TRANSFER_JITTER_US", 0)));
    if (std::getenv("USTACK_TRANSFER_LOSS_PCT") != nullptr) {
        f.drop_probability = static_cast<double>(env_or("USTACK_TRANSFER_LOSS_PCT", 0)) / 100;
    }
    return f;
}

void print_counters(const char* side, const tcp::TcpCounters& c) {
    std::printf(
        "  %s: segs out %llu in %llu | retrans %llu (fast %llu, sack %llu) rto %llu recoveries %llu | "
        "dupacks in %llu sack blocks in %llu ooo queued %llu ooo dropped %llu\n",
        side, static_cast<unsigned long long>(c.segments_out), static_cast<unsigned long long>(c.segments_in),
        static_cast<unsigned long long>(c.retransmitted_segments), static_cast<unsigned long long>(c.fast_retransmits),
        static_cast<unsigned long long>(c.sack_retransmits), static_cast<unsigned long long>(c.rto_timeouts),
        static_cast<unsigned long long>(c.recoveries), static_cast<unsigned long long>(c.dup_acks_received),
        static_cast<unsigned long long>(c.sack_blocks_received), static_cast<unsigned long long>(c.ooo_queued),
        static_cast<unsigned long long>(c.ooo_dropped));
}

void run_transfer(TransferCase tc) {
    tc.seed += seed_offset;
    const auto real_start = std::chrono::steady_clock::now();
    StackPairOptions options;
    options.seed = tc.seed;
    options.faults_into_a = faults_of(tc);
    options.faults_into_b = faults_of(tc);
    StackPair net(options);
    SeededRandom random_a(tc.seed * 11 + 1);
    SeededRandom random_b(tc.seed * 11 + 2);
    tcp::TcpConfig config;
    config.sack = tc.sack;
    config.congestion = tc.congestion;
    tcp::TcpTransport tcp_a(net.a(), config, random_a);
    tcp::TcpTransport tcp_b(net.b(), config, random_b);
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

    const SocketId listener = b.open();
    ASSERT_TRUE(b.bind(listener, Endpoint{wire::Ipv4Address::unspecified(), 5001}));
    ASSERT_TRUE(b.listen(listener, 8));
    const SocketId client = a.open();
    ASSERT_EQ(a.connect(client, net.now(), Endpoint{addr_b, 5001}).error().value, EINPROGRESS);
    std::optional<SocketId> server;
    ASSERT_TRUE(net.run_until(
        [&] {
            if (!server) {
                if (auto accepted = b.accept(listener)) {
                    server = accepted->id;
                }
            }
            return server.has_value() && a.state(client) == TcpState::Established;
        },
        Duration::from_secs(30)))
        << "handshake did not complete";
    ASSERT_EQ(a.info(client)->sack, tc.sack);
    ASSERT_TRUE(a.info(client)->timestamps);
    ASSERT_TRUE(a.info(client)->window_scaling);

    Stream a_to_b(tc.seed * 3 + 1, a, client, b, *server);
    Stream b_to_a(tc.seed * 3 + 2, b, *server, a, client);
    const Instant start = net.now();
    bool a_shut = false;
    bool b_shut = false;
    const bool finished = net.run_until(
        [&] {
            a_to_b.pump(net.now());
            b_to_a.pump(net.now());
            // Each side half-closes once it has written everything; the
            // reader then sees end of stream after the last byte.
            if (!a_shut && a_to_b.written == transfer_bytes) {
                a_shut = static_cast<bool>(a.shutdown(client, net.now(), tcp::ShutdownHow::Write));
            }
            if (!b_shut && b_to_a.written == transfer_bytes) {
                b_shut = static_cast<bool>(b.shutdown(*server, net.now(), tcp::ShutdownHow::Write));
            }
            return (a_to_b.eof && b_to_a.eof) || a_to_b.failed() || b_to_a.failed();
        },
        Duration::from_secs(1800));
    const double simulated = (net.now() - start).micros() / 1e6;
    const double real =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - real_start).count();

    const double mib = static_cast<double>(transfer_bytes) / (1 << 20);
    std::printf("[%s] %.0f MiB each way, loss %.0f%% dup %.0f%% reorder %.0f%% seed %llu: %s after %.2f s simulated, %.2f s real; "
                "%.2f MiB/s each way simulated (%.1f MiB/s both ways per real second)\n",
                tc.name, mib, options.faults_into_b->drop_probability * 100, tc.duplicate * 100, tc.reorder * 100,
                static_cast<unsigned long long>(tc.seed), finished ? "done" : "NOT DONE", simulated, real,
                simulated > 0 ? mib / simulated : 0.0, real > 0 ? 2 * mib / real : 0.0);
    print_counters("A", a.counters());
    print_counters("B", b.counters());
    const auto& fa = net.faults_into_a()->fault_stats();
    const auto& fb = net.faults_into_b()->fault_stats();
    std::printf("  link into A: in %llu dropped %llu duplicated %llu reordered %llu; into B: in %llu dropped %llu "
                "duplicated %llu reordered %llu\n",
                static_cast<unsigned long long>(fa.frames_in), static_cast<unsigned long long>(fa.dropped),
                static_cast<unsigned long long>(fa.duplicated), static_cast<unsigned long long>(fa.reordered),
                static_cast<unsigned long long>(fb.frames_in), static_cast<unsigned long long>(fb.dropped),
                static_cast<unsigned long long>(fb.duplicated), static_cast<unsigned long long>(fb.reordered));

    for (const Stream* s : {&a_to_b, &b_to_a}) {
        const char* dir = s == &a_to_b ? "A->B" : "B->A";
        EXPECT_EQ(s->write_error, 0) << dir;
        EXPECT_EQ(s->read_error, 0) << dir;
        EXPECT_FALSE(s->first_mismatch.has_value()) << dir << " first wrong byte at " << s->first_mismatch.value_or(0);
        EXPECT_EQ(s->written, transfer_bytes) << dir;
        EXPECT_EQ(s->read, transfer_bytes) << dir;
        EXPECT_TRUE(s->eof) << dir;
        EXPECT_EQ(s->sent_hash.value(), s->received_hash.value()) << dir;
    }
    ASSERT_TRUE(finished);
    EXPECT_EQ(tcp_a.counters().bad_checksum + tcp_b.counters().bad_checksum, 0u);
    EXPECT_EQ(tcp_a.counters().send_errors + tcp_b.counters().send_errors, 0u);

    // What the counters must say. Every dropped data frame is retransmitted
    // at least once, and with SACK most repairs happen without a timeout.
    for (const auto* side : {&a.counters(), &b.counters()}) {
        const uint64_t dropped_into_peer = side == &a.counters() ? fb.dropped : fa.dropped;
        if (options.faults_into_b->drop_probability == 0) {
            EXPECT_EQ(dropped_into_peer, 0u);
            EXPECT_EQ(side->rto_timeouts, 0u);
            // Reordering may trigger a few spurious fast retransmits, no more.
            EXPECT_LE(side->retransmitted_segments, side->segments_out / 100);
        } else {
            EXPECT_GT(side->retransmitted_segments, 0u);
            EXPECT_GT(side->fast_retransmits, 0u);
            if (tc.sack) {
                EXPECT_GT(side->sack_retransmits, 0u);
                EXPECT_GT(side->sack_blocks_received, 0u);
            } else {
                EXPECT_EQ(side->sack_retransmits, 0u);
                EXPECT_EQ(side->sack_blocks_received, 0u);
            }
            EXPECT_GT(side->recoveries, 0u);
            // Loss repaired mostly by fast recovery, not timeouts.
            EXPECT_LT(side->rto_timeouts, side->fast_retransmits);
            // Not wildly more retransmissions than losses (both directions'
            // drops, since a lost ACK can cost a retransmission too).
            EXPECT_LE(side->retransmitted_segments, 3 * (fa.dropped + fb.dropped) + 100);
        }
    }

    // Both half-closes crossed: the connection finishes cleanly.
    a.close(client, net.now());
    b.close(*server, net.now());
    EXPECT_TRUE(net.run_until([&] { return a.socket_count() + b.socket_count() == 1; }, Duration::from_secs(10)))
        << "connection did not finish closing";
}

// ---- a peer that vanishes

// Two stacks with TCP and a lossless 10 ms link (fault injectors with no
// faults, so the link can be cut later). ARP entries live for hours: the
// peer vanishes at the IP level only. (With the default 60 s lifetime the
// re-resolution fails and the connection reports EHOSTUNREACH instead,
// as Linux does when the neighbour entry fails; see below.)
struct VanishingPair {
    explicit VanishingPair(Duration arp_lifetime = Duration::from_secs(36000)) : net(options(arp_lifetime)) {
        net.a().attach_tcp(&tcp_a);
        net.b().attach_tcp(&tcp_b);
    }
    ~VanishingPair() {
        net.a().attach_tcp(nullptr);
        net.b().attach_tcp(nullptr);
    }
    static StackPairOptions options(Duration arp_lifetime) {
        StackPairOptions o;
        netdev::FaultConfig link;
        link.delay = Duration::from_millis(10);
        o.faults_into_a = link;
        o.faults_into_b = link;
        o.config_a.arp.entry_lifetime = arp_lifetime;
        o.config_b.arp.entry_lifetime = arp_lifetime;
        return o;
    }
    // From now on every frame in either direction is lost.
    void vanish() {
        netdev::FaultConfig black_hole;
        black_hole.drop_probability = 1.0;
        net.faults_into_a()->set_config(black_hole);
        net.faults_into_b()->set_config(black_hole);
    }
    // A connected to B's listener on `port`; returns (client, server).
    std::pair<SocketId, SocketId> connect(uint16_t port) {
        const SocketId listener = b().open();
        EXPECT_TRUE(b().bind(listener, Endpoint{wire::Ipv4Address::unspecified(), port}));
        EXPECT_TRUE(b().listen(listener, 8));
        const SocketId client = a().open();
        (void)a().connect(client, net.now(), Endpoint{addr_b, port});
        std::optional<SocketId> server;
        EXPECT_TRUE(net.run_until(
            [&] {
                if (!server) {
                    if (auto accepted = b().accept(listener)) {
                        server = accepted->id;
                    }
                }
                return server.has_value() && a().state(client) == TcpState::Established;
            },
            Duration::from_secs(5)));
        return {client, server.value_or(0)};
    }

    StackPair net;
    SeededRandom random_a{31};
    SeededRandom random_b{32};
    tcp::TcpTransport tcp_a{net.a(), tcp::TcpConfig{}, random_a};
    tcp::TcpTransport tcp_b{net.b(), tcp::TcpConfig{}, random_b};
    tcp::TcpEngine& a() { return tcp_a.engine(); }
    tcp::TcpEngine& b() { return tcp_b.engine(); }
};

// tcp_model_timeout(): the time `boundary` retransmissions take from an
// RTO of rto_base doubling up to TCP_RTO_MAX (120 s), written out from
// Linux's formula independently of the engine's copy.
Duration linux_model_timeout(unsigned boundary, Duration rto_base) {
    const int64_t thresh = 9;  // ilog2(120 s / 200 ms), the only base used here
    EXPECT_EQ(rto_base, Duration::from_millis(200));
    if (boundary <= thresh) {
        return rto_base * ((int64_t{2} << boundary) - 1);
    }
    return rto_base * ((int64_t{2} << thresh) - 1) + Duration::from_secs(120) * (boundary - thresh);
}

// When Linux's tcp_retransmit_timer() gives up on data first sent at t0
// with an RTO of `rto`: the timer fires at t0 + rto, then doubling gaps
// capped at 120 s; at each firing after the first retransmission,
// tcp_write_timeout() checks retransmits_timed_out(tcp_retries2), measured
// from t0 (retrans_stamp = the head's first transmission).
struct GiveUp {
    Instant at;
    unsigned retransmissions;
};
GiveUp linux_give_up(Instant t0, Duration rto, unsigned retries2) {
    const Duration limit = linux_model_timeout(retries2, Duration::from_millis(200));
    Instant fire = t0 + rto;
    unsigned retransmissions = 0;
    while (retransmissions == 0 || fire - t0 < limit) {
        ++retransmissions;
        rto = std::min(rto * 2, Duration::from_secs(120));
        fire = fire + rto;
    }
    return {fire, retransmissions};
}

// An established connection with data outstanding whose peer vanishes:
// 15 retransmissions (tcp_retries2), then ETIMEDOUT at the instant
// Linux's model gives (924.6 s after the data was first sent when the
// RTO is 200 ms), all in simulated time.
TEST(TcpVanishingPeer, EstablishedWithDataOutstandingTimesOutAfterRetries2) {
    VanishingPair p;
    auto [client, server] = p.connect(6001);
    // Some traffic first, so the RTO comes from measured RTTs.
    std::vector<uint8_t> data(200000, 0x5a);
    std::vector<uint8_t> buf(65536);
    size_t sent = 0;
    size_t got = 0;
    ASSERT_TRUE(p.net.run_until(
        [&] {
            while (sent < data.size()) {
                auto r = p.a().send(client, p.net.now(), wire::ByteSpan(data.data() + sent, data.size() - sent));
                if (!r) {
                    break;
                }
                sent += *r;
            }
            while (auto r = p.b().recv(server, p.net.now(), buf)) {
                if (*r == 0) {
                    break;
                }
                got += *r;
            }
            return got == data.size() && p.a().info(client)->bytes_in_flight == 0;
        },
        Duration::from_secs(10)));
    p.net.run_for(Duration::from_secs(1));  // quiet: nothing in flight, no timer but keepalive (off)

    p.vanish();
    const auto before = p.a().counters();
    const Instant t0 = p.net.now();
    const tcp::TcpInfo info = *p.a().info(client);
    ASSERT_TRUE(p.a().send(client, t0, wire::ByteSpan(data.data(), 1000)));
    const GiveUp expected = linux_give_up(t0, info.rto, 15);
    std::printf("  srtt %.3f ms, rto %.3f ms: Linux gives up %.3f s after the send, after %u retransmissions\n",
                info.srtt.micros() / 1e3, info.rto.micros() / 1e3, (expected.at - t0).micros() / 1e6,
                expected.retransmissions);

    ASSERT_TRUE(p.net.run_until([&] { return p.a().state(client) != TcpState::Established; },
                                Duration::from_secs(2000)));
    EXPECT_EQ(p.a().state(client), TcpState::Closed);
    EXPECT_EQ(p.net.now(), expected.at) << "gave up " << (p.net.now() - t0).micros() << " us after the send";
    EXPECT_EQ(p.a().take_error(client), ETIMEDOUT);
    const auto& after = p.a().counters();
    EXPECT_EQ(after.rto_timeouts - before.rto_timeouts, expected.retransmissions);
    EXPECT_EQ(after.retransmitted_segments - before.retransmitted_segments, expected.retransmissions);
    EXPECT_EQ(after.timeouts_established - before.timeouts_established, 1u);
    // And the application learns it: send() and recv() now fail.
    auto r = p.a().send(client, p.net.now(), wire::ByteSpan(data.data(), 1));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, EPIPE);
}

// The same with ARP entries of the default 60 s lifetime: once the entry
// expires, re-resolution fails and the IP layer reports EHOSTUNREACH, a
// soft error for an established connection (tcp_v4_err); the connection
// still retransmits until tcp_retries2 runs out, at the same instant, and
// then reports that error instead of ETIMEDOUT (tcp_write_err), as Linux
// ("No route to host") does.
TEST(TcpVanishingPeer, NeighbourFailureIsReportedAsEhostunreachAtTheSameInstant) {
    VanishingPair p(Duration::from_secs(60));
    auto [client, server] = p.connect(6002);
    (void)server;
    p.net.run_for(Duration::from_secs(1));
    p.vanish();
    const Instant t0 = p.net.now();
    const tcp::TcpInfo info = *p.a().info(client);
    ASSERT_TRUE(p.a().send(client, t0, wire::ByteSpan(reinterpret_cast<const uint8_t*>("ping"), 4)));
    const GiveUp expected = linux_give_up(t0, info.rto, 15);
    ASSERT_TRUE(p.net.run_until([&] { return p.a().state(client) != TcpState::Established; },
                                Duration::from_secs(2000)));
    EXPECT_EQ(p.net.now(), expected.at);
    EXPECT_EQ(p.a().take_error(client), EHOSTUNREACH);
}

// connect() to a peer that vanished: tcp_syn_retries (6) SYN
// retransmissions at 1, 3, 7, 15, 31 and 63 s, ETIMEDOUT at 127 s.
TEST(TcpVanishingPeer, SynToVanishedPeerTimesOutAfterSynRetries) {
    VanishingPair p;
    // Resolve ARP both ways first (a connection), then cut the link.
    auto [first, server] = p.connect(6003);
    (void)first;
    (void)server;
    p.net.run_for(Duration::from_secs(1));
    p.vanish();
    const auto before = p.a().counters();
    const SocketId c = p.a().open();
    const Instant t0 = p.net.now();
    ASSERT_EQ(p.a().connect(c, t0, Endpoint{addr_b, 6003}).error().value, EINPROGRESS);
    ASSERT_TRUE(p.net.run_until([&] { return p.a().state(c) != TcpState::SynSent; }, Duration::from_secs(300)));
    EXPECT_EQ(p.a().state(c), TcpState::Closed);
    EXPECT_EQ(p.net.now() - t0, Duration::from_secs(127));
    EXPECT_EQ(p.a().counters().syn_retransmits - before.syn_retransmits, 6u);
    EXPECT_EQ(p.a().counters().timeouts_connect - before.timeouts_connect, 1u);
    auto r = p.a().connect(c, p.net.now(), Endpoint{addr_b, 6003});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().value, ETIMEDOUT);
}

// A smaller tcp_syn_retries is honoured: 2 retries → 1 + 2 + 4 = 7 s.
TEST(TcpVanishingPeer, SynRetriesSettingShortensTheWait) {
    StackPairOptions o = VanishingPair::options(Duration::from_secs(36000));
    StackPair net(o);
    SeededRandom random_a(41);
    SeededRandom random_b(42);
    tcp::TcpConfig config;
    config.syn_retries = 2;
    tcp::TcpTransport tcp_a(net.a(), config, random_a);
    tcp::TcpTransport tcp_b(net.b(), tcp::TcpConfig{}, random_b);
    net.a().attach_tcp(&tcp_a);
    net.b().attach_tcp(&tcp_b);
    // ARP first: a ping-less way is a refused connect (no listener on B).
    const SocketId probe = tcp_a.engine().open();
    (void)tcp_a.engine().connect(probe, net.now(), Endpoint{addr_b, 9});
    ASSERT_TRUE(net.run_until([&] { return tcp_a.engine().state(probe) == TcpState::Closed; },
                              Duration::from_secs(5)));
    EXPECT_EQ(tcp_a.engine().take_error(probe), ECONNREFUSED);
    netdev::FaultConfig black_hole;
    black_hole.drop_probability = 1.0;
    net.faults_into_a()->set_config(black_hole);
    net.faults_into_b()->set_config(black_hole);
    const SocketId c = tcp_a.engine().open();
    const Instant t0 = net.now();
    (void)tcp_a.engine().connect(c, t0, Endpoint{addr_b, 9});
    ASSERT_TRUE(net.run_until([&] { return tcp_a.engine().state(c) == TcpState::Closed; }, Duration::from_secs(60)));
    EXPECT_EQ(net.now() - t0, Duration::from_secs(7));
    EXPECT_EQ(tcp_a.engine().take_error(c), ETIMEDOUT);
    net.a().attach_tcp(nullptr);
    net.b().attach_tcp(nullptr);
}

TEST(TcpTransferPair, SixtyFourMiBEachWayNoLossWithReorderingAndDuplication) {
    run_transfer({"no loss", 0.0, 0.01, 0.01, 1});
}

TEST(TcpTransferPair, SixtyFourMiBEachWayOnePercentLoss) {
    run_transfer({"1% loss", 0.01, 0.01, 0.01, 2});
}

TEST(TcpTransferPair, SixtyFourMiBEachWayFivePercentLoss) {
    run_transfer({"5% loss", 0.05, 0.01, 0.01, 3});
}

// Without SACK, loss is repaired by NewReno fast recovery (RFC 6582), and
// the congestion control is NewReno instead of CUBIC.
TEST(TcpTransferPair, SixtyFourMiBEachWayOnePercentLossNewRenoWithoutSack) {
    run_transfer({"1% loss, NewReno, no SACK", 0.01, 0.01, 0.01, 4, false, tcp::CongestionAlgorithm::NewReno});
}

}  // namespace
}  // namespace ustack::testing
