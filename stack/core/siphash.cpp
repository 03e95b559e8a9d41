#include "stack/core/siphash.h"

#include <vector>

namespace ustack {

namespace {

constexpr uint64_t rotl(uint64_t x, int b) { return (x << b) | (x >> (64 - b)); }

struct State {
    uint64_t v0, v1, v2, v3;
    void round() {
        v0 += v1;
        v1 = rotl(v1, 13);
        v1 ^= v0;
        v0 = rotl(v0, 32);
        v2 += v3;
        v3 = rotl(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = rotl(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = rotl(v1, 17);
        v1 ^= v2;
        v2 = rotl(v2, 32);
    }
};

uint64_t load_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | p[i];
    }
    return v;
}

}  // namespace

uint64_t siphash24(const SipKey& key, std::span<const uint8_t> data) {
    State s{0x736f6d6570736575ULL ^ key[0], 0x646f72616e646f6dULL ^ key[1], 0x6c7967656e657261ULL ^ key[0],
            0x7465646279746573ULL ^ key[1]};
    const size_t n = data.size();
    const size_t blocks = n / 8;
    for (size_t i = 0; i < blocks; ++i) {
        const uint64_t m = load_le64(data.data() + i * 8);
        s.v3 ^= m;
        s.round();
        s.round();
        s.v0 ^= m;
    }
    uint64_t last = static_cast<uint64_t>(n & 0xff) << 56;
    for (size_t i = 0; i < (n & 7); ++i) {
        last |= static_cast<uint64_t>(data[blocks * 8 + i]) << (8 * i);
    }
    s.v3 ^= last;
    s.round();
    s.round();
    s.v0 ^= last;
    s.v2 ^= 0xff;
    s.round();
    s.round();
    s.round();
    s.round();
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

uint64_t siphash_words(const SipKey& key, std::span<const uint32_t> words) {
    uint8_t buf[64];
    size_t len = 0;
    for (uint32_t w : words) {
        if (len + 4 > sizeof(buf)) {
            break;
        }
        buf[len++] = static_cast<uint8_t>(w);
        buf[len++] = static_cast<uint8_t>(w >> 8);
        buf[len++] = static_cast<uint8_t>(w >> 16);
        buf[len++] = static_cast<uint8_t>(w >> 24);
    }
    return siphash24(key, std::span<const uint8_t>(buf, len));
}

}  // namespace ustack
