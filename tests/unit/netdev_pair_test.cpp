// The in-memory device pair: delivery, limits, stats and lifetime.
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "netdev/pair.h"

namespace ustack::netdev {
namespace {

constexpr wire::MacAddress mac_a{{0x02, 0, 0, 0, 0, 0x0a}};
constexpr wire::MacAddress mac_b{{0x02, 0, 0, 0, 0, 0x0b}};

// A minimal Ethernet frame: dst, src, a local experimental EtherType, then
// `payload_len` bytes whose first four hold `seq`.
Frame make_frame(uint32_t seq, size_t payload_len = 46) {
    Frame f(14 + payload_len, 0);
    for (size_t i = 0; i < 6; ++i) {
        f[i] = mac_b.bytes[i];
        f[6 + i] = mac_a.bytes[i];
    }
    f[12] = 0x88;
    f[13] = 0xb5;
    for (size_t i = 0; i < 4 && i < payload_len; ++i) {
        f[14 + i] = static_cast<uint8_t>(seq >> (24 - 8 * i));
    }
    return f;
}

TEST(NetdevPair, FramesFlowBothWaysInOrder) {
    auto pair = make_device_pair(mac_a, mac_b);
    const Instant t0 = Instant::from_millis(1);
    for (uint32_t i = 0; i < 5; ++i) {
        ASSERT_TRUE(pair.a->send(t0, make_frame(i)));
        ASSERT_TRUE(pair.b->send(t0, make_frame(100 + i)));
    }
    for (uint32_t i = 0; i < 5; ++i) {
        auto at_b = pair.b->receive(t0);
        ASSERT_TRUE(at_b.has_value());
        EXPECT_EQ(*at_b, make_frame(i));
        auto at_a = pair.a->receive(t0);
        ASSERT_TRUE(at_a.has_value());
        EXPECT_EQ(*at_a, make_frame(100 + i));
    }
    EXPECT_FALSE(pair.a->receive(t0).has_value());
    EXPECT_FALSE(pair.b->receive(t0).has_value());
}

TEST(NetdevPair, FramesAreDueAtAnyTime) {
    auto pair = make_device_pair(mac_a, mac_b);
    ASSERT_TRUE(pair.a->send(Instant::from_secs(10), make_frame(1)));
    // Even a `now` before the send time: the pair has no notion of latency.
    EXPECT_TRUE(pair.b->receive(Instant::zero()).has_value());
}

TEST(NetdevPair, SendCopiesTheFrame) {
    auto pair = make_device_pair(mac_a, mac_b);
    Frame f = make_frame(7);
    ASSERT_TRUE(pair.a->send(Instant::zero(), f));
    f.assign(f.size(), 0xee);
    auto got = pair.b->receive(Instant::zero());
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(*got, make_frame(7));
}

TEST(NetdevPair, ReportsMacAndMtu) {
    auto pair = make_device_pair(mac_a, mac_b, 9000);
    EXPECT_EQ(pair.a->mac(), mac_a);
    EXPECT_EQ(pair.b->mac(), mac_b);
    EXPECT_EQ(pair.a->mtu(), 9000u);
    EXPECT_EQ(pair.b->mtu(), 9000u);
    EXPECT_EQ(pair.a->poll_fd(), -1);
}

TEST(NetdevPair, OversizedFramesAreDropped) {
    auto pair = make_device_pair(mac_a, mac_b, 1500);
    EXPECT_TRUE(pair.a->send(Instant::zero(), make_frame(1, 1500)));   // 1514 bytes: fits
    EXPECT_FALSE(pair.a->send(Instant::zero(), make_frame(2, 1501)));  // 1515: one too many
    EXPECT_EQ(pair.a->stats().tx_dropped, 1u);
    EXPECT_EQ(pair.a->stats().tx_frames, 1u);
    EXPECT_EQ(pair.a->stats().tx_bytes, 1514u);
    auto got = pair.b->receive(Instant::zero());
    ASSERT_TRUE(got.has_value());
    EXPECT_EQ(got->size(), 1514u);
    EXPECT_FALSE(pair.b->receive(Instant::zero()).has_value());
}

TEST(NetdevPair, QueueOverflowCountsAsTxDropped) {
    PairConfig config;
    config.queue_capacity = 3;
    auto pair = make_device_pair(mac_a, mac_b, config);
    for (uint32_t i = 0; i < 3; ++i) {
        EXPECT_TRUE(pair.a->send(Instant::zero(), make_frame(i)));
    }
    EXPECT_FALSE(pair.a->send(Instant::zero(), make_frame(3)));
    EXPECT_EQ(pair.a->stats().tx_dropped, 1u);
    // The other direction has its own queue.
    EXPECT_TRUE(pair.b->send(Instant::zero(), make_frame(9)));
    // Draining makes room again; the dropped frame is gone, the rest in order.
    ASSERT_EQ(*pair.b->receive(Instant::zero()), make_frame(0));
    EXPECT_TRUE(pair.a->send(Instant::zero(), make_frame(4)));
    EXPECT_EQ(*pair.b->receive(Instant::zero()), make_frame(1));
    EXPECT_EQ(*pair.b->receive(Instant::zero()), make_frame(2));
    EXPECT_EQ(*pair.b->receive(Instant::zero()), make_frame(4));
}

TEST(NetdevPair, DefaultQueueHolds4096Frames) {
    auto pair = make_device_pair(mac_a, mac_b);
    for (uint32_t i = 0; i < 4096; ++i) {
        ASSERT_TRUE(pair.a->send(Instant::zero(), make_frame(i)));
    }
    EXPECT_FALSE(pair.a->send(Instant::zero(), make_frame(4096)));
    EXPECT_EQ(pair.a->stats().tx_dropped, 1u);
}

TEST(NetdevPair, StatsCountFramesAndBytes) {
    auto pair = make_device_pair(mac_a, mac_b);
    ASSERT_TRUE(pair.a->send(Instant::zero(), make_frame(1, 46)));
    ASSERT_TRUE(pair.a->send(Instant::zero(), make_frame(2, 100)));
    ASSERT_TRUE(pair.b->receive(Instant::zero()).has_value());
    const DeviceStats& a = pair.a->stats();
    const DeviceStats& b = pair.b->stats();
    EXPECT_EQ(a.tx_frames, 2u);
    EXPECT_EQ(a.tx_bytes, 60u + 114u);
    EXPECT_EQ(a.rx_frames, 0u);
    EXPECT_EQ(b.rx_frames, 1u);
    EXPECT_EQ(b.rx_bytes, 60u);
    EXPECT_EQ(b.tx_frames, 0u);
    ASSERT_TRUE(pair.b->receive(Instant::zero()).has_value());
    EXPECT_EQ(pair.b->stats().rx_frames, 2u);
    EXPECT_EQ(pair.b->stats().rx_bytes, 174u);
}

TEST(NetdevPair, NextArrivalIsOldestSendTime) {
    auto pair = make_device_pair(mac_a, mac_b);
    EXPECT_FALSE(pair.b->next_arrival().has_value());
    ASSERT_TRUE(pair.a->send(Instant::from_millis(3), make_frame(1)));
    ASSERT_TRUE(pair.a->send(Instant::from_millis(5), make_frame(2)));
    EXPECT_EQ(pair.b->next_arrival(), Instant::from_millis(3));
    EXPECT_FALSE(pair.a->next_arrival().has_value());
    ASSERT_TRUE(pair.b->receive(Instant::from_millis(5)).has_value());
    EXPECT_EQ(pair.b->next_arrival(), Instant::from_millis(5));
    ASSERT_TRUE(pair.b->receive(Instant::from_millis(5)).has_value());
    EXPECT_FALSE(pair.b->next_arrival().has_value());
}

TEST(NetdevPair, EitherEndMayBeDestroyedFirst) {
    for (int destroy_first = 0; destroy_first < 2; ++destroy_first) {
        auto pair = make_device_pair(mac_a, mac_b);
        ASSERT_TRUE(pair.a->send(Instant::zero(), make_frame(1)));
        ASSERT_TRUE(pair.b->send(Instant::zero(), make_frame(2)));
        auto& gone = destroy_first == 0 ? pair.a : pair.b;
        auto& survivor = destroy_first == 0 ? pair.b : pair.a;
        gone.reset();
        // What was already in flight to the survivor is still delivered...
        auto got = survivor->receive(Instant::zero());
        ASSERT_TRUE(got.has_value());
        EXPECT_EQ(*got, make_frame(destroy_first == 0 ? 1 : 2));
        // ...and sending into the void is a counted drop, not a crash.
        EXPECT_FALSE(survivor->send(Instant::zero(), make_frame(3)));
        EXPECT_EQ(survivor->stats().tx_dropped, 1u);
        EXPECT_FALSE(survivor->receive(Instant::zero()).has_value());
        survivor.reset();
    }
}

TEST(NetdevPair, EndsMayRunOnTwoThreads) {
    PairConfig config;
    config.queue_capacity = 64;  // small, so the sender sees back-pressure
    auto pair = make_device_pair(mac_a, mac_b, config);
    constexpr uint32_t count = 20000;
    std::thread sender([&] {
        for (uint32_t i = 0; i < count;) {
            if (pair.a->send(Instant::zero(), make_frame(i))) {
                ++i;
            } else {
                std::this_thread::yield();
            }
        }
    });
    uint32_t expected = 0;
    while (expected < count) {
        if (auto f = pair.b->receive(Instant::zero())) {
            // EXPECT, not ASSERT: returning early would leave the thread joinable.
            EXPECT_EQ(*f, make_frame(expected));
            ++expected;
        } else {
            std::this_thread::yield();
        }
    }
    sender.join();
    EXPECT_EQ(pair.a->stats().tx_frames, count);
    EXPECT_EQ(pair.b->stats().rx_frames, count);
}

}  // namespace
}  // namespace ustack::netdev
