// ustackctl: talks to the host serving a device.
//
//   ustackctl [--dev tap:NAME] up [settings...]   start a persistent daemon
//   ustackctl down                                stop it
//   ustackctl status | ss | stats
//   ustackctl sysctl [NAME[=VALUE]]               read or change a tunable
//   ustackctl kill-tw                             drop TIME_WAIT entries
#include <unistd.h>

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

// One call to the running host; prints the text of the reply.
int call(const std::string& device, Op op, const std::string& argument = "") {
    const int fd = ustack::host::connect_control(device);
    if (fd < 0) {
        return fail("no ustack host serves " + device + " (" + std::strerror(-fd) + ")", 3);
    }
    ustack::host::Request request;
    request.op = op;
    std::snprintf(request.text, sizeof request.text, "%s", argument.c_str());
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
    CLI::App* ss = app.add_subcommand("ss", "list the host's sockets");
    CLI::App* stats = app.add_subcommand("stats", "stack counters");
    CLI::App* sysctl = app.add_subcommand("sysctl", "show all tunables, one (NAME) or set one (NAME=VALUE)");
    std::string sysctl_arg;
    sysctl->add_option("setting", sysctl_arg, "NAME or NAME=VALUE (net.ipv4. prefix optional)");
    CLI::App* kill_tw = app.add_subcommand("kill-tw", "drop every TIME_WAIT entry");
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
        return call(device, Op::Sockets);
    }
    if (stats->parsed()) {
        return call(device, Op::Stats);
    }
    if (sysctl->parsed()) {
        return call(device, Op::Sysctl, sysctl_arg);
    }
    if (kill_tw->parsed()) {
        return call(device, Op::KillTimeWait);
    }
    return 0;
}
