#include "stack/tcp/ring_buffer.h"

#include <algorithm>
#include <cstring>

namespace ustack::tcp {

namespace {

// Copies `len` bytes of `src` into the ring `ring` starting at index `pos`,
// wrapping at the end of the ring. Caller guarantees len <= ring.size().
void copy_into_ring(std::vector<uint8_t>& ring, size_t pos, const uint8_t* src, size_t len) {
    if (len == 0) {
        return;
    }
    const size_t first = std::min(len, ring.size() - pos);
    std::memcpy(ring.data() + pos, src, first);
    if (len > first) {
        std::memcpy(ring.data(), src + first, len - first);
    }
}

// The reverse: `len` bytes from ring index `pos` into `dst`, wrapping.
void copy_from_ring(const std::vector<uint8_t>& ring, size_t pos, uint8_t* dst, size_t len) {
    if (len == 0) {
        return;
    }
    const size_t first = std::min(len, ring.size() - pos);
    std::memcpy(dst, ring.data() + pos, first);
    if (len > first) {
        std::memcpy(dst + first, ring.data(), len - first);
    }
}

}  // namespace

RingBuffer::RingBuffer(size_t capacity) : storage_(capacity) {}

size_t RingBuffer::capacity() const {
    return storage_.size();
}

size_t RingBuffer::size() const {
    return size_;
}

size_t RingBuffer::free_space() const {
    return storage_.size() - size_;
}

bool RingBuffer::empty() const {
    return size_ == 0;
}

void RingBuffer::set_capacity(size_t capacity) {
    // Never drop visible bytes: they are either unacknowledged (send side)
    // or already acknowledged to the peer (receive side).
    const size_t new_capacity = std::max(capacity, size_);
    if (new_capacity == storage_.size()) {
        return;
    }
    // Linearize from head_. The copy covers as much of the old ring as fits,
    // not only size_ bytes, so out-of-order bytes placed by
    // write_unallocated() past the visible data survive a grow (and survive
    // a shrink as far as the new capacity reaches).
    std::vector<uint8_t> grown(new_capacity);
    const size_t keep = std::min(new_capacity, storage_.size());
    copy_from_ring(storage_, storage_.empty() ? 0 : head_, grown.data(), keep);
    storage_ = std::move(grown);
    head_ = 0;
}

size_t RingBuffer::write(std::span<const uint8_t> data) {
    const size_t n = std::min(data.size(), free_space());
    if (n == 0) {
        return 0;
    }
    copy_into_ring(storage_, (head_ + size_) % storage_.size(), data.data(), n);
    size_ += n;
    return n;
}

size_t RingBuffer::peek(size_t offset, std::span<uint8_t> out) const {
    if (offset >= size_) {
        return 0;
    }
    const size_t n = std::min(out.size(), size_ - offset);
    copy_from_ring(storage_, (head_ + offset) % storage_.size(), out.data(), n);
    return n;
}

void RingBuffer::consume(size_t n) {
    n = std::min(n, size_);
    if (n == 0) {
        return;
    }
    // head_ is deliberately not reset to 0 when the ring empties: bytes
    // placed by write_unallocated() are positioned relative to the end of
    // the visible data and must stay where they are.
    head_ = (head_ + n) % storage_.size();
    size_ -= n;
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
    copy_into_ring(storage_, (head_ + size_ + offset) % storage_.size(), data.data(), n);
    return n;
}

void RingBuffer::commit(size_t n) {
    size_ += std::min(n, free_space());
}

}  // namespace ustack::tcp
