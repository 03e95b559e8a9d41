// Two engines back to back through an in-process wire: every segment is
// emitted to bytes (checksum included) and parsed again on the other side,
// optionally lost, delayed or reordered by a seeded Random. Transfers must
// arrive byte-exact, and a bulk transfer must be cheap in real time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <map>
#include <memory>
#include <queue>
#include <vector>

#include "stack/core/random.h"
#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {
namespace {

const wire::Ipv4Address addr_a{10, 0, 0, 1};
const wire::Ipv4Address addr_b{10, 0, 0, 2};

struct WireOptions {
    Duration latency = Duration::from_micros(500);
    double loss = 0.0;
    double reorder = 0.0;  // chance a packet takes up to 3x the latency
    uint64_t seed = 7;
};

class Wire {
public:
    explicit Wire(WireOptions options, TcpConfig config_a = config_for(addr_a), TcpConfig config_b = config_for(addr_b))
        : options_(options),
          faults_(options.seed),
          random_a_(options.seed * 31 + 1),
          random_b_(options.seed * 31 + 2),
          out_a_(*this, 1),
          out_b_(*this, 0),
          a_(std::move(config_a), out_a_, random_a_),
          b_(std::move(config_b), out_b_, random_b_) {}

    static TcpConfig config_for(wire::Ipv4Address address) {
        TcpConfig config;
        config.local_addresses = {address};
        return config;
    }

    TcpEngine& a() { return a_; }
    TcpEngine& b() { return b_; }
    Instant now() const { return now_; }
    uint64_t delivered() const { return delivered_; }
    uint64_t dropped() const { return dropped_; }
    void set_loss(double p) { options_.loss = p; }

    // One step: time jumps to the next event (a delivery or a timer).
    // Returns false when nothing is left to happen.
    bool step() {
        std::optional<Instant> next;
        if (!queue_.empty()) {
            next = queue_.top().at;
        }
        for (TcpEngine* e : {&a_, &b_}) {
            if (auto t = e->poll_at(); t && (!next || *t < *next)) {
                next = t;
            }
        }
        if (!next) {
            return false;
        }
        now_ = std::max(now_, *next);
        while (!queue_.empty() && queue_.top().at <= now_) {
            Packet p = queue_.top();
            queue_.pop();
            auto parsed = wire::parse_tcp(p.bytes, p.src, p.dst);
            EXPECT_TRUE(parsed) << "the engine emitted a segment that does not parse";
            if (!parsed) {
                continue;
            }
            ++delivered_;
            (p.to == 0 ? a_ : b_).input(now_, p.src, p.dst, parsed->repr, parsed->payload);
        }
        a_.poll(now_);
        b_.poll(now_);
        return true;
    }

    // Runs until done() or until `limit` of simulated time passes.
    template <typename F>
    bool run(F&& done, Duration limit) {
        const Instant end = now_ + limit;
        while (!done()) {
            if (!step() || now_ > end) {
                return done();
            }
        }
        return true;
    }

private:
    struct Packet {
        Instant at;
        uint64_t order;
        int to;
        wire::Ipv4Address src;
        wire::Ipv4Address dst;
        std::vector<uint8_t> bytes;
        bool operator>(const Packet& o) const { return at != o.at ? at > o.at : order > o.order; }
    };
    class End final : public TcpOutput {
    public:
        End(Wire& wire, int to) : wire_(wire), to_(to) {}
        void send_segment(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst, const wire::TcpRepr& repr,
                          wire::ByteSpan payload) override {
            wire_.enqueue(now, to_, src, dst, repr, payload);
        }

    private:
        Wire& wire_;
        int to_;
    };

    void enqueue(Instant now, int to, wire::Ipv4Address src, wire::Ipv4Address dst, const wire::TcpRepr& repr,
                 wire::ByteSpan payload) {
        EXPECT_LE(repr.header_len() + payload.size(), 1480u) << "segment larger than the MTU";
        if (options_.loss > 0 && faults_.chance(options_.loss)) {
            ++dropped_;
            return;
        }
        Duration delay = options_.latency;
        if (options_.reorder > 0 && faults_.chance(options_.reorder)) {
            delay = delay + Duration::from_micros(faults_.below(static_cast<uint32_t>(options_.latency.micros() * 2) + 1));
        }
        Packet p{now + delay, order_++, to, src, dst, std::vector<uint8_t>(repr.header_len() + payload.size())};
        repr.emit(p.bytes, src, dst, payload);
        queue_.push(std::move(p));
    }

    WireOptions options_;
    SeededRandom faults_;
    SeededRandom random_a_;
    SeededRandom random_b_;
    End out_a_;  // A's output goes to B
    End out_b_;
    TcpEngine a_;
    TcpEngine b_;
    std::priority_queue<Packet, std::vector<Packet>, std::greater<>> queue_;
    Instant now_ = Instant::from_secs(1);
    uint64_t order_ = 0;
    uint64_t delivered_ = 0;
    uint64_t dropped_ = 0;
};

std::vector<uint8_t> make_data(size_t n, uint64_t seed) {
    std::vector<uint8_t> v(n);
    SeededRandom r(seed);
    for (size_t i = 0; i < n; i += 8) {
        const uint64_t x = r.next_u64();
        for (size_t k = 0; k < 8 && i + k < n; ++k) {
            v[i + k] = static_cast<uint8_t>(x >> (8 * k));
        }
    }
    return v;
}

// One direction of a transfer driven by the applications on both ends.
struct Transfer {
    Transfer(TcpEngine* sender_engine, TcpEngine* receiver_engine, SocketId from_socket, SocketId to_socket,
             const std::vector<uint8_t>* bytes_to_send)
        : sender(sender_engine), receiver(receiver_engine), from(from_socket), to(to_socket), data(bytes_to_send) {}

    TcpEngine* sender;
    TcpEngine* receiver;
    SocketId from;
    SocketId to;
    const std::vector<uint8_t>* data;
    size_t sent = 0;
    std::vector<uint8_t> received;
    bool fin_sent = false;
    bool eof = false;
    std::vector<uint8_t> buf = std::vector<uint8_t>(65536);

    void pump(Instant now) {
        while (sent < data->size()) {
            const size_t chunk = std::min<size_t>(data->size() - sent, 256 * 1024);
            auto r = sender->send(from, now, wire::ByteSpan(data->data() + sent, chunk));
            if (!r) {
                EXPECT_EQ(r.error().value, EAGAIN);
                break;
            }
            sent += *r;
        }
        if (sent == data->size() && !fin_sent) {
            EXPECT_TRUE(sender->shutdown(from, now, ShutdownHow::Write));
            fin_sent = true;
        }
        while (!eof) {
            auto r = receiver->recv(to, now, buf);
            if (!r) {
                EXPECT_EQ(r.error().value, EAGAIN);
                break;
            }
            if (*r == 0) {
                eof = true;
                break;
            }
            received.insert(received.end(), buf.begin(), buf.begin() + static_cast<long>(*r));
        }
    }
};

// Connects A to a listener on B; returns {client on A, server on B}.
std::pair<SocketId, SocketId> open_pair(Wire& w) {
    const SocketId l = w.b().open();
    EXPECT_TRUE(w.b().bind(l, Endpoint{addr_b, 5001}));
    EXPECT_TRUE(w.b().listen(l, 16));
    const SocketId c = w.a().open();
    EXPECT_EQ(w.a().connect(c, w.now(), Endpoint{addr_b, 5001}).error().value, EINPROGRESS);
    std::optional<SocketId> server;
    EXPECT_TRUE(w.run(
        [&] {
            if (!server) {
                if (auto acc = w.b().accept(l)) {
                    server = acc->id;
                }
            }
            return server && w.a().state(c) == TcpState::Established;
        },
        Duration::from_secs(10)));
    w.b().close(l, w.now());
    return {c, server.value_or(0)};
}

void run_transfer(Wire& w, std::vector<Transfer>& transfers, Duration limit) {
    for (Transfer& t : transfers) {
        t.pump(w.now());
    }
    const bool done = w.run(
        [&] {
            bool all = true;
            for (Transfer& t : transfers) {
                t.pump(w.now());
                all = all && t.eof;
            }
            return all;
        },
        limit);
    EXPECT_TRUE(done) << "transfer did not finish in " << limit.secs() << " s simulated";
    if (!done) {
        for (Transfer& t : transfers) {
            const TcpInfo si = *t.sender->info(t.from);
            const TcpInfo ri = *t.receiver->info(t.to);
            ADD_FAILURE() << "sent " << t.sent << "/" << t.data->size() << " received " << t.received.size()
                          << " eof " << t.eof << " sender " << to_string(si.state) << " una " << si.snd_una.raw()
                          << " nxt " << si.snd_nxt.raw() << " wnd " << si.snd_wnd << " cwnd " << si.cwnd
                          << " queued " << si.send_queued << " inflight " << si.bytes_in_flight << " rto "
                          << si.rto.millis() << " | receiver " << to_string(ri.state) << " rcv_nxt "
                          << ri.rcv_nxt.raw() << " rcv_wnd " << ri.rcv_wnd << " recvq " << ri.recv_queued
                          << " ooo " << ri.ooo_ranges;
        }
    }
}

TEST(TcpLoopback, HandshakeNegotiatesEverything) {
    Wire w(WireOptions{});
    auto [c, s] = open_pair(w);
    const TcpInfo ci = *w.a().info(c);
    const TcpInfo si = *w.b().info(s);
    EXPECT_TRUE(ci.timestamps && ci.sack && ci.window_scaling);
    EXPECT_TRUE(si.timestamps && si.sack && si.window_scaling);
    EXPECT_EQ(ci.snd_mss, 1448u);  // 1500 - 40 - 12 (timestamps)
    EXPECT_EQ(ci.snd_una, si.irs + 1);
    EXPECT_EQ(si.snd_una, ci.irs + 1);
}

TEST(TcpLoopback, BulkTransferIsByteExact) {
    Wire w(WireOptions{});
    auto [c, s] = open_pair(w);
    const auto data = make_data(4 << 20, 1);
    std::vector<Transfer> t{Transfer(&w.a(), &w.b(), c, s, &data)};
    run_transfer(w, t, Duration::from_secs(600));
    EXPECT_EQ(t[0].received.size(), data.size());
    EXPECT_TRUE(t[0].received == data);
    EXPECT_EQ(w.a().counters().retransmitted_segments, 0u);
}

TEST(TcpLoopback, BothDirectionsAtOnce) {
    Wire w(WireOptions{});
    auto [c, s] = open_pair(w);
    const auto up = make_data(1 << 20, 2);
    const auto down = make_data(3 << 19, 3);
    std::vector<Transfer> t{Transfer(&w.a(), &w.b(), c, s, &up), Transfer(&w.b(), &w.a(), s, c, &down)};
    run_transfer(w, t, Duration::from_secs(600));
    EXPECT_TRUE(t[0].received == up);
    EXPECT_TRUE(t[1].received == down);
}

// Loss and reordering: SACK recovery, RTOs and reassembly still deliver
// every byte in order.
TEST(TcpLoopback, LossAndReorderingStillByteExact) {
    for (uint64_t seed : {11u, 12u, 13u}) {
        WireOptions options;
        options.loss = 0.02;
        options.reorder = 0.05;
        options.seed = seed;
        Wire w(options);
        auto [c, s] = open_pair(w);
        const auto up = make_data(1 << 20, seed);
        const auto down = make_data(1 << 19, seed + 100);
        std::vector<Transfer> t{Transfer(&w.a(), &w.b(), c, s, &up), Transfer(&w.b(), &w.a(), s, c, &down)};
        run_transfer(w, t, Duration::from_secs(3600));
        EXPECT_TRUE(t[0].received == up) << "seed " << seed;
        EXPECT_TRUE(t[1].received == down) << "seed " << seed;
        EXPECT_GT(w.dropped(), 0u);
        EXPECT_GT(w.a().counters().retransmitted_segments + w.b().counters().retransmitted_segments, 0u);
    }
}

// The same without SACK and timestamps: NewReno recovery.
TEST(TcpLoopback, LossWithoutSackOrTimestamps) {
    WireOptions options;
    options.loss = 0.02;
    options.reorder = 0.02;
    options.seed = 21;
    TcpConfig ca = Wire::config_for(addr_a);
    ca.sack = false;
    ca.timestamps = false;
    ca.congestion = CongestionAlgorithm::NewReno;
    Wire w(options, ca);
    auto [c, s] = open_pair(w);
    EXPECT_FALSE(w.a().info(c)->sack);
    const auto up = make_data(1 << 20, 5);
    std::vector<Transfer> t{Transfer(&w.a(), &w.b(), c, s, &up)};
    run_transfer(w, t, Duration::from_secs(3600));
    EXPECT_TRUE(t[0].received == up);
    EXPECT_GT(w.dropped(), 10u);
    EXPECT_GT(w.a().counters().fast_retransmits, 0u);
}

// Heavy loss: the connection survives on RTOs.
TEST(TcpLoopback, HeavyLossSurvives) {
    WireOptions options;
    options.loss = 0.15;
    options.seed = 31;
    Wire w(options);
    auto [c, s] = open_pair(w);
    const auto up = make_data(200000, 9);
    std::vector<Transfer> t{Transfer(&w.a(), &w.b(), c, s, &up)};
    run_transfer(w, t, Duration::from_secs(3600));
    EXPECT_TRUE(t[0].received == up);
    EXPECT_GT(w.a().counters().rto_timeouts, 0u);
}

// After both ends close, the active closer holds TIME_WAIT and the other
// end has nothing left.
TEST(TcpLoopback, CloseHandshakeLeavesTimeWaitOnActiveCloser) {
    Wire w(WireOptions{});
    auto [c, s] = open_pair(w);
    w.a().close(c, w.now());
    ASSERT_TRUE(w.run([&] { return w.b().state(s) == TcpState::CloseWait; }, Duration::from_secs(5)));
    w.b().close(s, w.now());
    ASSERT_TRUE(w.run([&] { return w.a().time_wait_count() == 1 && w.b().socket_count() == 0; },
                      Duration::from_secs(5)));
    EXPECT_EQ(w.a().socket_count(), 0u);
    ASSERT_TRUE(w.run([&] { return w.a().time_wait_count() == 0; }, Duration::from_secs(61)));
}

// The peer vanishes mid-transfer (every packet lost from then on): the
// sender gives up with ETIMEDOUT after tcp_retries2 (5 here: 0.2 s doubling
// six times, tcp_model_timeout = 12.6 s), in simulated time.
TEST(TcpLoopback, PeerVanishesEndsWithEtimedout) {
    TcpConfig ca = Wire::config_for(addr_a);
    ca.retries2 = 5;
    Wire w(WireOptions{}, ca);
    auto [c, s] = open_pair(w);
    const auto data = make_data(100000, 8);
    ASSERT_TRUE(w.a().send(c, w.now(), data));
    ASSERT_TRUE(w.run([&] { return w.b().info(s)->recv_queued > 0; }, Duration::from_secs(1)));
    w.set_loss(1.0);
    const Instant cut = w.now();
    ASSERT_TRUE(w.a().send(c, w.now(), make_data(5000, 9)));
    ASSERT_TRUE(w.run([&] { return w.a().state(c) == TcpState::Closed; }, Duration::from_secs(60)));
    EXPECT_EQ(w.a().take_error(c), ETIMEDOUT);
    const double elapsed = (w.now() - cut).micros() / 1e6;
    EXPECT_GT(elapsed, 12.0);
    EXPECT_LT(elapsed, 14.0);
    EXPECT_EQ(w.a().counters().timeouts_established, 1u);
}

// Performance: 64 MiB in simulated time must take seconds of real time.
TEST(TcpLoopback, Bulk64MiBIsFast) {
    Wire w(WireOptions{});
    auto [c, s] = open_pair(w);
    const auto data = make_data(64 << 20, 4);
    std::vector<Transfer> t{Transfer(&w.a(), &w.b(), c, s, &data)};
    const auto start = std::chrono::steady_clock::now();
    run_transfer(w, t, Duration::from_secs(3600));
    const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    EXPECT_TRUE(t[0].received == data);
    const double simulated = (w.now() - Instant::from_secs(1)).micros() / 1e6;
    std::printf("[ info     ] 64 MiB: %.2f s real, %.2f s simulated, %llu segments\n", seconds, simulated,
                static_cast<unsigned long long>(w.delivered()));
#if defined(__SANITIZE_ADDRESS__)
    EXPECT_LT(seconds, 120.0);
#else
    EXPECT_LT(seconds, 20.0);
#endif
}

}  // namespace
}  // namespace ustack::tcp
