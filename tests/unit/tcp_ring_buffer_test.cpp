#include "stack/tcp/ring_buffer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace ustack::tcp {
namespace {

std::span<const uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Everything visible, without consuming.
std::string contents(const RingBuffer& rb) {
    std::string out(rb.size(), '\0');
    const size_t n = rb.peek(0, {reinterpret_cast<uint8_t*>(out.data()), out.size()});
    out.resize(n);
    return out;
}

std::string read_all(RingBuffer& rb) {
    std::string out(rb.size(), '\0');
    const size_t n = rb.read({reinterpret_cast<uint8_t*>(out.data()), out.size()});
    out.resize(n);
    return out;
}

TEST(RingBuffer, StartsEmpty) {
    RingBuffer rb(16);
    EXPECT_EQ(rb.capacity(), 16u);
    EXPECT_EQ(rb.size(), 0u);
    EXPECT_EQ(rb.free_space(), 16u);
    EXPECT_TRUE(rb.empty());
}

TEST(RingBuffer, WriteThenReadInOrder) {
    RingBuffer rb(16);
    EXPECT_EQ(rb.write(bytes("hello")), 5u);
    EXPECT_EQ(rb.write(bytes(" world")), 6u);
    EXPECT_EQ(rb.size(), 11u);
    EXPECT_EQ(rb.free_space(), 5u);
    EXPECT_FALSE(rb.empty());
    EXPECT_EQ(read_all(rb), "hello world");
    EXPECT_TRUE(rb.empty());
    EXPECT_EQ(rb.free_space(), 16u);
}

TEST(RingBuffer, WriteTakesOnlyFreeSpace) {
    RingBuffer rb(8);
    EXPECT_EQ(rb.write(bytes("0123456789")), 8u);
    EXPECT_EQ(rb.free_space(), 0u);
    EXPECT_EQ(rb.write(bytes("x")), 0u);
    EXPECT_EQ(contents(rb), "01234567");
}

TEST(RingBuffer, EmptyWriteAndReadAreNoOps) {
    RingBuffer rb(8);
    EXPECT_EQ(rb.write({}), 0u);
    std::vector<uint8_t> out(4);
    EXPECT_EQ(rb.read(out), 0u);
    EXPECT_EQ(rb.peek(0, out), 0u);
    rb.consume(0);
    EXPECT_TRUE(rb.empty());
}

TEST(RingBuffer, PeekAtOffsetDoesNotConsume) {
    RingBuffer rb(16);
    rb.write(bytes("abcdefgh"));
    std::string out(3, '\0');
    EXPECT_EQ(rb.peek(2, {reinterpret_cast<uint8_t*>(out.data()), 3}), 3u);
    EXPECT_EQ(out, "cde");
    // Shorter than asked at the end of the data.
    EXPECT_EQ(rb.peek(6, {reinterpret_cast<uint8_t*>(out.data()), 3}), 2u);
    EXPECT_EQ(out.substr(0, 2), "gh");
    // At or past the end: nothing.
    EXPECT_EQ(rb.peek(8, {reinterpret_cast<uint8_t*>(out.data()), 3}), 0u);
    EXPECT_EQ(rb.peek(100, {reinterpret_cast<uint8_t*>(out.data()), 3}), 0u);
    EXPECT_EQ(rb.size(), 8u);
}

TEST(RingBuffer, ConsumeDropsOldest) {
    RingBuffer rb(16);
    rb.write(bytes("abcdefgh"));
    rb.consume(3);
    EXPECT_EQ(rb.size(), 5u);
    EXPECT_EQ(contents(rb), "defgh");
    rb.consume(5);
    EXPECT_TRUE(rb.empty());
}

TEST(RingBuffer, WrapAroundWriteAndRead) {
    RingBuffer rb(8);
    rb.write(bytes("abcdef"));
    rb.consume(4);  // head at 4, "ef" held
    // 6 more bytes: 2 fit before the end of storage, 4 wrap to the start.
    EXPECT_EQ(rb.write(bytes("ghijkl")), 6u);
    EXPECT_EQ(rb.size(), 8u);
    EXPECT_EQ(rb.free_space(), 0u);
    EXPECT_EQ(contents(rb), "efghijkl");
    // A peek that straddles the physical end of storage.
    std::string out(4, '\0');
    EXPECT_EQ(rb.peek(2, {reinterpret_cast<uint8_t*>(out.data()), 4}), 4u);
    EXPECT_EQ(out, "ghij");
    EXPECT_EQ(read_all(rb), "efghijkl");
}

TEST(RingBuffer, ManyWrapsKeepOrder) {
    RingBuffer rb(7);  // odd size so chunks never line up with the end
    std::string expected_stream;
    std::string got_stream;
    char next = 'a';
    for (int round = 0; round < 200; ++round) {
        std::string chunk;
        for (int i = 0; i < (round % 5) + 1; ++i) {
            chunk.push_back(next);
            next = next == 'z' ? 'a' : static_cast<char>(next + 1);
        }
        const size_t taken = rb.write(bytes(chunk));
        expected_stream += chunk.substr(0, taken);
        std::string out((round % 3) + 1, '\0');
        const size_t n = rb.read({reinterpret_cast<uint8_t*>(out.data()), out.size()});
        got_stream += out.substr(0, n);
    }
    got_stream += read_all(rb);
    EXPECT_EQ(got_stream, expected_stream);
}

TEST(RingBuffer, GrowKeepsWrappedContent) {
    RingBuffer rb(8);
    rb.write(bytes("abcdef"));
    rb.consume(5);
    rb.write(bytes("ghijk"));  // "fghijk", wrapped
    rb.set_capacity(32);
    EXPECT_EQ(rb.capacity(), 32u);
    EXPECT_EQ(rb.size(), 6u);
    EXPECT_EQ(rb.free_space(), 26u);
    EXPECT_EQ(contents(rb), "fghijk");
    EXPECT_EQ(rb.write(bytes("lmnop")), 5u);
    EXPECT_EQ(read_all(rb), "fghijklmnop");
}

TEST(RingBuffer, ShrinkKeepsWrappedContent) {
    RingBuffer rb(8);
    rb.write(bytes("abcdef"));
    rb.consume(5);
    rb.write(bytes("ghij"));  // "fghij", wrapped
    rb.set_capacity(6);
    EXPECT_EQ(rb.capacity(), 6u);
    EXPECT_EQ(contents(rb), "fghij");
    EXPECT_EQ(rb.write(bytes("xyz")), 1u);
    EXPECT_EQ(read_all(rb), "fghijx");
}

TEST(RingBuffer, ShrinkNeverBelowSize) {
    RingBuffer rb(8);
    rb.write(bytes("abcdef"));
    rb.consume(4);
    rb.write(bytes("ghijkl"));  // 8 held, wrapped
    rb.set_capacity(3);
    EXPECT_EQ(rb.capacity(), 8u);
    EXPECT_EQ(contents(rb), "efghijkl");
    rb.consume(6);
    rb.set_capacity(1);
    EXPECT_EQ(rb.capacity(), 2u);
    EXPECT_EQ(contents(rb), "kl");
    EXPECT_EQ(rb.free_space(), 0u);
}

TEST(RingBuffer, SetCapacityToZeroWhenEmptyAndBack) {
    RingBuffer rb(4);
    rb.set_capacity(0);
    EXPECT_EQ(rb.capacity(), 0u);
    EXPECT_EQ(rb.write(bytes("a")), 0u);
    EXPECT_EQ(rb.write_unallocated(0, bytes("a")), 0u);
    rb.set_capacity(4);
    EXPECT_EQ(rb.write(bytes("abcde")), 4u);
    EXPECT_EQ(read_all(rb), "abcd");
}

TEST(RingBuffer, ZeroCapacityIsInert) {
    RingBuffer rb(0);
    EXPECT_EQ(rb.write(bytes("abc")), 0u);
    std::vector<uint8_t> out(3);
    EXPECT_EQ(rb.read(out), 0u);
    rb.commit(5);
    EXPECT_EQ(rb.size(), 0u);
}

TEST(RingBuffer, OutOfOrderPlacementThenCommit) {
    // The receive path: "efgh" arrives before "abcd" would have, then the
    // hole is filled; only then are the bytes visible.
    RingBuffer rb(16);
    rb.write(bytes("0123"));
    EXPECT_EQ(rb.write_unallocated(4, bytes("efgh")), 4u);
    EXPECT_EQ(rb.size(), 4u) << "out-of-order bytes must stay invisible";
    EXPECT_EQ(contents(rb), "0123");
    EXPECT_EQ(rb.write_unallocated(0, bytes("abcd")), 4u);
    rb.commit(8);
    EXPECT_EQ(rb.size(), 12u);
    EXPECT_EQ(read_all(rb), "0123abcdefgh");
}

TEST(RingBuffer, InOrderWriteFillsTheHoleBeforePlacedBytes) {
    RingBuffer rb(16);
    EXPECT_EQ(rb.write_unallocated(3, bytes("def")), 3u);
    EXPECT_EQ(rb.write(bytes("abc")), 3u);  // lands in [0, 3)
    rb.commit(3);                            // makes "def" visible
    EXPECT_EQ(read_all(rb), "abcdef");
}

TEST(RingBuffer, WriteUnallocatedLimitedByFreeSpace) {
    RingBuffer rb(10);
    rb.write(bytes("abcd"));  // 6 free
    EXPECT_EQ(rb.write_unallocated(6, bytes("x")), 0u);
    EXPECT_EQ(rb.write_unallocated(100, bytes("x")), 0u);
    EXPECT_EQ(rb.write_unallocated(4, bytes("wxyz")), 2u);  // only [4, 6) fit
    EXPECT_EQ(rb.write_unallocated(0, bytes("ABCD")), 4u);
    rb.commit(6);
    EXPECT_EQ(read_all(rb), "abcdABCDwx");
}

TEST(RingBuffer, WriteUnallocatedAcrossPhysicalEnd) {
    RingBuffer rb(8);
    rb.write(bytes("abcdef"));
    rb.consume(5);  // head 5, "f" held; the free region wraps
    EXPECT_EQ(rb.write_unallocated(1, bytes("hijk")), 4u);  // indices 7,0,1,2
    EXPECT_EQ(rb.write_unallocated(0, bytes("g")), 1u);     // index 6
    rb.commit(5);
    EXPECT_EQ(read_all(rb), "fghijk");
}

TEST(RingBuffer, CommitBoundedByFreeSpace) {
    RingBuffer rb(4);
    rb.write(bytes("ab"));
    rb.commit(10);
    EXPECT_EQ(rb.size(), 4u);
}

TEST(RingBuffer, PlacedBytesSurviveDrainingTheVisibleData) {
    // The reader empties the buffer while an out-of-order segment waits
    // beyond the hole; the segment must not move.
    RingBuffer rb(8);
    rb.write(bytes("abcde"));
    EXPECT_EQ(rb.write_unallocated(1, bytes("gh")), 2u);  // physical 6, 7
    EXPECT_EQ(read_all(rb), "abcde");
    EXPECT_TRUE(rb.empty());
    EXPECT_EQ(rb.write(bytes("f")), 1u);  // physical 5
    rb.commit(2);
    EXPECT_EQ(read_all(rb), "fgh");
    // And once more across the physical end: head is now 0 (8 bytes read).
    rb.write(bytes("abcdefg"));
    rb.consume(7);                                         // head 7, empty
    EXPECT_EQ(rb.write_unallocated(2, bytes("jk")), 2u);  // physical 1, 2
    EXPECT_EQ(rb.write(bytes("hi")), 2u);                  // physical 7, 0
    rb.commit(2);
    EXPECT_EQ(read_all(rb), "hijk");
}

TEST(RingBuffer, GrowKeepsPlacedBytes) {
    RingBuffer rb(8);
    rb.write(bytes("abcdef"));
    rb.consume(4);                                 // head 4, "ef" held
    EXPECT_EQ(rb.write_unallocated(2, bytes("ij")), 2u);  // wraps to physical 0, 1
    rb.set_capacity(20);
    EXPECT_EQ(contents(rb), "ef");
    EXPECT_EQ(rb.write_unallocated(0, bytes("gh")), 2u);
    rb.commit(4);
    EXPECT_EQ(read_all(rb), "efghij");
}

// Randomised comparison against a deque; capacity changes included.
TEST(RingBuffer, MatchesDequeModel) {
    std::mt19937 rng(12345);
    RingBuffer rb(13);
    std::deque<uint8_t> model;
    size_t model_capacity = 13;
    uint8_t next = 0;
    for (int step = 0; step < 20000; ++step) {
        const unsigned op = rng() % 10;
        if (op < 4) {
            std::vector<uint8_t> data(rng() % 9);
            for (uint8_t& b : data) {
                b = next++;
            }
            const size_t taken = rb.write(data);
            const size_t expect = std::min(data.size(), model_capacity - model.size());
            ASSERT_EQ(taken, expect);
            model.insert(model.end(), data.begin(), data.begin() + static_cast<long>(taken));
        } else if (op < 7) {
            std::vector<uint8_t> out(rng() % 9);
            const size_t n = rb.read(out);
            ASSERT_EQ(n, std::min(out.size(), model.size()));
            for (size_t i = 0; i < n; ++i) {
                ASSERT_EQ(out[i], model.front());
                model.pop_front();
            }
        } else if (op < 9) {
            const size_t offset = model.empty() ? 0 : rng() % (model.size() + 2);
            std::vector<uint8_t> out(rng() % 9);
            const size_t n = rb.peek(offset, out);
            const size_t expect = offset >= model.size() ? 0 : std::min(out.size(), model.size() - offset);
            ASSERT_EQ(n, expect);
            for (size_t i = 0; i < n; ++i) {
                ASSERT_EQ(out[i], model[offset + i]);
            }
        } else {
            const size_t requested = rng() % 24;
            rb.set_capacity(requested);
            model_capacity = std::max(requested, model.size());
            ASSERT_EQ(rb.capacity(), model_capacity);
        }
        ASSERT_EQ(rb.size(), model.size());
        ASSERT_EQ(rb.free_space(), model_capacity - model.size());
    }
}

}  // namespace
}  // namespace ustack::tcp
