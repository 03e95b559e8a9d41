#pragma once
// Injected randomness: ISNs, ephemeral ports, IP IDs and the fault injector
// all draw from a Random the owner passes in, so a test can fix the seed.
#include <cstdint>

namespace ustack {

class Random {
public:
    virtual ~Random() = default;
    virtual uint64_t next_u64() = 0;
    uint32_t next_u32() { return static_cast<uint32_t>(next_u64() >> 32); }
    // Uniform in [0, bound); bound > 0. Lemire's multiply-shift, bias < 2^-32.
    uint32_t below(uint32_t bound) {
        return static_cast<uint32_t>((static_cast<uint64_t>(next_u32()) * bound) >> 32);
    }
    // True with probability p (0..1).
    bool chance(double p) { return static_cast<double>(next_u64() >> 11) * 0x1.0p-53 < p; }
};

// xoshiro256** seeded through splitmix64: fast, good enough for simulation
// and for non-secret choices. Secret keys (ISN, port hash) are drawn from it
// once at start; the host seeds it from getrandom().
class SeededRandom final : public Random {
public:
    explicit SeededRandom(uint64_t seed) {
        for (auto& word : state_) {
            seed += 0x9e3779b97f4a7c15ULL;
            uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            word = z ^ (z >> 31);
        }
    }
    uint64_t next_u64() override {
        const uint64_t result = rotl(state_[1] * 5, 7) * 9;
        const uint64_t t = state_[1] << 17;
        state_[2] ^= state_[0];
        state_[3] ^= state_[1];
        state_[1] ^= state_[2];
        state_[0] ^= state_[3];
        state_[2] ^= t;
        state_[3] = rotl(state_[3], 45);
        return result;
    }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    uint64_t state_[4]{};
};

}  // namespace ustack
