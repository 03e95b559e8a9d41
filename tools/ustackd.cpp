// ustackd: the ustack host for one device as a daemon. Normally started on
// demand (by ustack-run, by the shim of the first program that needs it,
// or by `ustackctl up`), found through the abstract unix socket
// "@ustack-ctl/<device>", exiting after --idle-exit without sockets.
//
// --ready-fd N: write "ok", "running" (another host already serves the
// device) or "error MESSAGE" to fd N once known, then close it.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "stack/host/host.h"
#include "tools/settings_cli.h"

namespace {

ustack::host::Host* g_host = nullptr;

void on_signal(int) {
    if (g_host != nullptr) {
        g_host->stop();  // an eventfd write: async-signal-safe
    }
}

void report(int fd, const std::string& message) {
    if (fd < 0) {
        return;
    }
    const std::string line = message + "\n";
    (void)!::write(fd, line.data(), line.size());
    ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"ustackd: the ustack host daemon for one device (normally started on demand)"};
    ustack::tools::SettingOptions settings;
    ustack::tools::add_setting_options(app, settings);
    int ready_fd = -1;
    bool persistent = false;
    app.add_option("--ready-fd", ready_fd, "write ok/running/error MESSAGE to this fd once serving");
    app.add_flag("--persistent", persistent, "never exit when idle (ustackctl up)");
    CLI11_PARSE(app, argc, argv);

    ustack::host::HostConfig config;
    if (auto error = ustack::tools::apply_setting_options(settings, config)) {
        std::fprintf(stderr, "ustackd: %s\n", error->c_str());
        report(ready_fd, "error " + *error);
        return 2;
    }
    ustack::host::Host::Options options;
    options.persistent = persistent;
    auto host = ustack::host::Host::create(config, options);
    if (!host) {
        if (host.error().first == EADDRINUSE && host.error().second.find("already running") != std::string::npos) {
            report(ready_fd, "running");
            return 0;
        }
        std::fprintf(stderr, "ustackd: %s\n", host.error().second.c_str());
        report(ready_fd, "error " + host.error().second);
        return 1;
    }
    g_host = host->get();
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    report(ready_fd, "ok");
    (*host)->run();
    g_host = nullptr;
    return 0;
}
