#include "tests/shim/ustack_netns.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ustack::testing::shimenv {
namespace {

std::string bin_dir() {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    std::string p(path, n > 0 ? static_cast<size_t>(n) : 0);
    return p.substr(0, p.rfind('/'));
}

unsigned long netns_inode(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 ? static_cast<unsigned long>(st.st_ino) : 0;
}

std::optional<std::string> run_all(const PrivateNetns& ns, const std::vector<std::vector<std::string>>& commands) {
    for (const auto& argv : commands) {
        const CommandResult r = ns.run(argv);
        if (!r.ok()) {
            std::string line;
            for (const auto& a : argv) {
                line += a + " ";
            }
            return line + "failed: " + r.describe();
        }
    }
    return std::nullopt;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        lines.push_back(line);
    }
    return lines;
}

}  // namespace

std::string bin(const std::string& name) { return bin_dir() + "/" + name; }

// ------------------------------------------------------------ UstackNetns

Expected<std::unique_ptr<UstackNetns>, std::string> UstackNetns::create(const std::string& mode) {
    auto ns = PrivateNetns::enter();
    if (!ns) {
        return make_unexpected(ns.error());
    }
    if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
        return make_unexpected(std::string("/dev/net/tun is not available (modprobe tun)"));
    }
    std::unique_ptr<UstackNetns> env(new UstackNetns(std::move(*ns), mode));
    const std::string kernel_cidr = std::string(kernel_ip) + "/24";
    if (auto error = run_all(*env->netns_, {{"ip", "tuntap", "add", "dev", tap, "mode", "tap"},
                                            {"ip", "addr", "add", kernel_cidr, "dev", tap},
                                            {"ip", "link", "set", tap, "up"}})) {
        return make_unexpected(*error);
    }
    // A daemon exits soon after its last socket and TIME_WAIT entry; the
    // destructor stops it anyway.
    ::setenv("USTACK_IDLE_EXIT", "1000", 1);
    for (const char* name : {"USTACK_ADDR", "USTACK_DEV", "USTACK_MODE", "USTACK_PORT_RANGE", "USTACK_TW_REUSE",
                             "USTACK_TIME_WAIT", "USTACK_TW_REUSE_DELAY"}) {
        ::unsetenv(name);
    }
    return env;
}

UstackNetns::~UstackNetns() {
    for (int i = 0; i < 100; ++i) {
        if (!ctl({"down"}).ok()) {
            break;
        }
        ::usleep(20000);
    }
}

std::vector<std::string> UstackNetns::under_ustack(const std::vector<std::string>& command,
                                                   const PortSettings& settings,
                                                   const std::vector<std::string>& extra_flags) const {
    std::vector<std::string> argv = {bin("ustack-run"), "--dev",        device,
                                     "--addr",          std::string(stack_ip) + "/24",
                                     "--mode",          mode_,
                                     "--port-range",    settings.port_range,
                                     "--tw-reuse",      std::to_string(settings.tw_reuse),
                                     "--time-wait",     "60000",  // Linux's fixed TCP_TIMEWAIT_LEN
                                     "--tw-reuse-delay", "1000"};  // Linux's default tcp_tw_reuse_delay
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
}

CommandResult UstackNetns::ctl(const std::vector<std::string>& args) const {
    std::vector<std::string> argv = {bin("ustackctl"), "--dev", device};
    argv.insert(argv.end(), args.begin(), args.end());
    return netns_->run(argv);
}

bool UstackNetns::wait_stack_port(uint16_t port, int timeout_ms) const {
    const std::string needle = ":" + std::to_string(port) + " ";
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        const CommandResult r = ctl({"ss"});
        if (r.ok() && r.out.find(needle) != std::string::npos) {
            return true;
        }
        ::usleep(20000);
    }
    return false;
}

// ------------------------------------------------------------ NativeNetns

Expected<std::unique_ptr<NativeNetns>, std::string> NativeNetns::create(const PortSettings& settings) {
    if (!have_program("nsenter") || !have_program("unshare")) {
        return make_unexpected(std::string("nsenter/unshare (util-linux) not installed"));
    }
    auto ns = PrivateNetns::enter();
    if (!ns) {
        return make_unexpected(ns.error());
    }
    // The program side: a namespace held open by a sleeping child.
    Subprocess holder = (*ns)->spawn({"unshare", "-n", "sleep", "3600"});
    const unsigned long ours = netns_inode("/proc/thread-self/ns/net");
    const std::string theirs = "/proc/" + std::to_string(holder.pid()) + "/ns/net";
    bool moved = false;
    for (int i = 0; i < 500 && !moved; ++i) {
        const unsigned long inode = netns_inode(theirs);
        moved = inode != 0 && inode != ours;
        if (!moved) {
            if (holder.poll_exit()) {
                break;
            }
            ::usleep(2000);
        }
    }
    if (!moved) {
        holder.pump();
        return make_unexpected("unshare -n never entered a new namespace: " + holder.err());
    }
    const std::string pid = std::to_string(holder.pid());
    std::unique_ptr<NativeNetns> env(new NativeNetns(std::move(*ns), std::move(holder)));
    const auto lo = settings.port_range.substr(0, settings.port_range.find('-'));
    const auto hi = settings.port_range.substr(settings.port_range.find('-') + 1);
    auto inside = [&](std::vector<std::string> argv) {
        argv.insert(argv.begin(), {"nsenter", "-t", pid, "-n", "--"});
        return argv;
    };
    if (auto error = run_all(
            *env->netns_,
            {{"ip", "link", "add", "ve-peer", "type", "veth", "peer", "name", "ve-prog"},
             {"ip", "link", "set", "ve-prog", "netns", pid},
             {"ip", "addr", "add", std::string(kernel_ip) + "/24", "dev", "ve-peer"},
             {"ip", "link", "set", "ve-peer", "up"},
             inside({"ip", "link", "set", "lo", "up"}),
             inside({"ip", "addr", "add", std::string(stack_ip) + "/24", "dev", "ve-prog"}),
             inside({"ip", "link", "set", "ve-prog", "up"}),
             // Per-namespace sysctls: the same values ustack-run gets.
             inside({"sysctl", "-q", "-w", "net.ipv4.ip_local_port_range=" + lo + " " + hi}),
             inside({"sysctl", "-q", "-w", "net.ipv4.tcp_tw_reuse=" + std::to_string(settings.tw_reuse)}),
             inside({"sysctl", "-q", "-e", "-w", "net.ipv4.tcp_tw_reuse_delay=1000"})})) {
        return make_unexpected(*error);
    }
    return env;
}

NativeNetns::~NativeNetns() { holder_.kill(); }

std::vector<std::string> NativeNetns::on_program_side(const std::vector<std::string>& command) const {
    std::vector<std::string> argv = {"nsenter", "-t", std::to_string(holder_.pid()), "-n", "--"};
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
}

// ------------------------------------------------------------ ProgramSide

Expected<std::unique_ptr<ProgramSide>, std::string> ProgramSide::create(const std::string& mode,
                                                                         const PortSettings& settings) {
    std::unique_ptr<ProgramSide> side(new ProgramSide());
    side->settings_ = settings;
    if (mode == "native") {
        auto native = NativeNetns::create(settings);
        if (!native) {
            return make_unexpected(native.error());
        }
        side->native_ = std::move(*native);
    } else {
        auto ustack = UstackNetns::create(mode);
        if (!ustack) {
            return make_unexpected(ustack.error());
        }
        side->ustack_ = std::move(*ustack);
    }
    return side;
}

std::vector<std::string> ProgramSide::run_on_stack(const std::vector<std::string>& command,
                                                   const std::vector<std::string>& extra_flags) const {
    return native_ ? native_->on_program_side(command) : ustack_->under_ustack(command, settings_, extra_flags);
}

bool ProgramSide::wait_listening(uint16_t port, int timeout_ms) const {
    if (ustack_) {
        return ustack_->wait_stack_port(port, timeout_ms);
    }
    const std::string filter = "sport = :" + std::to_string(port);
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        const CommandResult r = native_->netns().run(native_->on_program_side({"ss", "-Htuln", filter}));
        if (r.ok() && !r.out.empty()) {
            return true;
        }
        ::usleep(20000);
    }
    return false;
}

const PrivateNetns& ProgramSide::kernel() const { return native_ ? native_->netns() : ustack_->netns(); }

// ------------------------------------------------------------ helpers

bool wait_kernel_tcp_listen(uint16_t port, int timeout_ms) {
    char hex[8];
    std::snprintf(hex, sizeof hex, ":%04X", port);
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        std::ifstream tcp("/proc/thread-self/net/tcp");
        std::string line;
        std::getline(tcp, line);  // header
        while (std::getline(tcp, line)) {
            std::istringstream fields(line);
            std::string slot;
            std::string local;
            std::string remote;
            std::string state;
            fields >> slot >> local >> remote >> state;
            if (state == "0A" && local.size() > 5 && local.compare(local.size() - 5, 5, hex) == 0) {
                return true;  // 0A: TCP_LISTEN
            }
        }
        ::usleep(10000);
    }
    return false;
}

bool wait_output(Subprocess& p, const std::string& text, int timeout_ms) {
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        p.pump();
        if (p.out().find(text) != std::string::npos) {
            return true;
        }
        if (p.poll_exit()) {
            p.pump();
            return p.out().find(text) != std::string::npos;
        }
        ::usleep(10000);
    }
    return false;
}

std::string line_diff(const std::string& a, const std::string& b) {
    const std::vector<std::string> x = split_lines(a);
    const std::vector<std::string> y = split_lines(b);
    // Longest common subsequence table (transcripts are short).
    std::vector<std::vector<int>> lcs(x.size() + 1, std::vector<int>(y.size() + 1, 0));
    for (size_t i = x.size(); i-- > 0;) {
        for (size_t j = y.size(); j-- > 0;) {
            lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : std::max(lcs[i + 1][j], lcs[i][j + 1]);
        }
    }
    std::string out;
    size_t i = 0;
    size_t j = 0;
    while (i < x.size() || j < y.size()) {
        if (i < x.size() && j < y.size() && x[i] == y[j]) {
            out += "  " + x[i++] + "\n";
            ++j;
        } else if (j < y.size() && (i == x.size() || lcs[i][j + 1] >= lcs[i + 1][j])) {
            out += "+ " + y[j++] + "\n";
        } else {
            out += "- " + x[i++] + "\n";
        }
    }
    return out;
}

}  // namespace ustack::testing::shimenv
