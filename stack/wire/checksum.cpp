#include "stack/wire/checksum.h"

#include <bit>
#include <cstring>

namespace ustack::wire::checksum {

namespace {

// Folds a wide one's-complement sum into 16 bits with end-around carry
// (RFC 1071 §2 (C) "deferred carries"). A non-zero sum never folds to 0.
uint32_t fold16(uint64_t sum) {
    while (sum > 0xffff) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint32_t>(sum);
}

}  // namespace

uint32_t accumulate(ByteSpan data, uint32_t sum) {
    // RFC 1071 §2 (B): the one's-complement sum is independent of word
    // size, and 2^16 == 1 (mod 2^16 - 1), so adding 32-bit words into a
    // 64-bit accumulator gives the same result as adding 16-bit words, with
    // no carry handling inside the loop (2^32 words of 2^32 would be needed
    // to overflow). It is also independent of byte order: the sum of the
    // words read in the host's order is the byte-swap of the big-endian
    // sum. So the bulk is read as native words, 16 bytes a round into four
    // independent accumulators (this loop is the stack's hottest: every
    // byte received is summed once, every byte sent once), and swapped
    // once at the end.
    const uint8_t* p = data.data();
    const size_t n = data.size();
    size_t i = 0;
    uint64_t a0 = 0;
    uint64_t a1 = 0;
    uint64_t a2 = 0;
    uint64_t a3 = 0;
    for (; i + 16 <= n; i += 16) {
        uint32_t w[4];
        std::memcpy(w, p + i, sizeof w);
        a0 += w[0];
        a1 += w[1];
        a2 += w[2];
        a3 += w[3];
    }
    uint64_t native = fold16((a0 + a1) + (a2 + a3));
    if constexpr (std::endian::native == std::endian::little) {
        native = ((native & 0xff) << 8) | (native >> 8);
    }
    uint64_t acc = uint64_t{sum} + native;
    for (; i + 4 <= n; i += 4) {
        acc += read_u32(data, i);
    }
    if (i + 2 <= n) {
        acc += read_u16(data, i);
        i += 2;
    }
    if (i < n) {
        // RFC 1071 §4.1: an odd last byte is the high byte of a word padded
        // with zero.
        acc += static_cast<uint32_t>(data[i]) << 8;
    }
    return fold16(acc);
}

uint16_t finish(uint32_t sum) {
    return static_cast<uint16_t>(~fold16(sum) & 0xffff);
}

uint32_t pseudo_header(Ipv4Address src, Ipv4Address dst, uint8_t protocol, uint16_t length) {
    // RFC 9293 §3.1 / RFC 768: src (4), dst (4), zero (1), protocol (1),
    // length (2), summed as 16-bit words.
    const uint64_t acc = uint64_t{src.to_u32() >> 16} + (src.to_u32() & 0xffff) +
                         (dst.to_u32() >> 16) + (dst.to_u32() & 0xffff) + protocol + length;
    return fold16(acc);
}

}  // namespace ustack::wire::checksum
