#include "netdev/mac.h"

#include <sys/random.h>

#include <cerrno>
#include <chrono>
#include <cstdint>

namespace ustack::netdev {
namespace {

wire::MacAddress from_bits(uint64_t bits) {
    wire::MacAddress mac;
    for (size_t i = 0; i < mac.bytes.size(); ++i) {
        mac.bytes[i] = static_cast<uint8_t>(bits >> (8 * i));
    }
    // Locally administered unicast, with the first octet exactly 0x02 so
    // the address reads as ours in captures.
    mac.bytes[0] = 0x02;
    return mac;
}

}  // namespace

wire::MacAddress random_local_mac() {
    uint64_t bits = 0;
    ssize_t got = -1;
    do {
        got = getrandom(&bits, sizeof bits, 0);
    } while (got < 0 && errno == EINTR);
    if (got != static_cast<ssize_t>(sizeof bits)) {
        // getrandom only fails before the entropy pool is ready on very old
        // kernels; an address need not be secret, only unlikely to collide.
        bits = static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) *
               0x9e3779b97f4a7c15ULL;
    }
    return from_bits(bits);
}

wire::MacAddress random_local_mac(Random& random) { return from_bits(random.next_u64()); }

}  // namespace ustack::netdev
