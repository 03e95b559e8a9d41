// End-to-end tests of the shim, the host and the tools: unmodified programs
// (socat, python3, our own socket-API program) run under ustack-run in a
// private network namespace whose TAP links ustack (10.77.0.2) to the
// kernel (10.77.0.1); kernel-side programs are the peers. Every test runs
// in daemon and in inproc mode where both make sense.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/netns.h"
#include "tests/support/subprocess.h"

namespace ustack::testing {
namespace {

constexpr const char* kernel_ip = "10.77.0.1";
constexpr const char* stack_ip = "10.77.0.2";
constexpr const char* tap = "ustap0";
constexpr const char* device = "tap:ustap0";

std::string bin_dir() {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    std::string p(path, n > 0 ? static_cast<size_t>(n) : 0);
    return p.substr(0, p.rfind('/'));
}

std::string bin(const std::string& name) { return bin_dir() + "/" + name; }

std::string mode_name(const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param; }

// Runs the stack-side command under ustack-run.
std::vector<std::string> under_ustack(const std::string& mode, std::vector<std::string> command,
                                      std::vector<std::string> extra_flags = {}) {
    std::vector<std::string> argv = {bin("ustack-run"), "--dev", device, "--addr", std::string(stack_ip) + "/24",
                                     "--mode", mode};
    argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
    argv.push_back("--");
    argv.insert(argv.end(), command.begin(), command.end());
    return argv;
}

class ShimTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
        GTEST_SKIP() << "the shim tests preload libustack.so into uninstrumented programs (socat, python3): "
                        "not in a sanitizer build";
#endif
        auto ns = PrivateNetns::enter();
        if (!ns) {
            GTEST_SKIP() << "no private network namespace: " << ns.error();
        }
        netns_ = std::move(*ns);
        if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
            GTEST_SKIP() << "/dev/net/tun is not available (modprobe tun)";
        }
        // A persistent TAP with the kernel's address: the host attaches to it.
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
            // A daemon left running (daemon mode) is stopped; it would keep
            // the namespace alive.
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

    // Waits until a kernel UDP socket is bound to port (a kernel-side server).
    void wait_kernel_port(uint16_t port) {
        for (int i = 0; i < 300 && !kernel_udp_port_bound(port); ++i) {
            ::usleep(10000);
        }
        ASSERT_TRUE(kernel_udp_port_bound(port)) << "kernel server on " << port << " never bound";
    }

    // Waits until the host serving the device lists a socket on `port`.
    bool wait_stack_port(uint16_t port) {
        const std::string needle = ":" + std::to_string(port) + " ";
        for (int i = 0; i < 500; ++i) {
            const CommandResult r = netns_->run({bin("ustackctl"), "--dev", device, "ss"});
            if (r.ok() && r.out.find(needle) != std::string::npos) {
                return true;
            }
            ::usleep(10000);
        }
        return false;
    }

    CommandResult run_program(const std::string& scenario, std::vector<std::string> flags = {},
                              const std::string& arg = "") {
        std::vector<std::string> command = {bin("shim_prog_udp_semantics"), scenario, kernel_ip, stack_ip};
        if (!arg.empty()) {
            command.push_back(arg);
        }
        return netns_->run(under_ustack(GetParam(), command, std::move(flags)), Duration::from_secs(30));
    }

    std::unique_ptr<PrivateNetns> netns_;
};

TEST_P(ShimTest, SocatClientTalksToKernelEchoServer) {
    if (!have_program("socat")) {
        GTEST_SKIP() << "socat not installed";
    }
    Subprocess server = netns_->spawn({"socat", "UDP-RECVFROM:7000,fork", "EXEC:cat"});
    wait_kernel_port(7000);
    Subprocess client = netns_->spawn(under_ustack(GetParam(), {"socat", "-t", "3", "-", std::string("UDP:") + kernel_ip + ":7000"}),
                                      {.pipe_stdin = true});
    std::string expected;
    for (int i = 0; i < 5; ++i) {
        const std::string line = "datagram number " + std::to_string(i) + " from ustack\n";
        ASSERT_TRUE(client.write_stdin(line)) << client.err();
        expected += line;
        for (int t = 0; t < 500; ++t) {
            client.pump();
            if (client.out().size() >= expected.size()) {
                break;
            }
            ::usleep(10000);
        }
        ASSERT_EQ(client.out(), expected) << "echo of datagram " << i << "; socat: " << client.err();
    }
    client.close_stdin();
    const CommandResult r = client.wait(Duration::from_secs(10));
    EXPECT_TRUE(r.ok()) << r.describe();
}

TEST_P(ShimTest, SocatServerEchoesToKernelClient) {
    if (!have_program("socat")) {
        GTEST_SKIP() << "socat not installed";
    }
    Subprocess server = netns_->spawn(under_ustack(GetParam(), {"socat", "UDP-LISTEN:7001,reuseaddr", "EXEC:cat"}));
    ASSERT_TRUE(wait_stack_port(7001)) << "the ustack socat never bound 7001; " << server.err();
    Subprocess client =
        netns_->spawn({"socat", "-t", "3", "-", std::string("UDP:") + stack_ip + ":7001"}, {.pipe_stdin = true});
    std::string expected;
    for (int i = 0; i < 5; ++i) {
        const std::string line = "kernel datagram " + std::to_string(i) + "\n";
        ASSERT_TRUE(client.write_stdin(line));
        expected += line;
        for (int t = 0; t < 500; ++t) {
            client.pump();
            if (client.out().size() >= expected.size()) {
                break;
            }
            ::usleep(10000);
        }
        server.pump();
        ASSERT_EQ(client.out(), expected) << "echo of datagram " << i << "; server: " << server.err()
                                          << "; client: " << client.err();
    }
}

TEST_P(ShimTest, BindConflictIsEaddrinuse) {
    const CommandResult r = run_program("bind-conflict");
    EXPECT_TRUE(r.ok()) << r.out << r.err;
}

TEST_P(ShimTest, ReuseAddrSharesThePort) {
    const CommandResult r = run_program("reuseaddr");
    EXPECT_TRUE(r.ok()) << r.out << r.err;
}

TEST_P(ShimTest, ConnectedUdpGetsEconnrefused) {
    const CommandResult r = run_program("econnrefused");
    EXPECT_TRUE(r.ok()) << r.out << r.err;
}

TEST_P(ShimTest, GetsocknameAfterAutobindHonoursPortRange) {
    CommandResult r = run_program("autobind");
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    // The range is a host setting: an inproc host starts with it, a running
    // daemon takes it from ustack-run's explicit flag.
    r = run_program("autobind", {"--port-range", "40000-40009"}, "40000-40009");
    EXPECT_TRUE(r.ok()) << r.out << r.err;
}

TEST_P(ShimTest, LoopbackStaysWithTheKernel) {
    const CommandResult r = run_program("loopback");
    EXPECT_TRUE(r.ok()) << r.out << r.err;
}

TEST_P(ShimTest, ExecKeepsUstackSockets) {
    const CommandResult r = run_program("exec");
    EXPECT_TRUE(r.ok()) << r.out << r.err;
}

TEST_P(ShimTest, Python3UdpClientAndDualStackSocket) {
    // The system python, not a version-manager wrapper script.
    const std::string python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    if (python == "python3" && !have_program(python)) {
        GTEST_SKIP() << "python3 not installed";
    }
    if (!have_program("socat")) {
        GTEST_SKIP() << "socat not installed";
    }
    Subprocess server = netns_->spawn({"socat", "UDP-RECVFROM:7002,fork", "EXEC:cat"});
    wait_kernel_port(7002);
    const std::string script = R"(
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(b"hello from python", (sys.argv[1], 7002))
data, peer = s.recvfrom(100)
assert data == b"hello from python", data
assert peer == (sys.argv[1], 7002), peer
host, port = s.getsockname()
assert host == "0.0.0.0" and port != 0, (host, port)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s6.settimeout(5)
s6.bind(("::", 0))
s6.sendto(b"dual stack", ("::ffff:" + sys.argv[1], 7002))
data, peer = s6.recvfrom(100)
assert data == b"dual stack", data
assert peer[0] == "::ffff:" + sys.argv[1], peer
try:
    s6.sendto(b"x", ("2001:db8::1", 7002))
    raise SystemExit("native IPv6 must be refused")
except OSError as e:
    assert e.errno == 101, e  # ENETUNREACH
print("python ok")
)";
    const CommandResult r =
        netns_->run(under_ustack(GetParam(), {python, "-c", script, kernel_ip}), Duration::from_secs(30));
    EXPECT_TRUE(r.ok()) << r.describe() << r.out;
    EXPECT_NE(r.out.find("python ok"), std::string::npos) << r.out << r.err;
}

INSTANTIATE_TEST_SUITE_P(Modes, ShimTest, ::testing::Values("daemon", "inproc"),
                         mode_name);

// ------------------------------------------------------------ launcher flags (no namespace needed)

struct BadFlag {
    std::vector<std::string> flags;
    std::string named;
};

TEST(UstackRunFlags, BadValuesAreRefusedBeforeTheProgramStarts) {
    const std::vector<BadFlag> cases = {
        {{"--tw-reuse", "3"}, "--tw-reuse"},
        {{"--port-range", "5-1"}, "--port-range"},
        {{"--addr", "300.1.1.1/24"}, "--addr"},
        {{"--time-wait", "-5"}, "--time-wait"},
        {{"--mode", "sideways"}, "--mode"},
        {{"--dev", "eth0"}, "--dev"},
        {{"--busy-poll", "-1"}, "--busy-poll"},
        {{"--busy-poll", "2000000"}, "--busy-poll"},
    };
    for (const BadFlag& c : cases) {
        std::vector<std::string> argv = {bin("ustack-run"), "--addr", "10.77.0.2/24"};
        argv.insert(argv.end(), c.flags.begin(), c.flags.end());
        argv.insert(argv.end(), {"--", "sh", "-c", "echo PROGRAM-RAN"});
        const CommandResult r = run_command(argv);
        EXPECT_NE(r.exit_code, 0) << c.named << ": " << r.describe();
        EXPECT_NE(r.err.find(c.named), std::string::npos) << "message must name " << c.named << ": " << r.err;
        EXPECT_EQ(r.out.find("PROGRAM-RAN"), std::string::npos) << c.named << ": the program ran";
    }
    // The environment is checked the same way.
    ::setenv("USTACK_TW_REUSE", "9", 1);
    const CommandResult r = run_command({bin("ustack-run"), "--addr", "10.77.0.2/24", "--", "true"});
    ::unsetenv("USTACK_TW_REUSE");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("--tw-reuse"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("USTACK_TW_REUSE"), std::string::npos) << r.err;
}

TEST(UstackRunFlags, HelpNamesTheEnvironmentVariables) {
    const CommandResult r = run_command({bin("ustack-run"), "--help"});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    for (const char* name : {"USTACK_DEV", "USTACK_ADDR", "USTACK_TIME_WAIT", "USTACK_TW_REUSE", "USTACK_PORT_RANGE"}) {
        EXPECT_NE(r.out.find(name), std::string::npos) << name;
    }
}

// ------------------------------------------------------------ ustackctl on a running daemon

class UstackctlTest : public ShimTest {};

TEST_P(UstackctlTest, SysctlStatsStatusAndSs) {
    auto ctl = [&](std::vector<std::string> args) {
        std::vector<std::string> argv = {bin("ustackctl"), "--dev", device};
        argv.insert(argv.end(), args.begin(), args.end());
        return netns_->run(argv);
    };
    CommandResult r = ctl({"status"});
    EXPECT_NE(r.exit_code, 0) << "no host yet: " << r.describe();
    r = ctl({"up", "--addr", std::string(stack_ip) + "/24", "--time-wait", "5000"});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_NE(r.out.find("address 10.77.0.2/24"), std::string::npos) << r.out;

    r = ctl({"sysctl", "time_wait"});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.out, "time_wait = 5000\n");
    r = ctl({"sysctl", "net.ipv4.tcp_tw_reuse"});
    EXPECT_EQ(r.out, "net.ipv4.tcp_tw_reuse = 2\n") << r.describe();
    r = ctl({"sysctl", "net.ipv4.tcp_tw_reuse=1"});
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_EQ(r.out, "net.ipv4.tcp_tw_reuse = 1\n");
    r = ctl({"sysctl", "tcp_tw_reuse"});
    EXPECT_EQ(r.out, "net.ipv4.tcp_tw_reuse = 1\n");
    r = ctl({"sysctl", "tcp_tw_reuse=7"});
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("tcp_tw_reuse"), std::string::npos) << r.err;
    r = ctl({"sysctl", "ip_local_port_range=40000 40009"});
    EXPECT_TRUE(r.ok()) << r.describe();
    r = ctl({"sysctl"});
    EXPECT_NE(r.out.find("net.ipv4.ip_local_port_range = 40000\t40009"), std::string::npos) << r.out;

    // A program on the running daemon uses the new range.
    const CommandResult p = netns_->run(
        {bin("ustack-run"), "--dev", device, "--", bin("shim_prog_udp_semantics"), "autobind", kernel_ip, stack_ip,
         "40000-40009"},
        Duration::from_secs(30));
    EXPECT_TRUE(p.ok()) << p.out << p.err;

    r = ctl({"stats"});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_NE(r.out.find("udp_datagrams_out "), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("udp_datagrams_out 0\n"), std::string::npos) << "the program's datagrams count: " << r.out;
    r = ctl({"ss"});
    EXPECT_TRUE(r.ok()) << r.describe();
    r = ctl({"kill-tw"});
    EXPECT_TRUE(r.ok()) << r.describe();
    r = ctl({"down"});
    EXPECT_TRUE(r.ok()) << r.describe();
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
        gone = !ctl({"status"}).ok();
        ::usleep(10000);
    }
    EXPECT_TRUE(gone) << "the daemon is still there after down";
}

INSTANTIATE_TEST_SUITE_P(Daemon, UstackctlTest, ::testing::Values("daemon"),
                         mode_name);

// ------------------------------------------------------------ no host

class NoHostTest : public ShimTest {};

TEST_P(NoHostTest, UnreachableHostGivesAClearErrnoOnce) {
    // Preloaded by hand (ustack-run would start the daemon), with no
    // daemon to start.
    ::setenv("USTACK_DAEMON", "/nonexistent/ustackd", 1);
    ::setenv("USTACK_DEV", device, 1);
    ::setenv("USTACK_ADDR", "10.77.0.2/24", 1);
    ::setenv("LD_PRELOAD", (bin_dir() + "/../lib/libustack.so").c_str(), 1);
    const CommandResult r =
        netns_->run({bin("shim_prog_udp_semantics"), "unreachable", kernel_ip, stack_ip}, Duration::from_secs(20));
    ::unsetenv("LD_PRELOAD");
    ::unsetenv("USTACK_DAEMON");
    ::unsetenv("USTACK_DEV");
    ::unsetenv("USTACK_ADDR");
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    EXPECT_FALSE(r.timed_out);
    const size_t first = r.err.find("ustack: cannot reach the ustack host");
    EXPECT_NE(first, std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("ustack: cannot reach", first + 1), std::string::npos) << "said more than once: " << r.err;
}

INSTANTIATE_TEST_SUITE_P(Daemon, NoHostTest, ::testing::Values("daemon"),
                         mode_name);

}  // namespace
}  // namespace ustack::testing
