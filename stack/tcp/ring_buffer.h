#pragma once
// Byte ring buffer with a fixed capacity: the send buffer (bytes the
// application wrote, not yet acknowledged) and the in-order receive buffer.
//
// The capacity is a limit, not an allocation: storage comes in chunks of
// chunk_size bytes, allocated when a write first reaches them and freed as
// soon as no held byte lives in them (consume() past them, or the ring
// emptying). An idle connection therefore holds no buffer memory at all,
// where a full-capacity ring cost sndbuf/2 + rcvbuf/2 per connection
// (~192 KB with the defaults, zero-filled and so resident). Linux does the
// same with skbs: memory follows the bytes queued, the buffer sizes only
// bound it. Byte semantics (capacity, free space, offsets) are unchanged.
// Freed full-size chunks go to a small per-thread cache (at most 64, 1 MiB)
// that the next allocation takes from: a bulk receive empties and refills
// its ring constantly, and malloc/free of each chunk cost heap trims.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace ustack::tcp {

class RingBuffer {
public:
    // Storage granule. Large enough that a bulk transfer allocates rarely
    // (one malloc per 16 KiB moved), small enough that a connection holding
    // a few bytes costs little.
    static constexpr size_t chunk_size = 16 * 1024;

    explicit RingBuffer(size_t capacity);

    size_t capacity() const;
    size_t size() const;          // bytes held
    size_t free_space() const;    // capacity() - size()
    bool empty() const;
    // Grows or shrinks capacity (SO_SNDBUF/SO_RCVBUF); never below size().
    void set_capacity(size_t capacity);

    // Appends up to free_space() bytes; returns how many were taken.
    size_t write(std::span<const uint8_t> data);
    // Copies up to out.size() bytes starting `offset` bytes after the
    // oldest held byte, without consuming; returns how many were copied.
    size_t peek(size_t offset, std::span<uint8_t> out) const;
    // The held bytes from `offset` on, as read-only views of the storage
    // (no copy): fills out[0..k) with k contiguous pieces in stream order
    // (a piece ends at a chunk's end or the wrap) and returns k. Stops when
    // `out` is full or the held bytes end. The views stay valid until the
    // next call that writes, consumes or resizes. For writev/sendmsg
    // straight from the ring; consume() what the kernel took.
    size_t readable_spans(size_t offset, std::span<std::span<const uint8_t>> out) const;
    // Removes the oldest n bytes (n <= size()).
    void consume(size_t n);
    // Copies then consumes; returns how many.
    size_t read(std::span<uint8_t> out);
    // Writes `data` at `offset` bytes past the end of held data (into free
    // space) without making it visible; used to place out-of-order bytes.
    // Returns how many bytes fit. commit(n) later makes n bytes visible.
    size_t write_unallocated(size_t offset, std::span<const uint8_t> data);
    void commit(size_t n);

    // Bytes of storage allocated now (for tests and memory accounting).
    size_t allocated_bytes() const;

private:
    using Chunk = std::unique_ptr<uint8_t[]>;

    size_t chunk_count() const { return (capacity_ + chunk_size - 1) / chunk_size; }
    size_t chunk_length(size_t index) const;
    // Copies into ring position pos (wrapping), allocating chunks as needed.
    void copy_in(size_t pos, const uint8_t* src, size_t len);
    // Copies out of ring position pos (wrapping); a chunk never written
    // reads as zeros.
    void copy_out(size_t pos, uint8_t* dst, size_t len) const;
    // Frees every chunk that holds no byte of the live region: the held
    // bytes and the out-of-order bytes placed after them.
    void release_dead_chunks(size_t first_chunk, size_t chunks);
    // Frees one chunk (a full-size one goes to the thread's chunk cache).
    void release_chunk(size_t index);
    bool chunk_is_live(size_t index) const;

    size_t capacity_ = 0;
    std::vector<Chunk> chunks_;  // empty until the first write; then chunk_count() slots
    size_t allocated_chunks_ = 0;
    size_t head_ = 0;  // index of the oldest byte
    size_t size_ = 0;
    // How far past the held bytes write_unallocated() placed data (the
    // end of the furthest out-of-order byte): those chunks stay.
    size_t unallocated_extent_ = 0;
};

}  // namespace ustack::tcp
