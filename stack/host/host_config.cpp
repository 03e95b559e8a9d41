#include "stack/host/host_config.h"

#include <charconv>
#include <cstdlib>

namespace ustack::host {

namespace {

std::string bad(std::string_view flag, std::string_view value, std::string_view accepted) {
    return "--" + std::string(flag) + ": invalid value '" + std::string(value) + "' (accepted: " +
           std::string(accepted) + ")";
}

// A second of spinning after every event is already a core given away;
// more is a mistake, not a setting.
constexpr int64_t max_busy_poll_us = 1000000;

std::optional<int64_t> parse_int(std::string_view text) {
    int64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) {
        return std::nullopt;
    }
    return v;
}

}  // namespace

const std::vector<SettingInfo>& HostConfig::settings() {
    static const std::vector<SettingInfo> table = {
        {"dev", "USTACK_DEV", "", "tap:NAME|packet:IFNAME",
         "device the stack runs on: a TAP (created when missing) or an existing interface through AF_PACKET"},
        {"addr", "USTACK_ADDR", "", "A.B.C.D/LEN", "the stack's IPv4 address and connected subnet"},
        {"gw", "USTACK_GW", "", "A.B.C.D", "default gateway (inside the subnet): routes everything but loopback"},
        {"mode", "USTACK_MODE", "", "daemon|inproc",
         "daemon: one ustackd per device, shared by programs; inproc: the stack runs inside the program"},
        {"time-wait", "USTACK_TIME_WAIT", "time_wait", "MS", "TIME_WAIT duration (Linux: fixed 60000)"},
        {"fin-timeout", "USTACK_FIN_TIMEOUT", "tcp_fin_timeout", "MS", "orphaned FIN_WAIT2 lifetime"},
        {"tw-reuse", "USTACK_TW_REUSE", "tcp_tw_reuse", "0|1|2", "TIME_WAIT reuse for outgoing connections"},
        {"tw-reuse-delay", "USTACK_TW_REUSE_DELAY", "tcp_tw_reuse_delay", "MS",
         "time since a TIME_WAIT entry's last timestamp before it may be reused"},
        {"port-range", "USTACK_PORT_RANGE", "ip_local_port_range", "LO-HI", "ephemeral port range"},
        {"rfc1337", "USTACK_RFC1337", "tcp_rfc1337", "0|1",
         "1: a TIME_WAIT entry ignores RST instead of ending (RFC 1337 TIME-WAIT assassination)"},
        {"pcap", "USTACK_PCAP", "", "FILE", "record every frame of the device to FILE"},
        {"offload", "USTACK_OFFLOAD", "", "on|off",
         "device offloads (TAP IFF_VNET_HDR, AF_PACKET PACKET_VNET_HDR): 64 KiB TCP frames both ways"},
        {"busy-poll", "USTACK_BUSY_POLL", "", "USEC",
         "after an event keep polling for USEC microseconds before sleeping (Linux net.core.busy_poll; 0: off)"},
        {"log", "USTACK_LOG", "", "error|warn|info|debug", "host log level"},
        {"idle-exit", "USTACK_IDLE_EXIT", "", "MS", "daemon: exit after MS without sockets or TIME_WAIT entries"},
    };
    return table;
}

std::string_view log_level_name(LogLevel level) {
    switch (level) {
    case LogLevel::Error: return "error";
    case LogLevel::Warn: return "warn";
    case LogLevel::Info: return "info";
    case LogLevel::Debug: return "debug";
    }
    return "warn";
}

std::optional<std::pair<std::string, std::string>> HostConfig::device_kind() const {
    const size_t colon = device.find(':');
    if (colon == std::string::npos) {
        return std::nullopt;
    }
    std::string kind = device.substr(0, colon);
    std::string name = device.substr(colon + 1);
    if ((kind != "tap" && kind != "packet") || name.empty() || name.size() >= 16 ||
        name.find_first_of("/ \t\n") != std::string::npos) {
        return std::nullopt;
    }
    return std::make_pair(kind, name);
}

std::optional<std::string> HostConfig::set(std::string_view flag, std::string_view value) {
    for (const SettingInfo& s : settings()) {
        if (s.flag != flag || s.tunable.empty()) {
            continue;
        }
        // Validation is Tunables::set's; the message gains the flag's name.
        if (auto error = tunables.set(s.tunable, value)) {
            return "--" + std::string(flag) + ": " + *error;
        }
        explicit_tunables.emplace_back(std::string(s.tunable), std::string(value));
        return std::nullopt;
    }
    if (flag == "dev") {
        const std::string old = device;
        device = std::string(value);
        if (!device_kind()) {
            device = old;
            return bad(flag, value, "tap:NAME or packet:IFNAME, NAME a valid interface name");
        }
        return std::nullopt;
    }
    if (flag == "addr") {
        auto cidr = wire::Ipv4Cidr::parse(value);
        if (!cidr || cidr->address.is_unspecified() || cidr->address.is_multicast() || cidr->address.is_loopback() ||
            cidr->address.is_broadcast() || cidr->prefix_len == 0 || cidr->prefix_len > 32) {
            return bad(flag, value, "A.B.C.D/LEN, a unicast address, 1 <= LEN <= 32");
        }
        address = *cidr;
        return std::nullopt;
    }
    if (flag == "gw") {
        auto gw = wire::Ipv4Address::parse(value);
        if (!gw || gw->is_unspecified() || gw->is_multicast() || gw->is_broadcast()) {
            return bad(flag, value, "A.B.C.D, a unicast address inside the --addr subnet");
        }
        gateway = *gw;
        return std::nullopt;
    }
    if (flag == "mode") {
        if (value == "daemon") {
            mode = HostMode::Daemon;
        } else if (value == "inproc") {
            mode = HostMode::Inproc;
        } else {
            return bad(flag, value, "daemon or inproc");
        }
        return std::nullopt;
    }
    if (flag == "pcap") {
        if (value.empty()) {
            return bad(flag, value, "a file name");
        }
        pcap = std::string(value);
        return std::nullopt;
    }
    if (flag == "offload") {
        if (value != "on" && value != "off") {
            return bad(flag, value, "on or off");
        }
        offload = value == "on";
        return std::nullopt;
    }
    if (flag == "busy-poll") {
        auto us = parse_int(value);
        if (!us || *us < 0 || *us > max_busy_poll_us) {
            return bad(flag, value, "microseconds, 0 to " + std::to_string(max_busy_poll_us));
        }
        busy_poll = Duration::from_micros(*us);
        return std::nullopt;
    }
    if (flag == "log") {
        for (LogLevel l : {LogLevel::Error, LogLevel::Warn, LogLevel::Info, LogLevel::Debug}) {
            if (value == log_level_name(l)) {
                log = l;
                return std::nullopt;
            }
        }
        return bad(flag, value, "error, warn, info or debug");
    }
    if (flag == "idle-exit") {
        auto ms = parse_int(value);
        if (!ms || *ms < 0 || *ms > (int64_t{1} << 40)) {
            return bad(flag, value, "milliseconds >= 0");
        }
        idle_exit = Duration::from_millis(*ms);
        return std::nullopt;
    }
    return "--" + std::string(flag) + ": unknown setting";
}

std::optional<std::string> HostConfig::load_environment() {
    for (const SettingInfo& s : settings()) {
        const char* value = std::getenv(std::string(s.env).c_str());
        if (value == nullptr) {
            continue;
        }
        if (auto error = set(s.flag, value)) {
            return std::string(s.env) + "=" + value + ": " + *error;
        }
    }
    if (address && gateway && !address->contains(*gateway)) {
        return "--gw: " + gateway->to_string() + " is not inside the --addr subnet " + address->to_string();
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, std::string>> HostConfig::to_environment() const {
    std::vector<std::pair<std::string, std::string>> env;
    env.emplace_back("USTACK_DEV", device);
    if (address) {
        env.emplace_back("USTACK_ADDR", address->to_string());
    }
    if (gateway) {
        env.emplace_back("USTACK_GW", gateway->to_string());
    }
    env.emplace_back("USTACK_MODE", mode == HostMode::Daemon ? "daemon" : "inproc");
    // Only the tunables given explicitly: a daemon started later keeps its
    // defaults for the others, and a running one is not reset to them.
    for (const auto& [tunable, value] : explicit_tunables) {
        for (const SettingInfo& s : settings()) {
            if (s.tunable == tunable) {
                env.emplace_back(std::string(s.env), value);
            }
        }
    }
    if (pcap) {
        env.emplace_back("USTACK_PCAP", *pcap);
    }
    if (!offload) {
        env.emplace_back("USTACK_OFFLOAD", "off");
    }
    if (busy_poll > Duration::zero()) {
        env.emplace_back("USTACK_BUSY_POLL", std::to_string(busy_poll.micros()));
    }
    env.emplace_back("USTACK_LOG", std::string(log_level_name(log)));
    env.emplace_back("USTACK_IDLE_EXIT", std::to_string(idle_exit.millis()));
    return env;
}

}  // namespace ustack::host
