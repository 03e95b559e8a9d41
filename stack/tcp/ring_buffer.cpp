#include "stack/tcp/ring_buffer.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <utility>

namespace ustack::tcp {

namespace {

// Full-size chunks freed by any ring of this thread, kept for the next one
// that needs a chunk. A bulk receive empties and refills its ring all the
// time (the host hands every byte to the app at once): without the cache
// each 16 KiB went back to malloc, which gave the top of the heap back to
// the kernel (trim) and took it again with fresh zeroed pages — measured
// on bulk download over TAP: 2.1 CPU s per GiB with it, 1.4 without
// (GLIBC_TUNABLES trim_threshold). Bounded, so idle connections still
// hold nothing: a thread holds at most 1 MiB here, all threads together
// 4 MiB (an inproc host's loop is worked by whichever app thread waits,
// and a thread-per-connection program has many). Per thread, so no lock.
std::atomic<size_t> chunks_cached_in_process{0};
// Set when this thread's cache is destroyed (thread exit, or the main
// thread's exit before statics and atexit handlers, which may still run a
// host pass on it): trivially destructible, so it outlives the cache.
thread_local bool chunk_cache_gone = false;

class ChunkCache {
public:
    static constexpr size_t max_chunks = 64;
    static constexpr size_t max_chunks_in_process = 256;
    ~ChunkCache() {
        for (size_t i = 0; i < count_; ++i) {
            delete[] chunks_[i];
        }
        chunks_cached_in_process.fetch_sub(count_, std::memory_order_relaxed);
        count_ = 0;
        chunk_cache_gone = true;
    }
    std::unique_ptr<uint8_t[]> take() {
        if (count_ == 0) {
            return std::make_unique_for_overwrite<uint8_t[]>(RingBuffer::chunk_size);
        }
        chunks_cached_in_process.fetch_sub(1, std::memory_order_relaxed);
        return std::unique_ptr<uint8_t[]>(chunks_[--count_]);
    }
    void give(std::unique_ptr<uint8_t[]> chunk) {
        if (count_ < max_chunks &&
            chunks_cached_in_process.fetch_add(1, std::memory_order_relaxed) < max_chunks_in_process) {
            chunks_[count_++] = chunk.release();
        } else if (count_ < max_chunks) {
            chunks_cached_in_process.fetch_sub(1, std::memory_order_relaxed);  // over budget: back to malloc
        }
    }

private:
    std::array<uint8_t*, max_chunks> chunks_{};
    size_t count_ = 0;
};

ChunkCache& chunk_cache() {
    static thread_local ChunkCache cache;
    return cache;
}

}  // namespace

RingBuffer::RingBuffer(size_t capacity) : capacity_(capacity) {}

size_t RingBuffer::capacity() const {
    return capacity_;
}

size_t RingBuffer::size() const {
    return size_;
}

size_t RingBuffer::free_space() const {
    return capacity_ - size_;
}

bool RingBuffer::empty() const {
    return size_ == 0;
}

size_t RingBuffer::allocated_bytes() const {
    size_t total = 0;
    for (size_t i = 0; i < chunks_.size(); ++i) {
        if (chunks_[i]) {
            total += chunk_length(i);
        }
    }
    return total;
}

size_t RingBuffer::chunk_length(size_t index) const {
    return std::min(chunk_size, capacity_ - index * chunk_size);
}

void RingBuffer::copy_in(size_t pos, const uint8_t* src, size_t len) {
    if (len == 0) {
        return;
    }
    if (chunks_.empty()) {
        chunks_.resize(chunk_count());
    }
    while (len > 0) {
        const size_t index = pos / chunk_size;
        const size_t offset = pos % chunk_size;
        const size_t length = chunk_length(index);
        const size_t take = std::min(len, length - offset);
        Chunk& chunk = chunks_[index];
        if (!chunk) {
            // Not zero-filled: only bytes written here are ever read
            // (peek() reads held bytes, and those were written).
            chunk = length == chunk_size && !chunk_cache_gone ? chunk_cache().take()
                                                                : std::make_unique_for_overwrite<uint8_t[]>(length);
            ++allocated_chunks_;
        }
        std::memcpy(chunk.get() + offset, src, take);
        src += take;
        len -= take;
        pos += take;
        if (pos == capacity_) {
            pos = 0;
        }
    }
}

void RingBuffer::copy_out(size_t pos, uint8_t* dst, size_t len) const {
    while (len > 0) {
        const size_t index = pos / chunk_size;
        const size_t offset = pos % chunk_size;
        const size_t take = std::min(len, chunk_length(index) - offset);
        if (index < chunks_.size() && chunks_[index]) {
            std::memcpy(dst, chunks_[index].get() + offset, take);
        } else {
            std::memset(dst, 0, take);  // never written (commit() past the data)
        }
        dst += take;
        len -= take;
        pos += take;
        if (pos == capacity_) {
            pos = 0;
        }
    }
}

bool RingBuffer::chunk_is_live(size_t index) const {
    // The live region is [head_, head_ + size_ + extent) on the circle.
    const size_t live = size_ + unallocated_extent_;
    if (live == 0) {
        return false;
    }
    const size_t begin = index * chunk_size;
    const size_t end = begin + chunk_length(index);
    const size_t live_end = head_ + live;  // may pass capacity_: wraps to [0, live_end - capacity_)
    if (head_ < end && begin < std::min(live_end, capacity_)) {
        return true;
    }
    return live_end > capacity_ && begin < live_end - capacity_;
}

void RingBuffer::release_chunk(size_t index) {
    if (chunks_[index] && chunk_length(index) == chunk_size && !chunk_cache_gone) {
        chunk_cache().give(std::move(chunks_[index]));
    }
    chunks_[index].reset();
}

void RingBuffer::release_dead_chunks(size_t first_chunk, size_t chunks) {
    if (allocated_chunks_ == 0) {
        return;
    }
    if (size_ == 0 && unallocated_extent_ == 0) {
        // Empty: give everything back, the slot table included (an idle
        // connection then costs no buffer memory at all).
        for (size_t i = 0; i < chunks_.size(); ++i) {
            release_chunk(i);
        }
        chunks_ = std::vector<Chunk>();
        allocated_chunks_ = 0;
        return;
    }
    const size_t count = chunks_.size();
    for (size_t i = 0; i < std::min(chunks, count); ++i) {
        const size_t index = (first_chunk + i) % count;
        if (chunks_[index] && !chunk_is_live(index)) {
            release_chunk(index);
            --allocated_chunks_;
        }
    }
}

void RingBuffer::set_capacity(size_t capacity) {
    // Never drop visible bytes: they are either unacknowledged (send side)
    // or already acknowledged to the peer (receive side).
    const size_t new_capacity = std::max(capacity, size_);
    if (new_capacity == capacity_) {
        return;
    }
    // Linearize from head_: the held bytes and the out-of-order bytes
    // placed after them by write_unallocated(), as far as the new capacity
    // reaches (they survive a grow, and a shrink where they still fit).
    RingBuffer resized(new_capacity);
    const size_t keep = std::min(size_ + unallocated_extent_, new_capacity);
    std::array<uint8_t, 4096> piece;
    for (size_t done = 0; done < keep;) {
        const size_t n = std::min(piece.size(), keep - done);
        copy_out((head_ + done) % capacity_, piece.data(), n);
        resized.copy_in(done, piece.data(), n);
        done += n;
    }
    resized.size_ = size_;
    resized.unallocated_extent_ = keep - size_;
    *this = std::move(resized);
}

size_t RingBuffer::write(std::span<const uint8_t> data) {
    const size_t n = std::min(data.size(), free_space());
    if (n == 0) {
        return 0;
    }
    copy_in((head_ + size_) % capacity_, data.data(), n);
    size_ += n;
    // The placed bytes are positioned after the held ones: the held end
    // moved n closer to them (or over them).
    unallocated_extent_ = unallocated_extent_ > n ? unallocated_extent_ - n : 0;
    return n;
}

size_t RingBuffer::peek(size_t offset, std::span<uint8_t> out) const {
    if (offset >= size_) {
        return 0;
    }
    const size_t n = std::min(out.size(), size_ - offset);
    copy_out((head_ + offset) % capacity_, out.data(), n);
    return n;
}

size_t RingBuffer::readable_spans(size_t offset, std::span<std::span<const uint8_t>> out) const {
    // What copy_out() reads for a chunk never written (commit() past the
    // data): zeros.
    static const std::array<uint8_t, chunk_size> never_written{};
    size_t count = 0;
    size_t left = offset < size_ ? size_ - offset : 0;
    size_t pos = left > 0 ? (head_ + offset) % capacity_ : 0;
    while (left > 0 && count < out.size()) {
        const size_t index = pos / chunk_size;
        const size_t within = pos % chunk_size;
        const size_t take = std::min(left, chunk_length(index) - within);
        const uint8_t* base = index < chunks_.size() && chunks_[index] ? chunks_[index].get() + within
                                                                       : never_written.data();
        out[count++] = std::span<const uint8_t>(base, take);
        left -= take;
        pos += take;
        if (pos == capacity_) {
            pos = 0;
        }
    }
    return count;
}

void RingBuffer::consume(size_t n) {
    n = std::min(n, size_);
    if (n == 0) {
        return;
    }
    // head_ is deliberately not reset to 0 when the ring empties: bytes
    // placed by write_unallocated() are positioned relative to the end of
    // the visible data and must stay where they are.
    const size_t old_head = head_;
    head_ = (head_ + n) % capacity_;
    size_ -= n;
    // The chunks the head passed over: at most n / chunk_size + 2, one
    // more for the short last chunk; the head's own chunk may be dead too.
    release_dead_chunks(old_head / chunk_size, n / chunk_size + 3);
}

size_t RingBuffer::read(std::span<uint8_t> out) {
    const size_t n = peek(0, out);
    consume(n);
    return n;
}

size_t RingBuffer::write_unallocated(size_t offset, std::span<const uint8_t> data) {
    const size_t free = free_space();
    if (offset >= free) {
        return 0;
    }
    const size_t n = std::min(data.size(), free - offset);
    if (n == 0) {
        return 0;
    }
    // (head_ + size_) < 2*capacity and offset < capacity, so no overflow.
    copy_in((head_ + size_ + offset) % capacity_, data.data(), n);
    unallocated_extent_ = std::max(unallocated_extent_, offset + n);
    return n;
}

void RingBuffer::commit(size_t n) {
    n = std::min(n, free_space());
    size_ += n;
    unallocated_extent_ = unallocated_extent_ > n ? unallocated_extent_ - n : 0;
}

}  // namespace ustack::tcp
