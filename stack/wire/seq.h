#pragma once
// TCP sequence numbers: 32-bit, compared modulo 2^32 (RFC 9293 §3.4).
// a < b means b is "after" a by less than 2^31.
#include <cstdint>

namespace ustack::wire {

class SeqNumber {
public:
    constexpr SeqNumber() = default;
    constexpr explicit SeqNumber(uint32_t v) : v_(v) {}
    constexpr uint32_t raw() const { return v_; }

    constexpr SeqNumber operator+(uint32_t n) const { return SeqNumber(v_ + n); }
    constexpr SeqNumber operator-(uint32_t n) const { return SeqNumber(v_ - n); }
    constexpr SeqNumber& operator+=(uint32_t n) { v_ += n; return *this; }
    // Signed distance this - other, valid while |distance| < 2^31.
    constexpr int32_t operator-(SeqNumber o) const { return static_cast<int32_t>(v_ - o.v_); }

    constexpr bool operator==(const SeqNumber&) const = default;
    constexpr bool operator<(SeqNumber o) const { return (*this - o) < 0; }
    constexpr bool operator>(SeqNumber o) const { return (*this - o) > 0; }
    constexpr bool operator<=(SeqNumber o) const { return (*this - o) <= 0; }
    constexpr bool operator>=(SeqNumber o) const { return (*this - o) >= 0; }

    static constexpr SeqNumber max(SeqNumber a, SeqNumber b) { return a > b ? a : b; }
    static constexpr SeqNumber min(SeqNumber a, SeqNumber b) { return a < b ? a : b; }

private:
    uint32_t v_ = 0;
};

// lo <= x < hi, modulo 2^32.
constexpr bool seq_in_range(SeqNumber x, SeqNumber lo, SeqNumber hi) {
    return (x - lo) >= 0 && (hi - x) > 0;
}

}  // namespace ustack::wire
