#pragma once
// The host settings as CLI11 options, shared by ustack-run, ustackd and
// `ustackctl up`: one option per HostConfig setting, each with its USTACK_*
// environment variable (shown by --help). Values are validated by
// HostConfig::set (Tunables::set for the stack's tunables), so a bad value
// is refused with a message naming the flag before anything starts.
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <unistd.h>

#include "stack/host/host_config.h"

namespace ustack::tools {

struct SettingOptions {
    std::map<std::string, std::string> values;  // flag → value as given
    std::map<std::string, CLI::Option*> options;
};

inline void add_setting_options(CLI::App& app, SettingOptions& s) {
    for (const host::SettingInfo& info : host::HostConfig::settings()) {
        const std::string flag(info.flag);
        std::string help(info.help);
        if (!info.tunable.empty()) {
            help += " (sysctl " + std::string(info.tunable) + ")";
        }
        CLI::Option* opt = app.add_option("--" + flag, s.values[flag], help);
        opt->type_name(std::string(info.value));
        opt->envname(std::string(info.env));
        s.options[flag] = opt;
    }
}

// Applies the parsed options to `config`. Returns an error message naming
// the flag (and the variable when the value came from the environment).
inline std::optional<std::string> apply_setting_options(const SettingOptions& s, host::HostConfig& config) {
    for (const host::SettingInfo& info : host::HostConfig::settings()) {
        const std::string flag(info.flag);
        auto it = s.options.find(flag);
        if (it == s.options.end() || it->second->count() == 0) {
            continue;
        }
        const std::string& value = s.values.at(flag);
        if (auto error = config.set(flag, value)) {
            const char* env = std::getenv(std::string(info.env).c_str());
            if (env != nullptr && value == env) {
                return *error + " (from " + std::string(info.env) + ")";
            }
            return error;
        }
    }
    if (config.address && config.gateway && !config.address->contains(*config.gateway)) {
        return "--gw: " + config.gateway->to_string() + " is not inside the --addr subnet " +
               config.address->to_string();
    }
    return std::nullopt;
}

// The directory of the running executable (for ustackd and libustack.so
// next to it).
inline std::string self_directory() {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    if (n <= 0) {
        return ".";
    }
    std::string p(path, static_cast<size_t>(n));
    const size_t slash = p.rfind('/');
    return slash == std::string::npos ? "." : p.substr(0, slash);
}

inline std::string daemon_path() {
    if (const char* env = std::getenv("USTACK_DAEMON")) {
        return env;
    }
    return self_directory() + "/ustackd";
}

}  // namespace ustack::tools
