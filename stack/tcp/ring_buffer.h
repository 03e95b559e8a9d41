#pragma once
// Byte ring buffer with a fixed capacity: the send buffer (bytes the
// application wrote, not yet acknowledged) and the in-order receive buffer.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace ustack::tcp {

class RingBuffer {
public:
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
    // Removes the oldest n bytes (n <= size()).
    void consume(size_t n);
    // Copies then consumes; returns how many.
    size_t read(std::span<uint8_t> out);
    // Writes `data` at `offset` bytes past the end of held data (into free
    // space) without making it visible; used to place out-of-order bytes.
    // Returns how many bytes fit. commit(n) later makes n bytes visible.
    size_t write_unallocated(size_t offset, std::span<const uint8_t> data);
    void commit(size_t n);

private:
    std::vector<uint8_t> storage_;
    size_t head_ = 0;  // index of the oldest byte
    size_t size_ = 0;
};

}  // namespace ustack::tcp
