#include "stack/tcp/assembler.h"

#include <algorithm>
#include <limits>

namespace ustack::tcp {

Assembler::Assembler(size_t max_ranges) : max_ranges_(max_ranges) {}

bool Assembler::add(size_t offset, size_t size) {
    if (size == 0) {
        return true;
    }
    // Offsets are bounded by the receive window in practice; saturate
    // rather than wrap if a caller ever passes something absurd.
    const size_t end = size > std::numeric_limits<size_t>::max() - offset
                           ? std::numeric_limits<size_t>::max()
                           : offset + size;

    // First range that overlaps or touches [offset, end): ranges are sorted
    // and disjoint, so their ends are sorted too.
    auto first = std::lower_bound(ranges_.begin(), ranges_.end(), offset,
                                  [](const Range& r, size_t value) { return r.end < value; });
    // One past the last range that overlaps or touches (start <= end).
    auto last = first;
    while (last != ranges_.end() && last->start <= end) {
        ++last;
    }

    if (first == last) {
        // A new hole-separated range. This is the only case that increases
        // the count, so it is the only one refused at the limit.
        if (ranges_.size() >= max_ranges_) {
            return false;
        }
        ranges_.insert(first, Range{offset, end, next_stamp_++});
        return true;
    }

    // Merge [offset, end) with every range in [first, last). The merged
    // range gets a fresh stamp: it contains the segment that triggered the
    // ACK, so it must be reported first (RFC 2018 §4), even when the
    // segment was a duplicate wholly inside an existing range.
    first->start = std::min(offset, first->start);
    first->end = std::max(end, std::prev(last)->end);
    first->stamp = next_stamp_++;
    ranges_.erase(std::next(first), last);
    return true;
}

size_t Assembler::remove_front() {
    if (ranges_.empty() || ranges_.front().start != 0) {
        return 0;
    }
    const size_t n = ranges_.front().end;
    ranges_.erase(ranges_.begin());
    for (Range& r : ranges_) {
        r.start -= n;
        r.end -= n;
    }
    return n;
}

void Assembler::shift(size_t n) {
    if (n == 0) {
        return;
    }
    // Ranges wholly below n were filled by in-order data and disappear; at
    // most one range straddles n and is trimmed to start at 0. Ordering and
    // disjointness are preserved.
    std::erase_if(ranges_, [n](const Range& r) { return r.end <= n; });
    for (Range& r : ranges_) {
        r.start = r.start > n ? r.start - n : 0;
        r.end -= n;
    }
}

bool Assembler::empty() const {
    return ranges_.empty();
}

size_t Assembler::range_count() const {
    return ranges_.size();
}

std::vector<wire::SackBlock> Assembler::sack_blocks(wire::SeqNumber rcv_nxt, size_t max) const {
    // RFC 2018 §4: the first block is the range holding the most recently
    // received segment; the rest SHOULD repeat the most recently reported
    // blocks, which most-recently-updated-first approximates.
    std::vector<const Range*> order;
    order.reserve(ranges_.size());
    for (const Range& r : ranges_) {
        order.push_back(&r);
    }
    std::sort(order.begin(), order.end(),
              [](const Range* a, const Range* b) { return a->stamp > b->stamp; });

    std::vector<wire::SackBlock> blocks;
    const size_t count = std::min(max, order.size());
    blocks.reserve(count);
    for (size_t i = 0; i < count; ++i) {
        blocks.push_back(wire::SackBlock{rcv_nxt + static_cast<uint32_t>(order[i]->start),
                                         rcv_nxt + static_cast<uint32_t>(order[i]->end)});
    }
    return blocks;
}

void Assembler::clear() {
    ranges_.clear();
}

}  // namespace ustack::tcp
