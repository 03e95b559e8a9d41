#include "stack/tcp/isn.h"

#include <array>

namespace ustack::tcp {

SequenceSecrets::SequenceSecrets(Random& random)
    : isn_key_{random.next_u64(), random.next_u64()}, ts_key_{random.next_u64(), random.next_u64()} {}

wire::SeqNumber SequenceSecrets::isn(Instant now, const Endpoint& local, const Endpoint& remote) const {
    const std::array<uint32_t, 3> words{local.addr.to_u32(), remote.addr.to_u32(),
                                        (uint32_t{local.port} << 16) | remote.port};
    const auto hash = static_cast<uint32_t>(siphash_words(isn_key_, words));
    // M: nanoseconds >> 6. Computed in 64 bits, then taken modulo 2^32.
    const auto clock = static_cast<uint32_t>(static_cast<uint64_t>(now.micros()) * 1000u >> 6);
    return wire::SeqNumber(hash + clock);
}

uint32_t SequenceSecrets::ts_offset(wire::Ipv4Address local, wire::Ipv4Address remote) const {
    const std::array<uint32_t, 2> words{local.to_u32(), remote.to_u32()};
    return static_cast<uint32_t>(siphash_words(ts_key_, words));
}

}  // namespace ustack::tcp
