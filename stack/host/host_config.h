#pragma once
// A host's configuration, with one name per setting used three ways:
// ustack-run/ustackd flags (--tw-reuse), environment (USTACK_TW_REUSE) and,
// for the stack's tunables, `ustackctl sysctl` (tcp_tw_reuse). Every value
// is validated when set (tunables through Tunables::set); the error names
// the flag, so a launcher refuses a bad value before the program starts.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stack/core/time.h"
#include "stack/core/tunables.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::host {

enum class HostMode { Daemon, Inproc };
enum class LogLevel { Error = 0, Warn = 1, Info = 2, Debug = 3 };

struct SettingInfo {
    std::string_view flag;     // "tw-reuse" (the option is --tw-reuse)
    std::string_view env;      // "USTACK_TW_REUSE"
    std::string_view tunable;  // "tcp_tw_reuse", or "" when not a stack tunable
    std::string_view value;    // "0|1|2"
    std::string_view help;
};

struct HostConfig {
    std::string device = "tap:ustack0";  // tap:NAME | packet:IFNAME
    std::optional<wire::Ipv4Cidr> address;
    std::optional<wire::Ipv4Address> gateway;
    HostMode mode = HostMode::Daemon;
    Tunables tunables;
    std::optional<std::string> pcap;
    // Device offloads (TapOptions/PacketOptions::offloads); off for a
    // capture of what the kernel would see segment by segment on receive.
    bool offload = true;
    // After an event, the host keeps polling (epoll with no timeout) this
    // long before it sleeps: Linux's net.core.busy_poll for the host's
    // loop. What it saves is the wake-up of a sleeping host thread on each
    // request and answer (rr, crr); what it costs is a core kept busy for
    // that long after the last event. 0 (Linux's default): off.
    Duration busy_poll = Duration::zero();
    LogLevel log = LogLevel::Warn;
    // Daemon: exit after this long with no socket and no TIME_WAIT entry.
    Duration idle_exit = Duration::from_secs(5);
    // Tunable names given explicitly (flags or environment), in order, to
    // apply them to an already running daemon as well.
    std::vector<std::pair<std::string, std::string>> explicit_tunables;

    static const std::vector<SettingInfo>& settings();

    // Sets one setting by its flag name ("tw-reuse", without dashes).
    // Returns an error naming "--flag" and the accepted values.
    std::optional<std::string> set(std::string_view flag, std::string_view value);
    // Reads every USTACK_* variable of the table; the first bad one is an
    // error naming the variable.
    std::optional<std::string> load_environment();
    // The variables that reproduce this config (for the program's
    // environment and for a daemon started on its behalf).
    std::vector<std::pair<std::string, std::string>> to_environment() const;

    // "tap" or "packet", and the interface name; nullopt when malformed.
    std::optional<std::pair<std::string, std::string>> device_kind() const;
};

std::string_view log_level_name(LogLevel level);

}  // namespace ustack::host
