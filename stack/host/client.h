#pragma once
// The client side of the control RPC (protocol.h), shared by the shim,
// ustack-run and ustackctl: finding a host, starting the daemon, calls.
// Plain syscalls, no exceptions escape (the shim calls this from C ABI
// wrappers); errors are errno values.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "stack/host/protocol.h"

namespace ustack::host {

// Connects to the host serving `device`. Returns the connected fd
// (SOCK_SEQPACKET, CLOEXEC, 10 s send/receive timeouts), or -errno
// (-ECONNREFUSED when no host serves the device).
int connect_control(std::string_view device);

// One call: sends the request (with pass_fd in SCM_RIGHTS when >= 0) and
// waits for the reply. Returns 0, or the errno of the transport (the
// host's answer is reply.error). *received_fd gets a returned fd or -1.
int control_call(int control_fd, const Request& request, int pass_fd, Reply& reply, std::string* text = nullptr,
                 int* received_fd = nullptr);

// Starts `daemon_path` (ustackd) detached from the caller (double fork,
// setsid, no LD_PRELOAD, fds closed), with the caller's environment plus
// `env`, and waits until it serves the device or failed. nullopt on
// success (or when another host won the race); else the daemon's message.
std::optional<std::string> start_daemon(const std::string& daemon_path,
                                        const std::vector<std::pair<std::string, std::string>>& env,
                                        std::vector<std::string> extra_args = {});

// Connects to the host for `device`, starting the daemon when none runs.
// Returns the fd, or -errno with *message set.
int connect_or_start(std::string_view device, const std::string& daemon_path,
                     const std::vector<std::pair<std::string, std::string>>& env, std::string* message);

}  // namespace ustack::host
