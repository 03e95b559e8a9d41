#pragma once
// SipHash-2-4 (Aumasson & Bernstein), the keyed hash Linux uses for ISNs
// (RFC 6528), ephemeral port offsets (RFC 6056) and SO_REUSEPORT selection:
// outputs an attacker cannot predict without the key.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace ustack {

using SipKey = std::array<uint64_t, 2>;

uint64_t siphash24(const SipKey& key, std::span<const uint8_t> data);

// Convenience for hashing a few integers (packed little-endian).
uint64_t siphash_words(const SipKey& key, std::span<const uint32_t> words);

}  // namespace ustack
