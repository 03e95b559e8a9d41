// ustackctl: talks to the host serving a device.
//
//   ustackctl [--dev tap:NAME] up [settings...]   start a persistent daemon
//   ustackctl down                                stop it
//   ustackctl status | stats
//   ustackctl ss [-t|-u] [state STATE]            sockets (STATE as ss: time-wait, established, listening...)
//   ustackctl sysctl [NAME[=VALUE]]               read or change a tunable
//   ustackctl kill-tw [ADDR:PORT]                 drop TIME_WAIT entries (all, or matching either end)
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <sstream>
#include <vector>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "stack/host/client.h"
#include "tools/settings_cli.h"

namespace {

using ustack::host::Op;

int fail(const std::string& message, int code = 1) {
    std::fprintf(stderr, "ustackctl: %s\n", message.c_str());
    return code;
}

// "TIME-WAIT", "time_wait", "timewait" → "TIMEWAIT"; ss's "listening" is LISTEN,
// "syn-recv" SYN-RECEIVED.
std::string state_key(std::string state) {
    std::string key;
    for (char c : state) {
        if (c != '-' && c != '_') {
            key += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        }
    }
    if (key == "LISTENING") {
        return "LISTEN";
    }
    if (key == "SYNRECV") {
        return "SYNRECEIVED";
    }
    if (key == "UNCONNECTED") {
        return "UNCONN";
    }
    return key;
}

// Keeps the header and the lines that pass the ss-style filters.
std::string filter_sockets(const std::string& text, bool tcp_only, bool udp_only, const std::string& state) {
    std::istringstream in(text);
    std::string line;
    std::string out;
    bool header = true;
    const std::string wanted = state_key(state);
    while (std::getline(in, line)) {
        if (header) {
            out += line + "\n";
            header = false;
            continue;
        }
        std::istringstream fields(line);
        std::string proto;
        std::string st;
        fields >> proto >> st;
        if ((tcp_only && proto != "tcp") || (udp_only && proto != "udp")) {
            continue;
        }
        if (!wanted.empty() && state_key(st) != wanted) {
            continue;
        }
        out += line + "\n";
    }
    return out;
}

// One call to the running host; prints the text of the reply (through
// `filter` when given).
int call(const std::string& device, Op op, const std::string& argument = "",
         std::string (*filter)(const std::string&) = nullptr, uint32_t addr = 0, uint16_t port = 0) {
    const int fd = ustack::host::connect_control(device);
    if (fd < 0) {
        return fail("no ustack host serves " + device + " (" + std::strerror(-fd) + ")", 3);
    }
    ustack::host::Request request;
    request.op = op;
    std::snprintf(request.text, sizeof request.text, "%s", argument.c_str());
    request.addr = addr;
    request.port = port;
    ustack::host::Reply reply;
    std::string text;
    const int err = ustack::host::control_call(fd, request, -1, reply, &text);
    ::close(fd);
    if (err != 0) {
        return fail(std::string("the host does not answer: ") + std::strerror(err));
    }
    if (reply.error != 0) {
        return fail(text.empty() ? std::string(std::strerror(reply.error)) : text);
    }
    if (filter != nullptr) {
        text = filter(text);
    }
    std::fputs(text.c_str(), stdout);
    if (!text.empty() && text.back() != '\n') {
        std::fputc('\n', stdout);
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ustackctl: control the ustack host of a device"};
    app.require_subcommand(1);
    std::string device = "tap:ustack0";
    app.add_option("--dev", device, "device whose host to talk to (tap:NAME|packet:IFNAME)")
        ->envname("USTACK_DEV");

    CLI::App* up = app.add_subcommand("up", "start a persistent host (ustackd) for the device");
    ustack::tools::SettingOptions settings;
    ustack::tools::add_setting_options(*up, settings);
    CLI::App* down = app.add_subcommand("down", "stop the host");
    CLI::App* status = app.add_subcommand("status", "device, address, pid, socket counts");
    CLI::App* ss = app.add_subcommand("ss", "list the host's sockets, TIME_WAIT entries with their remaining time");
    bool ss_tcp = false;
    bool ss_udp = false;
    std::vector<std::string> ss_filter;
    ss->add_flag("-t,--tcp", ss_tcp, "TCP only");
    ss->add_flag("-u,--udp", ss_udp, "UDP only");
    ss->add_option("filter", ss_filter, "state STATE (time-wait, established, listening, close-wait...)");
    CLI::App* stats = app.add_subcommand("stats", "stack counters");
    CLI::App* sysctl = app.add_subcommand("sysctl", "show all tunables, one (NAME) or set one (NAME=VALUE)");
    std::string sysctl_arg;
    sysctl->add_option("setting", sysctl_arg, "NAME or NAME=VALUE (net.ipv4. prefix optional)");
    CLI::App* kill_tw = app.add_subcommand("kill-tw", "drop TIME_WAIT entries, like ss -K");
    std::string kill_match;
    kill_tw->add_option("endpoint", kill_match,
                        "ADDR:PORT matching either end (0.0.0.0 or port 0: any); none: every entry");
    CLI11_PARSE(app, argc, argv);

    if (up->parsed()) {
        ustack::host::HostConfig config;
        config.device = device;
        if (auto error = ustack::tools::apply_setting_options(settings, config)) {
            return fail(*error, 2);
        }
        if (settings.options["dev"]->count() == 0) {
            config.device = device;
        }
        const int fd = ustack::host::connect_control(config.device);
        if (fd >= 0) {
            ::close(fd);
            std::printf("a host already serves %s\n", config.device.c_str());
            return call(config.device, Op::Status);
        }
        if (!config.address) {
            return fail("--addr is required", 2);
        }
        if (auto problem = ustack::host::start_daemon(ustack::tools::daemon_path(), config.to_environment(),
                                                      {"--persistent"})) {
            return fail(*problem);
        }
        return call(config.device, Op::Status);
    }
    if (down->parsed()) {
        return call(device, Op::Down);
    }
    if (status->parsed()) {
        return call(device, Op::Status);
    }
    if (ss->parsed()) {
        static std::string state;
        static bool tcp_only = false;
        static bool udp_only = false;
        tcp_only = ss_tcp;
        udp_only = ss_udp;
        if (!ss_filter.empty()) {
            if (ss_filter.size() != 2 || ss_filter[0] != "state") {
                return fail("ss: filter is 'state STATE' (e.g. ss -t state time-wait)", 2);
            }
            state = ss_filter[1];
        }
        return call(device, Op::Sockets, "", [](const std::string& text) {
            return filter_sockets(text, tcp_only, udp_only, state);
        });
    }
    if (stats->parsed()) {
        return call(device, Op::Stats);
    }
    if (sysctl->parsed()) {
        return call(device, Op::Sysctl, sysctl_arg);
    }
    if (kill_tw->parsed()) {
        uint32_t addr = 0;
        uint16_t port = 0;
        if (!kill_match.empty()) {
            const size_t colon = kill_match.rfind(':');
            const std::string a = colon == std::string::npos ? kill_match : kill_match.substr(0, colon);
            in_addr parsed{};
            if (::inet_pton(AF_INET, a.c_str(), &parsed) != 1) {
                return fail("kill-tw: '" + kill_match + "' is not ADDR:PORT", 2);
            }
            addr = parsed.s_addr;
            if (colon != std::string::npos) {
                char* end = nullptr;
                const unsigned long p = std::strtoul(kill_match.c_str() + colon + 1, &end, 10);
                if (end == kill_match.c_str() + colon + 1 || *end != '\0' || p > 65535) {
                    return fail("kill-tw: bad port in '" + kill_match + "'", 2);
                }
                port = htons(static_cast<uint16_t>(p));
            }
        }
        return call(device, Op::KillTimeWait, "", nullptr, addr, port);
    }
    return 0;
}
