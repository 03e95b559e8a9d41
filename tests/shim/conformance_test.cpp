// Conformance: the kernel is the oracle. Each scenario of the conformance
// program (tests/shim/programs/conformance.cpp: socket API only) runs twice
// against the same kind of kernel peer at 10.77.0.1:
//   natively, at 10.77.0.2 in a namespace joined to the peer's by veth
//   (the port range and tcp_tw_reuse set as the namespace's sysctls), and
//   under ustack-run at 10.77.0.2 over a TAP (the same values as flags),
// and the two transcripts — every call with "ok" or its errno's name — must
// be identical. The kernel's transcript must also show the scenario's key
// results, so a scenario that silently stopped exercising its rule fails.
#include <gtest/gtest.h>

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "tests/shim/ustack_netns.h"

namespace ustack::testing {
namespace {

using shimenv::bin;
using shimenv::kernel_ip;
using shimenv::PortSettings;
using shimenv::stack_ip;

struct ConformanceCase {
    std::string name;      // test name
    std::string scenario;  // the program's scenario
    PortSettings settings;
    std::vector<std::string> kernel_shows;  // lines the kernel's transcript must contain
    // Needs a host that outlives a process (fork, SIGKILL): daemon mode
    // only; inproc is for single-process programs (DESIGN.md).
    bool multi_process = false;
};

const std::vector<ConformanceCase>& cases() {
    static const std::vector<ConformanceCase> all = {
        {"BindConflictsTcp",
         "bind-tcp",
         {},
         {"b bind SELF:5000 -> EADDRINUSE", "d bind SELF:5003 -> EADDRINUSE", "f(reuseaddr) bind SELF:5010 -> ok",
          "f listen -> EADDRINUSE", "m listen -> ok", "q(reuseport) bind SELF:5021 -> EADDRINUSE",
          "r bind 10.77.0.99:5030 (not local) -> EADDRNOTAVAIL", "s port in range, odd"}},
        {"BindConflictsUdp",
         "bind-udp",
         {},
         {"b bind SELF:6000 -> EADDRINUSE", "d(reuseaddr) bind SELF:6001 -> ok",
          "f(reuseport) bind SELF:6002 -> EADDRINUSE", "h(reuseport) bind SELF:6003 -> ok"}},
        {"TimeWaitAfterActiveCloseBlocksBind",
         "time-wait-bind",
         {},
         {"b bind SELF:5100 (a in TIME_WAIT) -> EADDRINUSE", "b(reuseaddr) bind SELF:5100 -> EADDRINUSE",
          "d(reuseaddr) bind SELF:5101 -> ok", "h bind SELF:5102 (g closed after the peer) -> ok"}},
        {"ServerRestartNeedsReuseAddrOnTheOldListener",
         "server-restart",
         {},
         {"new(reuseaddr) bind SELF:5200 -> EADDRINUSE", "new(reuseaddr) bind SELF:5201 -> ok",
          "new accept -> ok, peer PEER"}},
        {"LingerZeroResetsWithoutTimeWait",
         "linger-zero",
         {},
         {"b bind SELF:5300 (a reset, no TIME_WAIT) -> ok", "d bind SELF:5301 (c in TIME_WAIT) -> EADDRINUSE"}},
        {"NonblockingConnectSuccessAndRefusal",
         "nonblocking-connect",
         {},
         {"a connect PEER:9001 -> EINPROGRESS", "a SO_ERROR -> 0", "b SO_ERROR -> ECONNREFUSED",
          "c connect PEER:9009 (closed port) -> ECONNREFUSED"}},
        {"EphemeralExhaustionIsEaddrnotavail",
         "ephemeral-exhaustion",
         {.port_range = "40000-40099"},
         {"connect #101 PEER:9001 -> EADDRNOTAVAIL", "100 connections, 100 distinct ports, all in range"}},
        {"TwReuseOffLeavesTheRangeExhausted",
         "tw-reuse",
         {.port_range = "40000-40009", .tw_reuse = 0},
         {"10 of 10 connections closed into TIME_WAIT",
          "connect PEER:9001 (every port in TIME_WAIT to it) -> EADDRNOTAVAIL"}},
        {"TwReuseOnTakesOverATimeWaitPort",
         "tw-reuse",
         {.port_range = "40000-40009", .tw_reuse = 1},
         {"10 of 10 connections closed into TIME_WAIT", "connect PEER:9001 (every port in TIME_WAIT to it) -> ok"}},
        {"BoundSocketReusesTimeWaitWhateverTwReuse",
         "tw-quirk",
         {.tw_reuse = 0},
         {"b connect PEER:9001 (a's 4-tuple, established) -> EADDRNOTAVAIL",
          "c connect PEER:9001 (a's 4-tuple, TIME_WAIT) -> ok", "e(reuseaddr) bind SELF:5401 -> EADDRINUSE"}},
        {"SigkilledServerRestart",
         "sigkill-restart",
         {},
         {"restart(reuseaddr) bind SELF:5500 -> EADDRINUSE", "restart(reuseaddr) bind SELF:5501 -> ok"},
         true},
        {"UnconnectedTcpReadsAndWrites",
         "unconnected-io",
         {},
         {"a send -> EPIPE", "a read (blocking) -> ENOTCONN", "l send -> EPIPE", "l read (blocking) -> ENOTCONN",
          "b send (connected through twin) -> ok"}},
        {"FreshTcpSocketBeforeConnect",
         "fresh-socket",
         {},
         {"a is the lowest free fd -> yes", "a send -> EPIPE", "a recv MSG_DONTWAIT -> ENOTCONN",
          "a getpeername -> ENOTCONN", "b TCP_NODELAY after connect -> 1", "b SO_REUSEADDR after connect -> 1",
          "e recv (the peer sends nothing) -> EAGAIN", "f connect PEER:9001 -> EINPROGRESS",
          "i bind SELF:5700 (h has it) -> EADDRINUSE", "i send -> ok", "i recv (the peer closes on EOF) = 0 -> ok", "k send (connected through k2) -> ok",
          "m connect 127.0.0.1:9 (the kernel's loopback, closed) -> ECONNREFUSED", "j (now n) send -> EPIPE",
          "p epoll_wait -> 1 (its data) POLLOUT"}},
        {"ListenerCloseResetsWhatWasNeverAccepted",
         "listener-close",
         {},
         {"a accept -> ok, peer PEER", "a close -> ok", "peer read -> 0", "q poll -> POLLIN", "q close -> ok",
          "peer read -> ECONNRESET", "m bind SELF:5800 (a in TIME_WAIT) -> EADDRINUSE",
          "m bind SELF:5801 (the reset connection's port) -> ok"}},
    };
    return all;
}

std::vector<std::string> program(const ConformanceCase& c) {
    return {bin("shim_prog_conformance"), c.scenario, kernel_ip, stack_ip, c.settings.port_range};
}

std::vector<std::string> peer_program() { return {bin("shim_prog_conformance"), "peer", kernel_ip, stack_ip}; }

// Starts the kernel-side peer in the current namespace.
Subprocess start_peer(const PrivateNetns& ns, std::string& error) {
    Subprocess peer = ns.spawn(peer_program());
    if (!shimenv::wait_output(peer, "ready", 10000)) {
        peer.pump();
        error = "the kernel-side peer did not start: " + peer.out() + peer.err();
    }
    return peer;
}

// The kernel's transcript of a case, computed once (both modes compare to it).
struct NativeRun {
    CommandResult result;
    std::string skip;  // why there is no native run
};

const NativeRun& native_run(const ConformanceCase& c) {
    static std::map<std::string, NativeRun> runs;
    auto found = runs.find(c.name);
    if (found != runs.end()) {
        return found->second;
    }
    NativeRun run;
    {
        auto env = shimenv::NativeNetns::create(c.settings);
        if (!env) {
            run.skip = env.error();
        } else {
            std::string error;
            Subprocess peer = start_peer((*env)->netns(), error);
            if (!error.empty()) {
                run.result.err = error;
            } else {
                run.result = (*env)->netns().run((*env)->on_program_side(program(c)), Duration::from_secs(90));
            }
        }
    }
    return runs.emplace(c.name, std::move(run)).first->second;
}

struct Param {
    size_t index;
    std::string mode;
};

void PrintTo(const Param& param, std::ostream* os) {
    *os << cases()[param.index].scenario << " (" << param.mode << ")";
}

class ConformanceTest : public ::testing::TestWithParam<Param> {
protected:
    const ConformanceCase& which() const { return cases()[GetParam().index]; }
};

TEST_P(ConformanceTest, TranscriptMatchesTheKernel) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "the ustack side preloads libustack.so into the program: not in a sanitizer build";
#endif
    const ConformanceCase& c = which();
    const NativeRun& native = native_run(c);
    if (!native.skip.empty()) {
        GTEST_SKIP() << "no native run: " << native.skip;
    }
    ASSERT_TRUE(native.result.ok()) << "the native run failed: " << native.result.describe() << "\n"
                                    << native.result.out;
    for (const std::string& line : c.kernel_shows) {
        ASSERT_NE(native.result.out.find(line + "\n"), std::string::npos)
            << "the kernel's transcript lacks \"" << line << "\" — the scenario no longer shows its rule:\n"
            << native.result.out;
    }

    auto env = shimenv::UstackNetns::create(GetParam().mode);
    if (!env) {
        GTEST_SKIP() << "no private namespace with a TAP: " << env.error();
    }
    std::string error;
    Subprocess peer = start_peer((*env)->netns(), error);
    ASSERT_TRUE(error.empty()) << error;
    const CommandResult ours =
        (*env)->netns().run((*env)->under_ustack(program(c), c.settings), Duration::from_secs(90));
    EXPECT_FALSE(ours.timed_out) << "the program under ustack-run hung";
    EXPECT_TRUE(native.result.out == ours.out) << "transcripts differ (- kernel only, + ustack only):\n"
                                               << shimenv::line_diff(native.result.out, ours.out)
                                               << "ustack-run stderr: " << ours.err;
    EXPECT_TRUE(ours.ok()) << ours.describe();
}

std::vector<Param> all_params() {
    std::vector<Param> params;
    for (const char* mode : {"daemon", "inproc"}) {
        for (size_t i = 0; i < cases().size(); ++i) {
            if (cases()[i].multi_process && std::string(mode) == "inproc") {
                continue;
            }
            params.push_back({i, mode});
        }
    }
    return params;
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
    return cases()[info.param.index].name + "_" + info.param.mode;
}

INSTANTIATE_TEST_SUITE_P(Kernel, ConformanceTest, ::testing::ValuesIn(all_params()), param_name);

}  // namespace
}  // namespace ustack::testing
