#pragma once
// Tracks which byte ranges past the in-order point have arrived out of
// order (smoltcp's Assembler). Offsets are relative to rcv_nxt. A bounded
// number of holes: a segment that would need more is refused (the caller
// drops it and counts it), as Linux bounds its out-of-order queue.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stack/wire/tcp.h"

namespace ustack::tcp {

class Assembler {
public:
    explicit Assembler(size_t max_ranges = 32);

    // Records [offset, offset+size) as present. False when it would exceed
    // max_ranges (nothing recorded then).
    bool add(size_t offset, size_t size);
    // If bytes starting at offset 0 are present, removes that contiguous
    // run and returns its length; shifts every other range down by it.
    size_t remove_front();
    // Shift all offsets down by n (rcv_nxt advanced by n in-order bytes that
    // arrived directly); ranges below 0 are trimmed.
    void shift(size_t n);
    bool empty() const;
    size_t range_count() const;
    // Up to max blocks as sequence numbers (rcv_nxt + offsets), most
    // recently added range first (RFC 2018 §4: the first block reports the
    // segment that triggered the ACK).
    std::vector<wire::SackBlock> sack_blocks(wire::SeqNumber rcv_nxt, size_t max) const;
    void clear();

private:
    struct Range {
        size_t start;
        size_t end;
        uint64_t stamp;  // insertion order, for SACK block ordering
    };
    std::vector<Range> ranges_;  // sorted by start, non-overlapping, non-adjacent
    size_t max_ranges_;
    uint64_t next_stamp_ = 0;
};

}  // namespace ustack::tcp
