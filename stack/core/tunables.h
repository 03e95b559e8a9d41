#pragma once
// The settings Linux exposes as sysctls (and the ones it hard-codes, like
// the TIME_WAIT length), with Linux's names and units. One struct, set three
// ways (ustack-run flags, USTACK_* environment, ustackctl sysctl), validated
// on every set: a bad value is refused with a message naming the setting.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stack/core/time.h"

namespace ustack {

struct Tunables {
    // TIME_WAIT length. Linux: TCP_TIMEWAIT_LEN, fixed 60 s.
    Duration time_wait = Duration::from_secs(60);
    // Orphaned FIN_WAIT2 lifetime (net.ipv4.tcp_fin_timeout, seconds in Linux).
    Duration tcp_fin_timeout = Duration::from_secs(60);
    // 0 off, 1 on, 2 loopback only (Linux's default; never loopback here).
    int tcp_tw_reuse = 2;
    // net.ipv4.tcp_tw_reuse_delay (ms, Linux 6.12+).
    Duration tcp_tw_reuse_delay = Duration::from_millis(1000);
    uint16_t ip_local_port_range_low = 32768;
    uint16_t ip_local_port_range_high = 60999;
    bool tcp_timestamps = true;
    // Above this many TIME_WAIT entries a closing socket skips TIME_WAIT
    // (counted as TCPTimeWaitOverflow).
    uint32_t tcp_max_tw_buckets = 262144;
    // RFC 1337: 0 = an in-window RST kills a TIME_WAIT entry (Linux default).
    int tcp_rfc1337 = 0;

    struct Info {
        std::string_view name;         // e.g. "tcp_tw_reuse"
        std::string_view linux_name;   // e.g. "net.ipv4.tcp_tw_reuse", or "" when Linux has none
        std::string_view unit;         // "ms", "0|1|2", "LO HI", ...
        std::string_view description;
    };
    static const std::vector<Info>& all();

    // Sets one value by its name (with or without the "net.ipv4." prefix).
    // Returns an error message naming the setting and the accepted values,
    // or nullopt on success; on error nothing changes.
    std::optional<std::string> set(std::string_view name, std::string_view value);
    // The current value as text, or nullopt for an unknown name.
    std::optional<std::string> get(std::string_view name) const;
};

}  // namespace ustack
