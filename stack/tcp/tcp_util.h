#pragma once
// Small shared pieces of the TCP engine: the 4-tuple key of the
// connection tables, the timestamp clock and the PAWS test.
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>

#include "stack/core/time.h"
#include "stack/tcp/tcp_types.h"

namespace ustack::tcp {

// A connection's 4-tuple as seen from our side.
struct ConnKey {
    uint32_t local_addr = 0;
    uint32_t remote_addr = 0;
    uint16_t local_port = 0;
    uint16_t remote_port = 0;

    static ConnKey of(const Endpoint& local, const Endpoint& remote) {
        return ConnKey{local.addr.to_u32(), remote.addr.to_u32(), local.port, remote.port};
    }
    Endpoint local() const { return Endpoint{wire::Ipv4Address(local_addr), local_port}; }
    Endpoint remote() const { return Endpoint{wire::Ipv4Address(remote_addr), remote_port}; }
    auto operator<=>(const ConnKey&) const = default;
};

struct ConnKeyHash {
    uint64_t seed = 0;
    size_t operator()(const ConnKey& k) const {
        uint64_t x = (uint64_t{k.local_addr} << 32 | k.remote_addr) ^ seed;
        x ^= (uint64_t{k.local_port} << 16 | k.remote_port) * 0x9e3779b97f4a7c15ULL;
        x ^= x >> 33;
        x *= 0xff51afd7ed558ccdULL;
        x ^= x >> 33;
        x *= 0xc4ceb9fe1a85ec53ULL;
        x ^= x >> 33;
        return static_cast<size_t>(x);
    }
};

// The RFC 7323 timestamp clock: milliseconds (Linux's TCP_TS_HZ = 1000),
// modulo 2^32, before the per-connection offset is added.
inline uint32_t ts_clock(Instant now) {
    return static_cast<uint32_t>(now.micros() / 1000);
}

// TCP_PAWS_24DAYS: a TS.Recent older than this is no longer trusted
// (RFC 7323 §5.5); TCP_PAWS_MSL: a RST may pass PAWS after this long.
inline constexpr Duration paws_idle_limit = Duration::from_secs(24 * 24 * 3600);
inline constexpr Duration paws_msl = Duration::from_secs(60);

// tcp_paws_check(): true when the segment's TSval passes against
// TS.Recent with `window` of slack (0 in TIME_WAIT, TCP_PAWS_WINDOW = 1
// for established connections).
inline bool paws_check(std::optional<uint32_t> ts_recent, Instant ts_recent_stamp, uint32_t tsval, Instant now,
                       int32_t window) {
    if (!ts_recent) {
        return true;
    }
    if (static_cast<int32_t>(*ts_recent - tsval) <= window) {
        return true;
    }
    if (now - ts_recent_stamp >= paws_idle_limit) {
        return true;
    }
    // Some stacks send TSval 0 on the SYN; Linux ignores a zero TS.Recent.
    return *ts_recent == 0;
}

// tcp_paws_reject(): PAWS with TIME_WAIT's relaxation for RSTs.
inline bool paws_reject(std::optional<uint32_t> ts_recent, Instant ts_recent_stamp, uint32_t tsval, Instant now,
                        bool rst) {
    if (paws_check(ts_recent, ts_recent_stamp, tsval, now, 0)) {
        return false;
    }
    return !(rst && now - ts_recent_stamp >= paws_msl);
}

}  // namespace ustack::tcp

template <>
struct std::hash<ustack::tcp::ConnKey> {
    size_t operator()(const ustack::tcp::ConnKey& k) const noexcept { return ustack::tcp::ConnKeyHash{}(k); }
};
