// ustack-run: runs an unmodified program with its sockets on ustack.
//
//   ustack-run [--dev tap:NAME|packet:IFNAME] [--addr A.B.C.D/LEN] [--gw A.B.C.D]
//              [--mode daemon|inproc] [--time-wait MS] ... -- PROGRAM ARGS...
//
// Validates every setting (a bad one is refused, naming the flag, before
// the program starts), makes sure a host serves the device in daemon mode
// (starting ustackd, or checking the running one has the same address and
// applying explicit tunables to it), then execs PROGRAM with
// LD_PRELOAD=libustack.so and the settings in USTACK_* variables.
#include <arpa/inet.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "stack/host/client.h"
#include "tools/settings_cli.h"

namespace {

int fail(const std::string& message, int code = 2) {
    std::fprintf(stderr, "ustack-run: %s\n", message.c_str());
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    // Everything after the first "--" is the program, untouched.
    int split = argc;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--") == 0) {
            split = i;
            break;
        }
    }
    CLI::App app{"ustack-run: run PROGRAM with its IPv4 sockets on ustack (a user-space TCP/IP stack).\n"
                 "Usage: ustack-run [OPTIONS] -- PROGRAM ARGS...\n"
                 "Every option can also be given through the environment variable shown."};
    ustack::tools::SettingOptions settings;
    ustack::tools::add_setting_options(app, settings);
    try {
        app.parse(split, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    if (split >= argc - 1) {
        return fail("no program given: ustack-run [OPTIONS] -- PROGRAM ARGS...");
    }
    ustack::host::HostConfig config;
    if (auto error = ustack::tools::apply_setting_options(settings, config)) {
        return fail(*error);
    }

    const std::string dir = ustack::tools::self_directory();
    std::string lib = dir + "/../lib/libustack.so";
    if (const char* env = std::getenv("USTACK_LIB")) {
        lib = env;
    }
    char resolved[4096];
    if (::realpath(lib.c_str(), resolved) == nullptr) {
        return fail("cannot find the shim " + lib + ": " + std::strerror(errno) + " (set USTACK_LIB)", 1);
    }
    lib = resolved;
    const std::string daemon = ustack::tools::daemon_path();

    if (config.mode == ustack::host::HostMode::Daemon) {
        // A running host may supply the address; else --addr is required.
        int fd = ustack::host::connect_control(config.device);
        if (fd < 0) {
            if (!config.address) {
                return fail("--addr is required (no host serves " + config.device + " yet)");
            }
            std::string message;
            fd = ustack::host::connect_or_start(config.device, daemon, config.to_environment(), &message);
            if (fd < 0) {
                return fail("cannot start the host for " + config.device + ": " + message, 1);
            }
        }
        ustack::host::Request hello;
        hello.op = ustack::host::Op::Hello;
        ustack::host::Reply reply;
        if (int err = ustack::host::control_call(fd, hello, -1, reply); err != 0 || reply.error != 0) {
            return fail(std::string("the host for ") + config.device + " does not answer: " +
                            std::strerror(err != 0 ? err : reply.error),
                        1);
        }
        const ustack::wire::Ipv4Cidr running{ustack::wire::Ipv4Address(ntohl(reply.addr)), reply.prefix_len};
        if (!config.address) {
            config.address = running;
        } else if (!(*config.address == running)) {
            return fail("--addr " + config.address->to_string() + ": the host for " + config.device +
                        " already runs with " + running.to_string() + " (ustackctl down first)");
        }
        // Tunables given explicitly apply to the running host too.
        for (const auto& [name, value] : config.explicit_tunables) {
            ustack::host::Request set;
            set.op = ustack::host::Op::Sysctl;
            std::snprintf(set.text, sizeof set.text, "%s=%s", name.c_str(), value.c_str());
            std::string text;
            if (int err = ustack::host::control_call(fd, set, -1, reply, &text); err != 0 || reply.error != 0) {
                ::close(fd);
                return fail("sysctl " + name + "=" + value + ": " + (err != 0 ? std::strerror(err) : text));
            }
        }
        ::close(fd);
    } else if (!config.address) {
        return fail("--addr is required");
    }

    for (const auto& [key, value] : config.to_environment()) {
        ::setenv(key.c_str(), value.c_str(), 1);
    }
    ::setenv("USTACK_DAEMON", daemon.c_str(), 1);
    std::string preload = lib;
    if (const char* existing = std::getenv("LD_PRELOAD"); existing != nullptr && *existing != '\0') {
        preload += std::string(" ") + existing;
    }
    ::setenv("LD_PRELOAD", preload.c_str(), 1);
    ::execvp(argv[split + 1], argv + split + 1);
    return fail(std::string(argv[split + 1]) + ": " + std::strerror(errno), errno == ENOENT ? 127 : 126);
}
