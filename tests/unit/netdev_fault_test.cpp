// The fault injector, driven in simulated time: every test passes explicit
// Instants and steps the clock to next_arrival(); nothing sleeps.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <vector>

#include "netdev/fault_injector.h"
#include "netdev/pair.h"

namespace ustack::netdev {
namespace {

constexpr wire::MacAddress mac_a{{0x02, 0, 0, 0, 0, 0x0a}};
constexpr wire::MacAddress mac_b{{0x02, 0, 0, 0, 0, 0x0b}};

// dst, src, a local experimental EtherType, a big-endian sequence number,
// padding to the 60-byte Ethernet minimum.
Frame make_frame(uint32_t seq) {
    Frame f(60, 0);
    for (size_t i = 0; i < 6; ++i) {
        f[i] = mac_b.bytes[i];
        f[6 + i] = mac_a.bytes[i];
    }
    f[12] = 0x88;
    f[13] = 0xb5;
    for (size_t i = 0; i < 4; ++i) {
        f[14 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
    }
    f[59] = static_cast<uint8_t>(seq * 7);  // so frames differ beyond the header too
    return f;
}

uint32_t seq_of(const Frame& f) {
    return (static_cast<uint32_t>(f[14]) << 24) | (static_cast<uint32_t>(f[15]) << 16) |
           (static_cast<uint32_t>(f[16]) << 8) | static_cast<uint32_t>(f[17]);
}

struct Delivery {
    Instant at;
    Frame bytes;
    bool operator==(const Delivery&) const = default;
};

// A -> B, with B's end wrapped: the direction under test.
struct TestLink {
    std::unique_ptr<NetDev> sender;
    std::unique_ptr<FaultInjector> receiver;
};

TestLink make_link(FaultConfig config, uint64_t seed) {
    auto pair = make_device_pair(mac_a, mac_b);
    return TestLink{std::move(pair.a),
                    std::make_unique<FaultInjector>(std::move(pair.b), config, seed)};
}

// Sends `count` frames, one every `interval` from t = 0, and receives
// everything, stepping simulated time to each next_arrival() in between and
// after the last send until nothing is pending.
class Simulation {
public:
    explicit Simulation(TestLink& link) : link_(link) {}

    std::vector<Delivery> run(uint32_t count, Duration interval) {
        for (uint32_t i = 0; i < count; ++i) {
            const Instant t = Instant::zero() + interval * i;
            deliver_before(t);
            now_ = t;
            EXPECT_TRUE(link_.sender->send(now_, make_frame(i)));
            drain();
        }
        deliver_before(Instant::from_secs(1000000));
        EXPECT_EQ(link_.receiver->pending(), 0u);
        return std::move(deliveries_);
    }

private:
    void deliver_before(Instant limit) {
        while (auto next = link_.receiver->next_arrival()) {
            if (*next >= limit) {
                break;
            }
            now_ = std::max(now_, *next);
            drain();
        }
    }

    void drain() {
        while (auto f = link_.receiver->receive(now_)) {
            deliveries_.push_back(Delivery{now_, std::move(*f)});
        }
        // Having said "nothing more now", the device must not claim a frame
        // is already due: a loop trusting next_arrival() would spin or stall.
        const auto next = link_.receiver->next_arrival();
        EXPECT_TRUE(!next || *next > now_);
    }

    TestLink& link_;
    Instant now_;
    std::vector<Delivery> deliveries_;
};

std::vector<uint32_t> seqs_of(const std::vector<Delivery>& deliveries) {
    std::vector<uint32_t> out;
    for (const auto& d : deliveries) {
        out.push_back(seq_of(d.bytes));
    }
    return out;
}

size_t descents(const std::vector<uint32_t>& seqs) {
    size_t n = 0;
    for (size_t i = 1; i < seqs.size(); ++i) {
        if (seqs[i] < seqs[i - 1]) {
            ++n;
        }
    }
    return n;
}

void expect_balanced(const FaultStats& s, size_t delivered) {
    EXPECT_EQ(s.frames_out, delivered);
    EXPECT_EQ(s.frames_in, s.frames_out + s.dropped - s.duplicated);
}

TEST(NetdevFault, NoFaultsIsTransparent) {
    auto link = make_link(FaultConfig{}, 1);
    const auto deliveries = Simulation(link).run(100, Duration::from_micros(100));
    ASSERT_EQ(deliveries.size(), 100u);
    for (uint32_t i = 0; i < 100; ++i) {
        EXPECT_EQ(deliveries[i].bytes, make_frame(i));
        EXPECT_EQ(deliveries[i].at, Instant::from_micros(100 * i));
    }
    const FaultStats& s = link.receiver->fault_stats();
    EXPECT_EQ(s.frames_in, 100u);
    EXPECT_EQ(s.dropped + s.duplicated + s.reordered + s.delayed + s.corrupted, 0u);
}

TEST(NetdevFault, DropRateLandsInBand) {
    FaultConfig config;
    config.drop_probability = 0.05;
    auto link = make_link(config, 20240601);
    const auto deliveries = Simulation(link).run(10000, Duration::from_micros(10));
    const FaultStats& s = link.receiver->fault_stats();
    EXPECT_EQ(s.frames_in, 10000u);
    // Binomial(10000, 0.05): mean 500, sd ~22; the band is about +-4.5 sd.
    EXPECT_GE(s.dropped, 400u);
    EXPECT_LE(s.dropped, 600u);
    expect_balanced(s, deliveries.size());
    const auto seqs = seqs_of(deliveries);
    EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
    EXPECT_EQ(std::adjacent_find(seqs.begin(), seqs.end()), seqs.end());
}

TEST(NetdevFault, DropRateHoldsForOtherSeeds) {
    for (uint64_t seed = 1; seed <= 5; ++seed) {
        FaultConfig config;
        config.drop_probability = 0.05;
        auto link = make_link(config, seed);
        (void)Simulation(link).run(10000, Duration::from_micros(10));
        EXPECT_GE(link.receiver->fault_stats().dropped, 400u) << "seed " << seed;
        EXPECT_LE(link.receiver->fault_stats().dropped, 600u) << "seed " << seed;
    }
}

TEST(NetdevFault, DuplicationAddsCopiesAndLosesNothing) {
    FaultConfig config;
    config.duplicate_probability = 0.1;
    auto link = make_link(config, 7);
    const auto deliveries = Simulation(link).run(10000, Duration::from_micros(10));
    const FaultStats& s = link.receiver->fault_stats();
    EXPECT_GE(s.duplicated, 800u);
    EXPECT_LE(s.duplicated, 1200u);
    EXPECT_EQ(s.dropped, 0u);
    expect_balanced(s, deliveries.size());

    std::map<uint32_t, int> copies;
    for (const auto& d : deliveries) {
        EXPECT_EQ(d.bytes, make_frame(seq_of(d.bytes)));
        ++copies[seq_of(d.bytes)];
    }
    ASSERT_EQ(copies.size(), 10000u);  // every frame at least once
    uint64_t twice = 0;
    for (const auto& [seq, n] : copies) {
        EXPECT_TRUE(n == 1 || n == 2) << "seq " << seq << " delivered " << n << " times";
        twice += n == 2 ? 1 : 0;
    }
    EXPECT_EQ(twice, s.duplicated);
}

TEST(NetdevFault, ReorderSwapsNeighboursAndLosesNothing) {
    FaultConfig config;
    config.reorder_probability = 0.1;
    auto link = make_link(config, 99);
    // Frames 100 us apart, well inside the 10 ms hold: every held frame is
    // overtaken by exactly its successor.
    const auto deliveries = Simulation(link).run(10000, Duration::from_micros(100));
    const FaultStats& s = link.receiver->fault_stats();
    // A frame following a held one is never held, so ~p/(1+p) = 9.1 % are.
    EXPECT_GE(s.reordered, 750u);
    EXPECT_LE(s.reordered, 1070u);
    expect_balanced(s, deliveries.size());

    auto seqs = seqs_of(deliveries);
    EXPECT_EQ(descents(seqs), s.reordered);
    for (size_t i = 1; i < seqs.size(); ++i) {
        if (seqs[i] < seqs[i - 1]) {
            EXPECT_EQ(seqs[i] + 1, seqs[i - 1]) << "only adjacent swaps expected";
        }
    }
    std::sort(seqs.begin(), seqs.end());
    ASSERT_EQ(seqs.size(), 10000u);
    for (uint32_t i = 0; i < 10000; ++i) {
        ASSERT_EQ(seqs[i], i);
    }
}

TEST(NetdevFault, HeldFrameIsOvertakenByTheNextOne) {
    FaultConfig config;
    config.reorder_probability = 1.0;
    auto link = make_link(config, 3);
    const Instant t0 = Instant::from_millis(1);
    ASSERT_TRUE(link.sender->send(t0, make_frame(1)));
    ASSERT_TRUE(link.sender->send(t0, make_frame(2)));
    // 1 is held; 2 cannot be (one hold at a time) and releases 1 behind it.
    EXPECT_EQ(link.receiver->receive(t0), make_frame(2));
    EXPECT_EQ(link.receiver->receive(t0), make_frame(1));
    EXPECT_EQ(link.receiver->fault_stats().reordered, 1u);
}

TEST(NetdevFault, HeldFrameWithoutSuccessorIsLateNotLost) {
    FaultConfig config;
    config.reorder_probability = 1.0;
    config.reorder_timeout = Duration::from_millis(10);
    auto link = make_link(config, 3);
    ASSERT_TRUE(link.sender->send(Instant::zero(), make_frame(1)));
    EXPECT_FALSE(link.receiver->receive(Instant::zero()).has_value());
    EXPECT_EQ(link.receiver->pending(), 1u);
    EXPECT_EQ(link.receiver->next_arrival(), Instant::from_millis(10));
    EXPECT_FALSE(link.receiver->receive(Instant::from_micros(9999)).has_value());
    EXPECT_EQ(link.receiver->receive(Instant::from_millis(10)), make_frame(1));
    EXPECT_EQ(link.receiver->fault_stats().reordered, 0u);
    EXPECT_EQ(link.receiver->pending(), 0u);
    EXPECT_FALSE(link.receiver->next_arrival().has_value());
}

TEST(NetdevFault, FixedDelayIsHonoured) {
    FaultConfig config;
    config.delay = Duration::from_millis(5);
    auto link = make_link(config, 11);
    ASSERT_TRUE(link.sender->send(Instant::zero(), make_frame(1)));
    EXPECT_FALSE(link.receiver->receive(Instant::zero()).has_value());
    EXPECT_EQ(link.receiver->next_arrival(), Instant::from_millis(5));
    EXPECT_FALSE(link.receiver->receive(Instant::from_micros(4999)).has_value());
    EXPECT_EQ(link.receiver->receive(Instant::from_millis(5)), make_frame(1));
    EXPECT_EQ(link.receiver->fault_stats().delayed, 1u);
    EXPECT_FALSE(link.receiver->next_arrival().has_value());
}

TEST(NetdevFault, FixedDelayKeepsOrderInAStream) {
    FaultConfig config;
    config.delay = Duration::from_millis(5);
    auto link = make_link(config, 11);
    const auto deliveries = Simulation(link).run(1000, Duration::from_micros(100));
    ASSERT_EQ(deliveries.size(), 1000u);
    for (uint32_t i = 0; i < 1000; ++i) {
        EXPECT_EQ(deliveries[i].bytes, make_frame(i));
        EXPECT_EQ(deliveries[i].at, Instant::from_micros(100 * i) + Duration::from_millis(5));
    }
    EXPECT_EQ(link.receiver->fault_stats().delayed, 1000u);
}

TEST(NetdevFault, JitterStaysInRangeAndDeliversByDueTime) {
    FaultConfig config;
    config.delay = Duration::from_millis(1);
    config.jitter = Duration::from_millis(2);
    auto link = make_link(config, 5);
    const auto deliveries = Simulation(link).run(2000, Duration::from_micros(100));
    ASSERT_EQ(deliveries.size(), 2000u);
    Instant previous;
    for (const auto& d : deliveries) {
        const Instant sent = Instant::from_micros(100 * static_cast<int64_t>(seq_of(d.bytes)));
        const Duration latency = d.at - sent;
        EXPECT_GE(latency, Duration::from_millis(1));
        EXPECT_LE(latency, Duration::from_millis(3));
        EXPECT_GE(d.at, previous);
        previous = d.at;
    }
    // Jitter of 2 ms over 100 us spacing reorders, as netem does.
    EXPECT_GT(descents(seqs_of(deliveries)), 0u);
    EXPECT_EQ(link.receiver->fault_stats().reordered, 0u);
    expect_balanced(link.receiver->fault_stats(), deliveries.size());
}

TEST(NetdevFault, CorruptionFlipsExactlyOneByte) {
    FaultConfig config;
    config.corrupt_probability = 1.0;
    auto link = make_link(config, 13);
    const auto deliveries = Simulation(link).run(500, Duration::from_micros(10));
    ASSERT_EQ(deliveries.size(), 500u);
    for (uint32_t i = 0; i < 500; ++i) {
        const Frame original = make_frame(i);
        ASSERT_EQ(deliveries[i].bytes.size(), original.size());
        int differing = 0;
        for (size_t k = 0; k < original.size(); ++k) {
            differing += deliveries[i].bytes[k] != original[k] ? 1 : 0;
        }
        EXPECT_EQ(differing, 1) << "frame " << i;
    }
    EXPECT_EQ(link.receiver->fault_stats().corrupted, 500u);
}

TEST(NetdevFault, AllFaultsTogetherBalance) {
    FaultConfig config;
    config.drop_probability = 0.05;
    config.duplicate_probability = 0.05;
    config.reorder_probability = 0.05;
    config.delay = Duration::from_micros(300);
    config.jitter = Duration::from_micros(200);
    auto link = make_link(config, 424242);
    const auto deliveries = Simulation(link).run(10000, Duration::from_micros(50));
    const FaultStats& s = link.receiver->fault_stats();
    EXPECT_EQ(s.frames_in, 10000u);
    EXPECT_GT(s.dropped, 0u);
    EXPECT_GT(s.duplicated, 0u);
    EXPECT_GT(s.reordered, 0u);
    EXPECT_EQ(s.delayed, 10000u - s.dropped);
    expect_balanced(s, deliveries.size());
    EXPECT_EQ(link.receiver->stats().rx_frames, deliveries.size());
}

TEST(NetdevFault, SameSeedSameRunOtherSeedOtherRun) {
    FaultConfig config;
    config.drop_probability = 0.1;
    config.duplicate_probability = 0.1;
    config.reorder_probability = 0.1;
    config.corrupt_probability = 0.05;
    config.jitter = Duration::from_micros(500);
    auto run = [&config](uint64_t seed) {
        auto link = make_link(config, seed);
        return Simulation(link).run(2000, Duration::from_micros(100));
    };
    const auto first = run(77);
    EXPECT_EQ(first, run(77));
    EXPECT_NE(first, run(78));
}

TEST(NetdevFault, SendIsNotImpaired) {
    FaultConfig config;
    config.drop_probability = 1.0;
    auto pair = make_device_pair(mac_a, mac_b);
    FaultInjector a(std::move(pair.a), config, 1);
    ASSERT_TRUE(a.send(Instant::zero(), make_frame(1)));
    EXPECT_EQ(pair.b->receive(Instant::zero()), make_frame(1));
    ASSERT_TRUE(pair.b->send(Instant::zero(), make_frame(2)));
    EXPECT_FALSE(a.receive(Instant::zero()).has_value());
    EXPECT_EQ(a.fault_stats().dropped, 1u);
    EXPECT_EQ(a.stats().tx_frames, 1u);
    EXPECT_EQ(a.stats().rx_frames, 0u);
    EXPECT_EQ(a.mac(), mac_a);
    EXPECT_EQ(a.mtu(), 1500u);
}

TEST(NetdevFault, SetConfigHealsAPartition) {
    FaultConfig partition;
    partition.drop_probability = 1.0;
    auto link = make_link(partition, 21);
    for (uint32_t i = 0; i < 10; ++i) {
        ASSERT_TRUE(link.sender->send(Instant::zero(), make_frame(i)));
    }
    EXPECT_FALSE(link.receiver->receive(Instant::zero()).has_value());
    link.receiver->set_config(FaultConfig{});
    ASSERT_TRUE(link.sender->send(Instant::zero(), make_frame(10)));
    EXPECT_EQ(link.receiver->receive(Instant::zero()), make_frame(10));
    EXPECT_EQ(link.receiver->fault_stats().dropped, 10u);
}

}  // namespace
}  // namespace ustack::netdev
