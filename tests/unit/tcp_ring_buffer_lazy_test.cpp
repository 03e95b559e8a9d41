// RingBuffer's storage: allocated on the first byte, in chunks, and given
// back as soon as no held byte lives in a chunk (an idle connection holds
// no buffer memory). The byte semantics are tcp_ring_buffer_test.cpp's,
// unchanged; these tests look at allocated_bytes() and at data crossing
// chunk boundaries and the ring's physical end.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "stack/tcp/ring_buffer.h"

namespace ustack::tcp {
namespace {

constexpr size_t chunk = RingBuffer::chunk_size;

// n bytes of a pattern starting at stream position `from`.
std::vector<uint8_t> pattern(size_t from, size_t n) {
    std::vector<uint8_t> out(n);
    for (size_t i = 0; i < n; ++i) {
        out[i] = static_cast<uint8_t>(((from + i) * 131) >> 3);
    }
    return out;
}

TEST(RingBufferLazy, NothingAllocatedUntilTheFirstByte) {
    RingBuffer rb(4 * chunk);
    EXPECT_EQ(rb.allocated_bytes(), 0u);
    EXPECT_EQ(rb.capacity(), 4 * chunk);
    EXPECT_EQ(rb.free_space(), 4 * chunk) << "the window advertised comes from capacity, not from storage";
    rb.set_capacity(8 * chunk);  // SO_RCVBUF on an idle socket
    EXPECT_EQ(rb.allocated_bytes(), 0u);
    const uint8_t one = 42;
    EXPECT_EQ(rb.write({&one, 1}), 1u);
    EXPECT_EQ(rb.allocated_bytes(), chunk) << "one byte costs one chunk, not the capacity";
}

TEST(RingBufferLazy, MemoryGoesBackWhenEmptied) {
    RingBuffer rb(4 * chunk);
    const auto data = pattern(0, 3 * chunk + 100);
    ASSERT_EQ(rb.write(data), data.size());
    EXPECT_EQ(rb.allocated_bytes(), 4 * chunk);
    std::vector<uint8_t> out(data.size());
    ASSERT_EQ(rb.read(out), data.size());
    EXPECT_EQ(out, data);
    EXPECT_EQ(rb.allocated_bytes(), 0u);
    EXPECT_TRUE(rb.empty());
    EXPECT_EQ(rb.free_space(), 4 * chunk);
}

TEST(RingBufferLazy, ChunksGoBackAsTheyAreConsumed) {
    RingBuffer rb(4 * chunk);
    ASSERT_EQ(rb.write(pattern(0, 4 * chunk)), 4 * chunk);
    rb.consume(chunk + 10);  // chunk 0 is done with, chunk 1 still holds bytes
    EXPECT_EQ(rb.allocated_bytes(), 3 * chunk);
    rb.consume(2 * chunk);
    EXPECT_EQ(rb.allocated_bytes(), chunk);
    std::vector<uint8_t> rest(chunk);
    ASSERT_EQ(rb.peek(0, rest), chunk - 10);
    rest.resize(chunk - 10);
    EXPECT_EQ(rest, pattern(3 * chunk + 10, chunk - 10));
}

TEST(RingBufferLazy, WrapAroundAcrossChunksAndAShortLastChunk) {
    // 2 full chunks and a short one; data written from the middle of
    // chunk 1 runs through the short chunk and wraps into chunk 0.
    const size_t capacity = 2 * chunk + 1000;
    RingBuffer rb(capacity);
    ASSERT_EQ(rb.write(pattern(0, chunk + 500)), chunk + 500);
    rb.consume(chunk + 500);  // head in chunk 1; empty: nothing allocated
    EXPECT_EQ(rb.allocated_bytes(), 0u);
    const size_t n = 2 * chunk;  // [chunk+500, capacity) then [0, ...)
    const auto data = pattern(1000, n);
    ASSERT_EQ(rb.write(data), n);
    EXPECT_EQ(rb.allocated_bytes(), capacity) << "chunks 1, 2 (short) and 0";
    std::vector<uint8_t> out(n);
    ASSERT_EQ(rb.peek(0, out), n);
    EXPECT_EQ(out, data);
    // Past chunk 1 and the short chunk: only chunk 0 remains.
    rb.consume(chunk - 500 + 1000);
    EXPECT_EQ(rb.allocated_bytes(), chunk);
    std::vector<uint8_t> tail(n);
    const size_t left = rb.read(tail);
    tail.resize(left);
    EXPECT_EQ(tail, std::vector<uint8_t>(data.end() - static_cast<long>(left), data.end()));
    EXPECT_EQ(rb.allocated_bytes(), 0u);
}

TEST(RingBufferLazy, OutOfOrderBytesKeepTheirChunkWhileTheRingIsEmpty) {
    RingBuffer rb(4 * chunk);
    const auto later = pattern(2 * chunk, 100);
    ASSERT_EQ(rb.write_unallocated(2 * chunk, later), later.size());  // a segment beyond a hole
    EXPECT_TRUE(rb.empty());
    EXPECT_EQ(rb.allocated_bytes(), chunk);
    // In-order data arrives and is read while the hole is still open.
    ASSERT_EQ(rb.write(pattern(0, chunk)), chunk);
    std::vector<uint8_t> out(chunk);
    ASSERT_EQ(rb.read(out), chunk);
    EXPECT_EQ(rb.allocated_bytes(), chunk) << "the placed segment's chunk must stay";
    // The hole is filled; everything is readable in order.
    ASSERT_EQ(rb.write(pattern(chunk, chunk)), chunk);
    rb.commit(later.size());
    std::vector<uint8_t> all(chunk + 100);
    ASSERT_EQ(rb.read(all), all.size());
    EXPECT_EQ(all, pattern(chunk, chunk + 100));
    EXPECT_EQ(rb.allocated_bytes(), 0u);
}

TEST(RingBufferLazy, ResizeKeepsBytesAndPlacedBytesAcrossChunks) {
    RingBuffer rb(3 * chunk);
    ASSERT_EQ(rb.write(pattern(0, 2 * chunk)), 2 * chunk);
    rb.consume(chunk + 7);                                             // head in chunk 1
    ASSERT_EQ(rb.write(pattern(2 * chunk, chunk)), chunk);              // wraps into chunk 0
    ASSERT_EQ(rb.write_unallocated(50, pattern(3 * chunk + 50, 30)), 30u);
    rb.set_capacity(5 * chunk);
    EXPECT_EQ(rb.size(), 2 * chunk - 7);
    ASSERT_EQ(rb.write(pattern(3 * chunk, 50)), 50u);
    rb.commit(30);
    std::vector<uint8_t> out(rb.size());
    ASSERT_EQ(rb.read(out), out.size());
    EXPECT_EQ(out, pattern(chunk + 7, 2 * chunk - 7 + 80));
    EXPECT_EQ(rb.allocated_bytes(), 0u);
}

// Random writes and reads of up to two chunks against a deque: the bytes
// are right, and storage never exceeds what the held bytes need (plus the
// chunks at either partial end), and is zero whenever the ring is empty.
TEST(RingBufferLazy, MatchesDequeModelAndStorageFollowsTheData) {
    std::mt19937 rng(777);
    const size_t capacity = 5 * chunk + 123;
    RingBuffer rb(capacity);
    std::deque<uint8_t> model;
    size_t written = 0;
    for (int step = 0; step < 3000; ++step) {
        if (rng() % 2 == 0) {
            const auto data = pattern(written, rng() % (2 * chunk));
            const size_t taken = rb.write(data);
            ASSERT_EQ(taken, std::min(data.size(), capacity - model.size()));
            model.insert(model.end(), data.begin(), data.begin() + static_cast<long>(taken));
            written += taken;
        } else {
            std::vector<uint8_t> out(rng() % (2 * chunk));
            const size_t n = rb.read(out);
            ASSERT_EQ(n, std::min(out.size(), model.size()));
            for (size_t i = 0; i < n; ++i) {
                ASSERT_EQ(out[i], model.front()) << "step " << step;
                model.pop_front();
            }
        }
        ASSERT_EQ(rb.size(), model.size());
        ASSERT_LE(rb.allocated_bytes(), std::min(capacity, (model.size() + chunk - 1) / chunk * chunk + 2 * chunk));
        if (model.empty()) {
            ASSERT_EQ(rb.allocated_bytes(), 0u);
        }
    }
}

}  // namespace
}  // namespace ustack::tcp
