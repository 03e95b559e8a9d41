#pragma once
// The two topologies of the conformance and real-program tests, each in a
// private network namespace that the test thread enters:
//
//   UstackNetns  the kernel (10.77.0.1) on a TAP whose other end is ustack
//                (10.77.0.2): programs run under ustack-run, kernel-side
//                peers run directly in the namespace.
//   NativeNetns  the kernel (10.77.0.1) on one end of a veth whose other end
//                is in a second, nested namespace (10.77.0.2) where programs
//                run natively: the same addresses, the same kind of peer,
//                with the kernel's own TCP on both ends.
//
// So a program sees the same addresses in both, and the only difference is
// whose TCP/IP serves the 10.77.0.2 side. Both clean up in the destructor
// (the nested namespace lives as long as a child process holding it), and
// if the test dies its children die with it.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "stack/core/expected.h"
#include "tests/support/netns.h"
#include "tests/support/subprocess.h"

namespace ustack::testing::shimenv {

inline constexpr const char* kernel_ip = "10.77.0.1";
inline constexpr const char* stack_ip = "10.77.0.2";

// A file next to the running test binary (build/bin/NAME).
std::string bin(const std::string& name);

// The settings both sides get, with the same meaning: ustack-run flags on
// one side, the namespace's sysctls on the other.
struct PortSettings {
    std::string port_range = "32768-60999";
    int tw_reuse = 2;  // Linux's default; 10.77.0.0/24 is not loopback, so it acts as 0
};

class UstackNetns {
public:
    static constexpr const char* tap = "ustap0";
    static constexpr const char* device = "tap:ustap0";

    // Enters a fresh namespace with the TAP up; the error is a skip reason.
    static Expected<std::unique_ptr<UstackNetns>, std::string> create(const std::string& mode);
    // Stops a daemon left running (it would keep the namespace alive), then
    // leaves the namespace.
    ~UstackNetns();

    // argv running `command` under ustack-run in this namespace's mode.
    std::vector<std::string> under_ustack(const std::vector<std::string>& command, const PortSettings& settings,
                                          const std::vector<std::string>& extra_flags = {}) const;
    std::vector<std::string> under_ustack(const std::vector<std::string>& command) const {
        return under_ustack(command, PortSettings{});
    }
    // `ustackctl --dev tap:ustap0 ARGS…`
    CommandResult ctl(const std::vector<std::string>& args) const;
    // Waits (up to timeout_ms) until `ustackctl ss` lists a socket on port.
    bool wait_stack_port(uint16_t port, int timeout_ms = 10000) const;

    const PrivateNetns& netns() const { return *netns_; }
    const std::string& mode() const { return mode_; }

private:
    UstackNetns(std::unique_ptr<PrivateNetns> netns, std::string mode)
        : netns_(std::move(netns)), mode_(std::move(mode)) {}

    std::unique_ptr<PrivateNetns> netns_;
    std::string mode_;
};

class NativeNetns {
public:
    static Expected<std::unique_ptr<NativeNetns>, std::string> create(const PortSettings& settings);
    ~NativeNetns();

    // argv running `command` natively on the 10.77.0.2 side.
    std::vector<std::string> on_program_side(const std::vector<std::string>& command) const;

    const PrivateNetns& netns() const { return *netns_; }

private:
    NativeNetns(std::unique_ptr<PrivateNetns> netns, Subprocess holder)
        : netns_(std::move(netns)), holder_(std::move(holder)) {}

    std::unique_ptr<PrivateNetns> netns_;
    Subprocess holder_;  // `unshare -n sleep`: keeps the program side's namespace alive
};

// One of the two topologies chosen by name, for tests whose "stack side"
// runs either under ustack-run ("daemon", "inproc") or natively ("native":
// the same test against the kernel on both ends, which checks the test
// itself). Kernel-side programs run through kernel().
class ProgramSide {
public:
    static Expected<std::unique_ptr<ProgramSide>, std::string> create(const std::string& mode,
                                                                       const PortSettings& settings = {});

    // argv running `command` on the 10.77.0.2 side.
    std::vector<std::string> run_on_stack(const std::vector<std::string>& command,
                                          const std::vector<std::string>& extra_flags = {}) const;
    // Waits until something on the 10.77.0.2 side listens on TCP `port`
    // (or is bound to UDP `port`).
    bool wait_listening(uint16_t port, int timeout_ms = 10000) const;
    const PrivateNetns& kernel() const;
    bool native() const { return native_ != nullptr; }
    const UstackNetns* ustack() const { return ustack_.get(); }

private:
    ProgramSide() = default;

    PortSettings settings_;
    std::unique_ptr<UstackNetns> ustack_;
    std::unique_ptr<NativeNetns> native_;
};

// Waits until a kernel TCP socket in the current namespace listens on port.
bool wait_kernel_tcp_listen(uint16_t port, int timeout_ms = 10000);

// Pumps p until its stdout contains `text` or timeout_ms pass.
bool wait_output(Subprocess& p, const std::string& text, int timeout_ms = 10000);

// A readable line diff of two transcripts ("  same", "- only in a",
// "+ only in b"), for assertion messages.
std::string line_diff(const std::string& a, const std::string& b);

}  // namespace ustack::testing::shimenv
