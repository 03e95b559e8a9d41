#include "stack/tcp/assembler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

namespace ustack::tcp {
namespace {

using wire::SackBlock;
using wire::SeqNumber;
using Ranges = std::vector<std::pair<size_t, size_t>>;

// The ranges in offset order, read back through the public interface.
Ranges ranges(const Assembler& a) {
    Ranges out;
    for (const SackBlock& b : a.sack_blocks(SeqNumber(0), 1000)) {
        out.emplace_back(b.left.raw(), b.right.raw());
    }
    std::sort(out.begin(), out.end());
    return out;
}

SackBlock block(uint32_t left, uint32_t right) {
    return SackBlock{SeqNumber(left), SeqNumber(right)};
}

TEST(Assembler, StartsEmpty) {
    Assembler a;
    EXPECT_TRUE(a.empty());
    EXPECT_EQ(a.range_count(), 0u);
    EXPECT_EQ(a.remove_front(), 0u);
    EXPECT_TRUE(a.sack_blocks(SeqNumber(100), 4).empty());
}

TEST(Assembler, AddToEmpty) {
    Assembler a;
    EXPECT_TRUE(a.add(10, 5));
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(ranges(a), (Ranges{{10, 15}}));
}

TEST(Assembler, ZeroSizeIsANoOp) {
    Assembler a(1);
    EXPECT_TRUE(a.add(10, 5));
    EXPECT_TRUE(a.add(50, 0));
    EXPECT_EQ(ranges(a), (Ranges{{10, 15}}));
}

TEST(Assembler, DisjointBeforeAndAfter) {
    Assembler a;
    EXPECT_TRUE(a.add(20, 5));
    EXPECT_TRUE(a.add(40, 5));  // after
    EXPECT_TRUE(a.add(5, 5));   // before
    EXPECT_TRUE(a.add(30, 2));  // between
    EXPECT_EQ(ranges(a), (Ranges{{5, 10}, {20, 25}, {30, 32}, {40, 45}}));
    EXPECT_EQ(a.range_count(), 4u);
}

TEST(Assembler, OverlapOnTheLeft) {
    Assembler a;
    a.add(20, 10);
    EXPECT_TRUE(a.add(15, 10));  // [15,25) over [20,30)
    EXPECT_EQ(ranges(a), (Ranges{{15, 30}}));
}

TEST(Assembler, OverlapOnTheRight) {
    Assembler a;
    a.add(20, 10);
    EXPECT_TRUE(a.add(25, 10));  // [25,35) over [20,30)
    EXPECT_EQ(ranges(a), (Ranges{{20, 35}}));
}

TEST(Assembler, ContainedInExisting) {
    Assembler a;
    a.add(20, 10);
    EXPECT_TRUE(a.add(22, 3));
    EXPECT_TRUE(a.add(20, 10));  // exact duplicate
    EXPECT_EQ(ranges(a), (Ranges{{20, 30}}));
}

TEST(Assembler, ContainingExisting) {
    Assembler a;
    a.add(20, 5);
    EXPECT_TRUE(a.add(10, 30));
    EXPECT_EQ(ranges(a), (Ranges{{10, 40}}));
}

TEST(Assembler, AdjacentRangesMerge) {
    Assembler a;
    a.add(20, 10);
    EXPECT_TRUE(a.add(30, 5));  // touches the end
    EXPECT_TRUE(a.add(15, 5));  // touches the start
    EXPECT_EQ(ranges(a), (Ranges{{15, 35}}));
    EXPECT_EQ(a.range_count(), 1u);
}

TEST(Assembler, BridgingTwoRanges) {
    Assembler a;
    a.add(10, 5);   // [10,15)
    a.add(20, 5);   // [20,25)
    a.add(40, 5);   // [40,45) untouched
    EXPECT_TRUE(a.add(12, 10));  // [12,22) overlaps both
    EXPECT_EQ(ranges(a), (Ranges{{10, 25}, {40, 45}}));
}

TEST(Assembler, ExactlyFillingAHoleMergesBothNeighbours) {
    Assembler a;
    a.add(10, 5);
    a.add(20, 5);
    EXPECT_TRUE(a.add(15, 5));
    EXPECT_EQ(ranges(a), (Ranges{{10, 25}}));
}

TEST(Assembler, SwallowingSeveralRanges) {
    Assembler a;
    a.add(10, 2);
    a.add(14, 2);
    a.add(18, 2);
    a.add(30, 2);
    EXPECT_TRUE(a.add(9, 12));  // [9,21) covers the first three
    EXPECT_EQ(ranges(a), (Ranges{{9, 21}, {30, 32}}));
}

TEST(Assembler, RefusesANewRangeBeyondTheLimit) {
    Assembler a(3);
    EXPECT_TRUE(a.add(10, 1));
    EXPECT_TRUE(a.add(20, 1));
    EXPECT_TRUE(a.add(30, 1));
    EXPECT_FALSE(a.add(40, 1));
    EXPECT_FALSE(a.add(0, 1));
    EXPECT_EQ(ranges(a), (Ranges{{10, 11}, {20, 21}, {30, 31}})) << "a refused add records nothing";
    // Extending, merging and bridging never need a new range, so they are
    // accepted at the limit.
    EXPECT_TRUE(a.add(11, 2));
    EXPECT_TRUE(a.add(13, 7));  // bridges [10,13) and [20,21)
    EXPECT_EQ(a.range_count(), 2u);
    EXPECT_TRUE(a.add(40, 1));
    EXPECT_EQ(ranges(a), (Ranges{{10, 21}, {30, 31}, {40, 41}}));
}

TEST(Assembler, ZeroLimitRefusesEverything) {
    Assembler a(0);
    EXPECT_FALSE(a.add(0, 10));
    EXPECT_TRUE(a.empty());
}

TEST(Assembler, RemoveFrontOnlyWhenDataAtZero) {
    Assembler a;
    a.add(5, 5);
    EXPECT_EQ(a.remove_front(), 0u);
    EXPECT_EQ(ranges(a), (Ranges{{5, 10}}));
}

TEST(Assembler, RemoveFrontShiftsTheRest) {
    Assembler a;
    a.add(5, 5);    // [5,10)
    a.add(20, 5);   // [20,25)
    a.add(0, 5);    // fills [0,5): merges with [5,10)
    EXPECT_EQ(a.remove_front(), 10u);
    EXPECT_EQ(ranges(a), (Ranges{{10, 15}}));
    EXPECT_EQ(a.remove_front(), 0u);
    a.add(0, 10);
    EXPECT_EQ(a.remove_front(), 15u);
    EXPECT_TRUE(a.empty());
}

TEST(Assembler, ShiftTrimsAndDrops) {
    Assembler a;
    a.add(5, 5);    // [5,10)   dropped by shift(12)
    a.add(11, 4);   // [11,15)  straddles: becomes [0,3)
    a.add(20, 5);   // [20,25)  becomes [8,13)
    a.shift(12);
    EXPECT_EQ(ranges(a), (Ranges{{0, 3}, {8, 13}}));
    EXPECT_EQ(a.remove_front(), 3u);
    EXPECT_EQ(ranges(a), (Ranges{{5, 10}}));
}

TEST(Assembler, ShiftExactlyToARangeEnd) {
    Assembler a;
    a.add(5, 5);
    a.add(20, 5);
    a.shift(10);
    EXPECT_EQ(ranges(a), (Ranges{{10, 15}}));
    a.shift(0);
    EXPECT_EQ(ranges(a), (Ranges{{10, 15}}));
    a.shift(100);
    EXPECT_TRUE(a.empty());
}

TEST(Assembler, SackBlocksMostRecentFirst) {
    Assembler a;
    a.add(10, 5);   // A
    a.add(30, 5);   // B
    a.add(50, 5);   // C
    const SeqNumber rcv_nxt(1000);
    EXPECT_EQ(a.sack_blocks(rcv_nxt, 4),
              (std::vector<SackBlock>{block(1050, 1055), block(1030, 1035), block(1010, 1015)}));
    // Updating A (an overlapping segment arrived) makes it the newest.
    a.add(12, 5);
    EXPECT_EQ(a.sack_blocks(rcv_nxt, 4),
              (std::vector<SackBlock>{block(1010, 1017), block(1050, 1055), block(1030, 1035)}));
    // A duplicate wholly inside B still triggers the ACK: B goes first.
    a.add(31, 2);
    EXPECT_EQ(a.sack_blocks(rcv_nxt, 1), (std::vector<SackBlock>{block(1030, 1035)}));
}

TEST(Assembler, SackBlocksAfterBridgeReportTheMergedRangeFirst) {
    Assembler a;
    a.add(10, 5);
    a.add(20, 5);
    a.add(40, 5);
    a.add(15, 5);  // bridges [10,15) and [20,25)
    EXPECT_EQ(a.sack_blocks(SeqNumber(0), 4),
              (std::vector<SackBlock>{block(10, 25), block(40, 45)}));
}

TEST(Assembler, SackBlocksHonourMax) {
    Assembler a;
    for (size_t i = 0; i < 6; ++i) {
        a.add(10 * (i + 1), 2);
    }
    const auto blocks = a.sack_blocks(SeqNumber(0), 3);
    EXPECT_EQ(blocks, (std::vector<SackBlock>{block(60, 62), block(50, 52), block(40, 42)}));
    EXPECT_TRUE(a.sack_blocks(SeqNumber(0), 0).empty());
}

TEST(Assembler, SackBlocksWrapSequenceSpace) {
    Assembler a;
    a.add(10, 20);
    const auto blocks = a.sack_blocks(SeqNumber(0xFFFFFFF0u), 4);
    ASSERT_EQ(blocks.size(), 1u);
    EXPECT_EQ(blocks[0].left, SeqNumber(0xFFFFFFFAu));
    EXPECT_EQ(blocks[0].right, SeqNumber(0x0000000Eu));
    EXPECT_LT(blocks[0].left, blocks[0].right);
}

TEST(Assembler, ClearForgetsEverything) {
    Assembler a(2);
    a.add(10, 1);
    a.add(20, 1);
    a.clear();
    EXPECT_TRUE(a.empty());
    EXPECT_TRUE(a.add(30, 1));
    EXPECT_TRUE(a.add(40, 1));
}

// Randomised comparison against a bitmap: coverage and range count.
TEST(Assembler, MatchesBitmapModel) {
    std::mt19937 rng(777);
    for (int trial = 0; trial < 200; ++trial) {
        Assembler a(1000);
        std::vector<bool> bits(200, false);
        for (int step = 0; step < 30; ++step) {
            const size_t offset = rng() % 180;
            const size_t size = rng() % 20;
            ASSERT_TRUE(a.add(offset, size));
            for (size_t i = offset; i < offset + size; ++i) {
                bits[i] = true;
            }
            Ranges expected;
            for (size_t i = 0; i < bits.size(); ++i) {
                if (bits[i] && (i == 0 || !bits[i - 1])) {
                    expected.emplace_back(i, i);
                }
                if (bits[i]) {
                    expected.back().second = i + 1;
                }
            }
            ASSERT_EQ(ranges(a), expected);
            ASSERT_EQ(a.range_count(), expected.size());
        }
    }
}

}  // namespace
}  // namespace ustack::tcp
