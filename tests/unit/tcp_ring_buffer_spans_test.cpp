// RingBuffer::readable_spans(): the held bytes as views of the storage,
// in order, split where the storage is (chunk ends, the wrap), for a
// sendmsg() straight from the receive buffer.
#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "stack/tcp/ring_buffer.h"

namespace ustack::tcp {
namespace {

using Span = std::span<const uint8_t>;

std::vector<uint8_t> pattern(size_t n, size_t start = 0) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>((start + i) * 13 + ((start + i) >> 8));
    }
    return v;
}

std::vector<uint8_t> joined(std::span<const Span> spans) {
    std::vector<uint8_t> out;
    for (Span s : spans) {
        out.insert(out.end(), s.begin(), s.end());
    }
    return out;
}

TEST(RingBufferSpans, EmptyOrOffsetPastTheEndGivesNothing) {
    RingBuffer rb(64);
    std::array<Span, 4> out;
    EXPECT_EQ(rb.readable_spans(0, out), 0u);
    rb.write(pattern(10));
    EXPECT_EQ(rb.readable_spans(10, out), 0u);
    EXPECT_EQ(rb.readable_spans(11, out), 0u);
    EXPECT_EQ(rb.readable_spans(0, std::span<Span>()), 0u);
}

TEST(RingBufferSpans, SmallRingWrapsIntoTwoPieces) {
    RingBuffer rb(16);
    ASSERT_EQ(rb.write(pattern(12)), 12u);
    rb.consume(10);
    ASSERT_EQ(rb.write(pattern(10, 12)), 10u);  // 2 + 10 held, wrapping at 16
    std::array<Span, 4> out;
    const size_t n = rb.readable_spans(0, out);
    ASSERT_EQ(n, 2u);
    EXPECT_EQ(out[0].size(), 6u);  // positions 10..16
    EXPECT_EQ(out[1].size(), 6u);  // positions 0..6
    EXPECT_EQ(joined(std::span(out).first(n)), pattern(12, 10));
    // From an offset: the view starts there.
    const size_t m = rb.readable_spans(7, out);
    ASSERT_EQ(m, 1u);
    EXPECT_EQ(joined(std::span(out).first(m)), pattern(5, 17));
}

TEST(RingBufferSpans, BigRingSplitsAtChunksAndStopsWhenOutIsFull) {
    const size_t chunk = RingBuffer::chunk_size;
    RingBuffer rb(4 * chunk + 100);  // a short last chunk
    const std::vector<uint8_t> first = pattern(3 * chunk);
    ASSERT_EQ(rb.write(first), first.size());
    rb.consume(chunk + chunk / 2);
    const std::vector<uint8_t> more = pattern(2 * chunk, 3 * chunk);
    ASSERT_EQ(rb.write(more), more.size());  // wraps past the 100-byte chunk
    const std::vector<uint8_t> expected = pattern(rb.size(), chunk + chunk / 2);

    std::array<Span, 16> out;
    const size_t n = rb.readable_spans(0, out);
    size_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        EXPECT_LE(out[i].size(), chunk);
        total += out[i].size();
    }
    EXPECT_EQ(total, rb.size());
    EXPECT_EQ(joined(std::span(out).first(n)), expected);
    // Pieces: half of chunk 1, chunks 2 and 3, the short chunk 4 (100),
    // then the wrapped part in chunk 0.
    EXPECT_EQ(out[0].size(), chunk / 2);
    EXPECT_EQ(out[3].size(), 100u);

    // Two pieces only: the first two, in order.
    std::array<Span, 2> two;
    ASSERT_EQ(rb.readable_spans(0, two), 2u);
    EXPECT_EQ(joined(two), std::vector<uint8_t>(expected.begin(), expected.begin() + chunk / 2 + chunk));

    // Consuming what a short send took leaves the rest viewable.
    rb.consume(chunk);
    const size_t m = rb.readable_spans(0, out);
    EXPECT_EQ(joined(std::span(out).first(m)), std::vector<uint8_t>(expected.begin() + chunk, expected.end()));
}

TEST(RingBufferSpans, CommittedButNeverWrittenBytesReadAsZerosAsPeekDoes) {
    RingBuffer rb(4 * RingBuffer::chunk_size);
    rb.write(pattern(10));
    rb.commit(RingBuffer::chunk_size + 10);  // past any written chunk
    std::array<Span, 8> out;
    const size_t n = rb.readable_spans(0, out);
    std::vector<uint8_t> peeked(rb.size());
    ASSERT_EQ(rb.peek(0, peeked), rb.size());
    EXPECT_EQ(joined(std::span(out).first(n)), peeked);
}

}  // namespace
}  // namespace ustack::tcp
