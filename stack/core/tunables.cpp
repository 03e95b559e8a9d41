#include "stack/core/tunables.h"

#include <charconv>

namespace ustack {

namespace {

std::optional<int64_t> parse_integer(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n')) {
        text.remove_suffix(1);
    }
    int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return value;
}

std::string_view strip_prefix(std::string_view name) {
    constexpr std::string_view prefix = "net.ipv4.";
    if (name.starts_with(prefix)) {
        name.remove_prefix(prefix.size());
    }
    return name;
}

std::string refuse(std::string_view name, std::string_view value, std::string_view accepted) {
    return std::string(name) + ": invalid value '" + std::string(value) + "' (accepted: " + std::string(accepted) +
           ")";
}

// Linux's port range is space- or tab-separated ("32768\t60999"); a dash is
// accepted too for the launcher's --port-range LO-HI.
std::optional<std::pair<int64_t, int64_t>> parse_range(std::string_view text) {
    const size_t sep = text.find_first_of(" \t-");
    if (sep == std::string_view::npos) {
        return std::nullopt;
    }
    auto lo = parse_integer(text.substr(0, sep));
    std::string_view rest = text.substr(sep + 1);
    while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) {
        rest.remove_prefix(1);
    }
    auto hi = parse_integer(rest);
    if (!lo || !hi) {
        return std::nullopt;
    }
    return std::make_pair(*lo, *hi);
}

}  // namespace

const std::vector<Tunables::Info>& Tunables::all() {
    static const std::vector<Info> infos = {
        {"time_wait", "", "ms >= 0", "TIME_WAIT duration (Linux: fixed 60000)"},
        {"tcp_fin_timeout", "net.ipv4.tcp_fin_timeout", "ms >= 0", "orphaned FIN_WAIT2 lifetime"},
        {"tcp_tw_reuse", "net.ipv4.tcp_tw_reuse", "0|1|2", "reuse TIME_WAIT 4-tuples for outgoing connections"},
        {"tcp_tw_reuse_delay", "net.ipv4.tcp_tw_reuse_delay", "ms >= 1",
         "time since the last timestamp before a TIME_WAIT entry may be reused"},
        {"ip_local_port_range", "net.ipv4.ip_local_port_range", "LO HI, 1 <= LO <= HI <= 65535",
         "ephemeral port range"},
        {"tcp_timestamps", "net.ipv4.tcp_timestamps", "0|1", "RFC 7323 timestamps"},
        {"tcp_max_tw_buckets", "net.ipv4.tcp_max_tw_buckets", "count >= 0",
         "TIME_WAIT entries held at most; beyond, closing sockets skip TIME_WAIT"},
        {"tcp_rfc1337", "net.ipv4.tcp_rfc1337", "0|1", "1: ignore RST in TIME_WAIT (RFC 1337)"},
    };
    return infos;
}

std::optional<std::string> Tunables::set(std::string_view full_name, std::string_view value) {
    const std::string_view name = strip_prefix(full_name);
    if (name == "ip_local_port_range") {
        auto range = parse_range(value);
        if (!range || range->first < 1 || range->second > 65535 || range->first > range->second) {
            return refuse(name, value, "LO HI with 1 <= LO <= HI <= 65535");
        }
        ip_local_port_range_low = static_cast<uint16_t>(range->first);
        ip_local_port_range_high = static_cast<uint16_t>(range->second);
        return std::nullopt;
    }
    const auto number = parse_integer(value);
    auto duration_ms = [&](Duration& field, int64_t minimum) -> std::optional<std::string> {
        // Bounded so that now + duration can never overflow an Instant.
        if (!number || *number < minimum || *number > int64_t{1} << 40) {
            return refuse(name, value, "milliseconds, >= " + std::to_string(minimum));
        }
        field = Duration::from_millis(*number);
        return std::nullopt;
    };
    auto choice = [&](int& field, int max) -> std::optional<std::string> {
        if (!number || *number < 0 || *number > max) {
            return refuse(name, value, max == 1 ? "0 or 1" : "0, 1 or 2");
        }
        field = static_cast<int>(*number);
        return std::nullopt;
    };
    if (name == "time_wait") {
        return duration_ms(time_wait, 0);
    }
    if (name == "tcp_fin_timeout") {
        return duration_ms(tcp_fin_timeout, 0);
    }
    if (name == "tcp_tw_reuse_delay") {
        return duration_ms(tcp_tw_reuse_delay, 1);
    }
    if (name == "tcp_tw_reuse") {
        return choice(tcp_tw_reuse, 2);
    }
    if (name == "tcp_rfc1337") {
        return choice(tcp_rfc1337, 1);
    }
    if (name == "tcp_timestamps") {
        int enabled = tcp_timestamps ? 1 : 0;
        if (auto error = choice(enabled, 1)) {
            return error;
        }
        tcp_timestamps = enabled == 1;
        return std::nullopt;
    }
    if (name == "tcp_max_tw_buckets") {
        if (!number || *number < 0 || *number > UINT32_MAX) {
            return refuse(name, value, "a count, 0.." + std::to_string(UINT32_MAX));
        }
        tcp_max_tw_buckets = static_cast<uint32_t>(*number);
        return std::nullopt;
    }
    return std::string(full_name) + ": unknown setting";
}

std::optional<std::string> Tunables::get(std::string_view full_name) const {
    const std::string_view name = strip_prefix(full_name);
    if (name == "time_wait") {
        return std::to_string(time_wait.millis());
    }
    if (name == "tcp_fin_timeout") {
        return std::to_string(tcp_fin_timeout.millis());
    }
    if (name == "tcp_tw_reuse") {
        return std::to_string(tcp_tw_reuse);
    }
    if (name == "tcp_tw_reuse_delay") {
        return std::to_string(tcp_tw_reuse_delay.millis());
    }
    if (name == "ip_local_port_range") {
        return std::to_string(ip_local_port_range_low) + "\t" + std::to_string(ip_local_port_range_high);
    }
    if (name == "tcp_timestamps") {
        return std::string(tcp_timestamps ? "1" : "0");
    }
    if (name == "tcp_max_tw_buckets") {
        return std::to_string(tcp_max_tw_buckets);
    }
    if (name == "tcp_rfc1337") {
        return std::to_string(tcp_rfc1337);
    }
    return std::nullopt;
}

}  // namespace ustack
