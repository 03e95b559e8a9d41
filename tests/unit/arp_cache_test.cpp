#include "stack/ip/arp_cache.h"

#include <gtest/gtest.h>

namespace ustack::ip {
namespace {

const wire::Ipv4Address ip1{10, 0, 0, 5};
const wire::MacAddress mac1{{2, 0, 0, 0, 0, 5}};

Frame blank_frame(uint8_t tag) {
    Frame f(60, 0);
    f[59] = tag;
    return f;
}

TEST(ArpCache, QueueThenResolveFillsDestinationAndFlushesInOrder) {
    ArpCache cache;
    const Instant t0 = Instant::from_secs(10);
    EXPECT_EQ(cache.enqueue(ip1, blank_frame(1), t0), ArpCache::EnqueueResult::SendRequest);
    EXPECT_EQ(cache.enqueue(ip1, blank_frame(2), t0), ArpCache::EnqueueResult::Queued);
    EXPECT_FALSE(cache.lookup(ip1, t0));
    auto ready = cache.update(ip1, mac1, t0, /*create=*/false);
    ASSERT_EQ(ready.size(), 2u);
    EXPECT_EQ(ready[0][59], 1);
    EXPECT_EQ(ready[1][59], 2);
    EXPECT_TRUE(std::equal(mac1.bytes.begin(), mac1.bytes.end(), ready[0].begin()));
    EXPECT_EQ(cache.lookup(ip1, t0), mac1);
}

TEST(ArpCache, MergeDoesNotCreateEntriesForOthersTraffic) {
    ArpCache cache;
    EXPECT_TRUE(cache.update(ip1, mac1, Instant::zero(), /*create=*/false).empty());
    EXPECT_FALSE(cache.lookup(ip1, Instant::zero()));
    cache.update(ip1, mac1, Instant::zero(), /*create=*/true);
    EXPECT_EQ(cache.lookup(ip1, Instant::zero()), mac1);
}

TEST(ArpCache, RetriesThenFailsHandingBackThePendingFrames) {
    ArpConfig config;
    ArpCache cache(config);
    Instant t = Instant::from_secs(1);
    ASSERT_EQ(cache.enqueue(ip1, blank_frame(7), t), ArpCache::EnqueueResult::SendRequest);
    EXPECT_EQ(cache.poll_at(), t + config.retry_interval);
    t += config.retry_interval;
    auto timers = cache.poll(t);
    EXPECT_EQ(timers.retry.size(), 1u);  // second request
    t += config.retry_interval;
    timers = cache.poll(t);
    EXPECT_EQ(timers.retry.size(), 1u);  // third request
    t += config.retry_interval;
    timers = cache.poll(t);
    EXPECT_TRUE(timers.retry.empty());
    ASSERT_EQ(timers.failed.size(), 1u);
    EXPECT_EQ(timers.failed[0].ip, ip1);
    ASSERT_EQ(timers.failed[0].frames.size(), 1u);
    EXPECT_EQ(cache.size(), 0u);
}

TEST(ArpCache, EntryExpiresExactlyAtItsLifetime) {
    ArpConfig config;
    config.entry_lifetime = Duration::from_secs(30);
    ArpCache cache(config);
    const Instant t0 = Instant::from_secs(5);
    cache.update(ip1, mac1, t0, true);
    EXPECT_TRUE(cache.lookup(ip1, t0 + Duration::from_secs(30) - Duration::from_micros(1)));
    EXPECT_FALSE(cache.lookup(ip1, t0 + Duration::from_secs(30)));
    EXPECT_EQ(cache.poll(t0 + Duration::from_secs(30)).expired, 1u);
    EXPECT_EQ(cache.size(), 0u);
}

TEST(ArpCache, PendingQueueIsBoundedInBytes) {
    ArpConfig config;
    config.max_pending_bytes_per_entry = 150;
    ArpCache cache(config);
    EXPECT_EQ(cache.enqueue(ip1, blank_frame(1), Instant::zero()), ArpCache::EnqueueResult::SendRequest);
    EXPECT_EQ(cache.enqueue(ip1, blank_frame(2), Instant::zero()), ArpCache::EnqueueResult::Queued);
    EXPECT_EQ(cache.enqueue(ip1, blank_frame(3), Instant::zero()), ArpCache::EnqueueResult::Dropped);
}

TEST(ArpCache, TableIsBoundedEvictingTheOldestResolvedEntry) {
    ArpConfig config;
    config.max_entries = 4;
    ArpCache cache(config);
    for (uint8_t i = 1; i <= 4; ++i) {
        cache.update(wire::Ipv4Address(10, 0, 0, i), mac1, Instant::from_secs(i), true);
    }
    cache.update(wire::Ipv4Address(10, 0, 0, 9), mac1, Instant::from_secs(9), true);
    EXPECT_EQ(cache.size(), 4u);
    EXPECT_EQ(cache.evicted(), 1u);
    EXPECT_FALSE(cache.lookup(wire::Ipv4Address(10, 0, 0, 1), Instant::from_secs(9)));
    EXPECT_TRUE(cache.lookup(wire::Ipv4Address(10, 0, 0, 9), Instant::from_secs(9)));
}

}  // namespace
}  // namespace ustack::ip
