#pragma once
// Big-endian field access over byte spans. Callers check lengths first
// (each view's parse() does); these helpers assume the bytes are there.
#include <cstddef>
#include <cstdint>
#include <span>

namespace ustack::wire {

using ByteSpan = std::span<const uint8_t>;
using MutByteSpan = std::span<uint8_t>;

// A named field: [start, end) bytes within a header (smoltcp's Field).
struct Field {
    size_t start;
    size_t end;
    constexpr size_t size() const { return end - start; }
};

inline uint16_t read_u16(ByteSpan b, size_t off) {
    return static_cast<uint16_t>((b[off] << 8) | b[off + 1]);
}
inline uint32_t read_u32(ByteSpan b, size_t off) {
    return (static_cast<uint32_t>(b[off]) << 24) | (static_cast<uint32_t>(b[off + 1]) << 16) |
           (static_cast<uint32_t>(b[off + 2]) << 8) | static_cast<uint32_t>(b[off + 3]);
}
inline void write_u16(MutByteSpan b, size_t off, uint16_t v) {
    b[off] = static_cast<uint8_t>(v >> 8);
    b[off + 1] = static_cast<uint8_t>(v);
}
inline void write_u32(MutByteSpan b, size_t off, uint32_t v) {
    b[off] = static_cast<uint8_t>(v >> 24);
    b[off + 1] = static_cast<uint8_t>(v >> 16);
    b[off + 2] = static_cast<uint8_t>(v >> 8);
    b[off + 3] = static_cast<uint8_t>(v);
}

// Why a frame was refused by a parser. The interface counts each.
enum class ParseError {
    Truncated,     // buffer shorter than the header or than a length field says
    BadLength,     // a length field is inconsistent (too small, not a multiple...)
    BadChecksum,
    BadVersion,
    Unsupported,   // well-formed but a kind we do not handle (hw type, ICMP type...)
    Malformed,     // anything else structurally wrong (bad option length...)
};

const char* to_string(ParseError e);

}  // namespace ustack::wire
