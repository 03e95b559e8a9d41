// The host's per-event work does not grow with idle connections: an
// unmodified python3 under ustack-run (daemon) opens 1 000 connections to
// a kernel server in a private namespace, leaves 999 idle and does 200
// request/response exchanges on one. `ustackctl stats` counts the host's
// passes over changed sockets (host_walks) and the sockets it looked at
// (host_socket_visits): visits per pass must stay a small constant, where
// a loop walking every socket visits ~1 000 per pass. A count, never a time.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/support/netns.h"
#include "tests/support/subprocess.h"

namespace ustack::testing {
namespace {

constexpr const char* kernel_ip = "10.79.3.1";
constexpr const char* stack_ip = "10.79.3.2";
constexpr const char* tap = "ustscale0";
constexpr const char* device = "tap:ustscale0";
constexpr int idle_connections = 1000;
constexpr int exchanges = 200;

std::string bin(const std::string& name) {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    std::string p(path, n > 0 ? static_cast<size_t>(n) : 0);
    return p.substr(0, p.rfind('/')) + "/" + name;
}

// Kernel side: accepts everything, echoes on every connection.
const char* const server_script = R"(
import resource, selectors, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 7300))
l.listen(4096)
sel = selectors.DefaultSelector()
sel.register(l, selectors.EVENT_READ)
print("READY", flush=True)
while True:
    for key, _ in sel.select(timeout=60):
        if key.fileobj is l:
            c, _ = l.accept()
            sel.register(c, selectors.EVENT_READ)
        else:
            data = key.fileobj.recv(4096)
            if data:
                key.fileobj.sendall(data)
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
)";

// ustack side (under ustack-run): N connections, then exchanges on one,
// with the host's counters read before and after.
const char* const client_script = R"(
import resource, socket, subprocess, sys
kernel, n, rounds, ustackctl, dev = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard < n + 100:
    print("SKIP RLIMIT_NOFILE hard limit", hard, flush=True)
    sys.exit(0)
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, hard))  # before the first socket: ustackd inherits it
conns = [socket.create_connection((kernel, 7300), timeout=10) for _ in range(n)]
def stats():
    out = subprocess.run([ustackctl, "--dev", dev, "stats"], capture_output=True, text=True, timeout=10).stdout
    return {k: int(v) for k, v in (l.split() for l in out.splitlines() if len(l.split()) == 2 and l.split()[1].isdigit())}
before = stats()
c = conns[n // 2]
for i in range(rounds):
    c.sendall(b"x")
    if c.recv(1) != b"x":
        print("FAIL echo", i, flush=True)
        sys.exit(1)
after = stats()
print("SOCKETS", after["host_sockets"], "WALKS", after["host_walks"] - before["host_walks"],
      "VISITS", after["host_socket_visits"] - before["host_socket_visits"], flush=True)
)";

class HostScaleTest : public ::testing::Test {
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
                if (!netns_->run({bin("ustackctl"), "--dev", device, "down"}).ok()) {
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

    std::unique_ptr<PrivateNetns> netns_;
};

TEST_F(HostScaleTest, IdleConnectionsAreNotVisitedPerEvent) {
    Subprocess server = netns_->spawn({"python3", "-c", server_script, kernel_ip});
    for (int i = 0; i < 100 && server.out().find("READY") == std::string::npos; ++i) {
        ::usleep(50000);
        server.pump();
    }
    ASSERT_NE(server.out().find("READY"), std::string::npos) << server.err();
    const CommandResult r = netns_->run(
        {bin("ustack-run"), "--dev", device, "--addr", std::string(stack_ip) + "/24", "--mode", "daemon", "--",
         "python3", "-c", client_script, kernel_ip, std::to_string(idle_connections), std::to_string(exchanges),
         bin("ustackctl"), device},
        Duration::from_secs(120));
    ASSERT_TRUE(r.ok()) << r.describe() << "\n" << r.out << r.err;
    if (r.out.rfind("SKIP", 0) == 0) {
        GTEST_SKIP() << r.out;
    }
    long sockets = -1;
    long walks = -1;
    long visits = -1;
    ASSERT_EQ(std::sscanf(r.out.c_str(), "SOCKETS %ld WALKS %ld VISITS %ld", &sockets, &walks, &visits), 3) << r.out;
    EXPECT_GE(sockets, idle_connections) << "the connections must still be open while counted";
    // Each exchange is at least one pass (the request from the app, the
    // echo from the kernel); each pass looks at the one busy socket, not
    // at the 999 idle ones.
    EXPECT_GE(walks, exchanges);
    EXPECT_LE(visits, 4 * walks) << "visits per pass grow with idle connections: " << r.out;
    EXPECT_LT(visits, 10L * exchanges) << r.out;
    std::printf("%d idle connections, %d exchanges: %ld passes, %ld socket visits (%.2f per pass)\n",
                idle_connections, exchanges, walks, visits, walks > 0 ? static_cast<double>(visits) / walks : 0.0);
}

}  // namespace
}  // namespace ustack::testing
