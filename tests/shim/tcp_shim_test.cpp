// TCP through the shim and the host, with the Linux kernel as the peer: the
// socket-API program tests/shim/programs/tcp_semantics.cpp runs under
// ustack-run in a private network namespace whose TAP links ustack
// (10.79.0.2) to the kernel (10.79.0.1); its kernel-side peer is the same
// program without the shim. Scenarios that only make sense with a daemon
// (fork, exec, daemonizing, SIGKILL: the host must outlive the process)
// run in daemon mode only; the rest in daemon and inproc modes.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/netns.h"
#include "tests/support/subprocess.h"

namespace ustack::testing {
namespace {

constexpr const char* kernel_ip = "10.79.0.1";
constexpr const char* stack_ip = "10.79.0.2";
constexpr const char* tap = "ustcp0";
constexpr const char* device = "tap:ustcp0";
constexpr const char* port = "7100";

std::string bin(const std::string& name) {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    std::string p(path, n > 0 ? static_cast<size_t>(n) : 0);
    return p.substr(0, p.rfind('/')) + "/" + name;
}

struct Case {
    std::string scenario;
    std::string mode;
    bool busy_poll = false;  // the host spins (--busy-poll) instead of sleeping between events
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    std::string name = info.param.scenario + "_" + info.param.mode + (info.param.busy_poll ? "_busy_poll" : "");
    for (char& c : name) {
        if (c == '-') {
            c = '_';
        }
    }
    return name;
}

class TcpShimTest : public ::testing::TestWithParam<Case> {
protected:
    void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
        GTEST_SKIP() << "preloads libustack.so into a program run under ustack-run: not in a sanitizer build";
#endif
        auto ns = PrivateNetns::enter();
        if (!ns) {
            GTEST_SKIP() << "no private network namespace: " << ns.error();
        }
        netns_ = std::move(*ns);
        if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
            GTEST_SKIP() << "/dev/net/tun is not available (modprobe tun)";
        }
        must_run({"ip", "tuntap", "add", "dev", tap, "mode", "tap"});
        must_run({"ip", "addr", "add", std::string(kernel_ip) + "/24", "dev", tap});
        must_run({"ip", "link", "set", tap, "up"});
        ::setenv("USTACK_IDLE_EXIT", "1000", 1);
        ::unsetenv("USTACK_ADDR");
        ::unsetenv("USTACK_DEV");
        ::unsetenv("USTACK_MODE");
    }

    void TearDown() override {
        if (netns_) {
            for (int i = 0; i < 100; ++i) {
                const CommandResult r = netns_->run({bin("ustackctl"), "--dev", device, "down"});
                if (!r.ok()) {
                    break;
                }
                ::usleep(20000);
            }
        }
        netns_.reset();
    }

    void must_run(const std::vector<std::string>& argv) {
        const CommandResult r = netns_->run(argv);
        ASSERT_TRUE(r.ok()) << argv[0] << ": " << r.describe();
    }

    std::vector<std::string> program(const std::string& scenario) const {
        std::vector<std::string> argv = {bin("ustack-run"), "--dev", device, "--addr", std::string(stack_ip) + "/24",
                                         "--mode", GetParam().mode};
        if (GetParam().busy_poll) {
            argv.insert(argv.end(), {"--busy-poll", "50"});
        }
        argv.insert(argv.end(), {"--", bin("shim_prog_tcp_semantics"), scenario, kernel_ip, stack_ip, port});
        return argv;
    }

    std::unique_ptr<PrivateNetns> netns_;
};

TEST_P(TcpShimTest, Scenario) {
    const std::string& scenario = GetParam().scenario;
    if (scenario == "exit-without-close" || scenario == "exit-in-handler" || scenario == "atexit-send") {
        // The kernel peer outlives the program: the test runs it.
        Subprocess peer = netns_->spawn(
            {bin("shim_prog_tcp_semantics"), "peer:count-to-fin", kernel_ip, stack_ip, port, "300000"});
        const CommandResult r = netns_->run(program(scenario), Duration::from_secs(45));
        ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.out << r.err;
        const CommandResult p = peer.wait(Duration::from_secs(20));
        EXPECT_TRUE(p.ok()) << "kernel peer: " << p.describe() << p.out << p.err;
        return;
    }
    const CommandResult r = netns_->run(program(scenario), Duration::from_secs(45));
    ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.out << r.err;
    EXPECT_NE(r.out.find("PASS " + scenario), std::string::npos) << r.out << r.err;
    if (scenario == "daemonize") {
        // The parent is gone; its daemon child serves one connection.
        const CommandResult c = netns_->run(
            {bin("shim_prog_tcp_semantics"), "peer:clients", kernel_ip, stack_ip, port, "1"}, Duration::from_secs(20));
        EXPECT_TRUE(c.ok()) << c.describe() << c.out << c.err;
    }
}

std::vector<Case> cases() {
    const std::vector<std::string> both = {"client-echo",  "server-accept", "nonblock-refused", "nonblock-connect",
                                           "peer-reset",   "shutdown-epipe", "options",         "epoll-mixed",
                                           "linger-zero",  "close-unread",  "dual-stack",     "exit-without-close",
                                           "flags-before-swap", "fork-then-connect", "lazy-host-return", "blocking-waits", "write-order", "read-order", "exit-in-handler", "handler-io", "atexit-send",
                                           "handler-installed-late", "epoll-before-connect", "accept-burst"};
    const std::vector<std::string> daemon_only = {"fork-accept", "daemonize", "sigkill", "exec-keeps"};
    const std::vector<std::string> inproc_only = {};
    std::vector<Case> out;
    for (const auto& s : both) {
        out.push_back({s, "daemon"});
        out.push_back({s, "inproc"});
    }
    for (const auto& s : daemon_only) {
        out.push_back({s, "daemon"});
    }
    for (const auto& s : inproc_only) {
        out.push_back({s, "inproc"});
    }
    // A spinning host loop takes the same events in a different rhythm
    // (epoll without sleeping, the device read only when readable).
    for (const auto& s : {"client-echo", "server-accept", "nonblock-connect", "epoll-mixed", "peer-reset"}) {
        out.push_back({s, "inproc", true});
    }
    return out;
}

INSTANTIATE_TEST_SUITE_P(Tcp, TcpShimTest, ::testing::ValuesIn(cases()), case_name);

// ------------------------------------------------------------ ustackctl with TCP state

class UstackctlTcpTest : public TcpShimTest {};

// TIME_WAIT shows in `ss -t state time-wait` with its remaining time,
// `kill-tw ADDR:PORT` removes it, and the daemon stays while it exists.
TEST_P(UstackctlTcpTest, SsShowsTimeWaitAndKillTwRemovesIt) {
    const CommandResult r = netns_->run(program("client-echo"), Duration::from_secs(45));
    ASSERT_TRUE(r.ok()) << r.describe() << r.out << r.err;
    ::usleep(1500000);  // past USTACK_IDLE_EXIT: only the TIME_WAIT keeps the daemon
    CommandResult ss = netns_->run({bin("ustackctl"), "--dev", device, "ss", "-t", "state", "time-wait"});
    ASSERT_TRUE(ss.ok()) << ss.describe();
    EXPECT_NE(ss.out.find("TIME-WAIT"), std::string::npos) << ss.out;
    EXPECT_NE(ss.out.find(std::string(kernel_ip) + ":" + port), std::string::npos) << ss.out;
    EXPECT_NE(ss.out.find("remaining_ms="), std::string::npos) << ss.out;
    const CommandResult est = netns_->run({bin("ustackctl"), "--dev", device, "ss", "state", "established"});
    EXPECT_EQ(est.out.find("TIME-WAIT"), std::string::npos) << est.out;
    const CommandResult status = netns_->run({bin("ustackctl"), "--dev", device, "status"});
    EXPECT_NE(status.out.find("time_wait 1"), std::string::npos) << status.out;
    EXPECT_NE(status.out.find("uptime_ms"), std::string::npos) << status.out;
    const CommandResult kill =
        netns_->run({bin("ustackctl"), "--dev", device, "kill-tw", std::string(kernel_ip) + ":" + port});
    ASSERT_TRUE(kill.ok()) << kill.describe();
    EXPECT_NE(kill.out.find("1 TIME_WAIT entries removed"), std::string::npos) << kill.out;
    ss = netns_->run({bin("ustackctl"), "--dev", device, "ss", "-t", "state", "time-wait"});
    EXPECT_EQ(ss.out.find("TIME-WAIT"), std::string::npos) << ss.out;
    const CommandResult bad = netns_->run({bin("ustackctl"), "--dev", device, "kill-tw", "nonsense"});
    EXPECT_FALSE(bad.ok());
    // Idle now: the daemon exits by itself.
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
        gone = !netns_->run({bin("ustackctl"), "--dev", device, "status"}).ok();
        ::usleep(50000);
    }
    EXPECT_TRUE(gone) << "the daemon did not exit once idle";
}

INSTANTIATE_TEST_SUITE_P(Daemon, UstackctlTcpTest, ::testing::Values(Case{"ustackctl", "daemon"}), case_name);

}  // namespace
}  // namespace ustack::testing
