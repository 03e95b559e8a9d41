#pragma once
// A private network namespace for one interop test. The calling thread
// unshares its network namespace (unshare(CLONE_NEWNET)); everything the
// test then creates — TAP and veth interfaces, addresses, routes, sockets,
// and every child process it runs (ip, ping, socat), which inherit it —
// lives in a namespace that starts empty (only a down `lo`) and has no path
// to any other network. The destructor moves the thread back; the kernel
// destroys the namespace, with its interfaces, once nothing uses it any
// more. Should the test process be killed instead, the namespace dies with
// it (children get SIGKILL on the parent's death).
//
// Why the thread itself and not a forked child running the scenario:
// GoogleTest assertions then work as everywhere else, and the stack runs
// in the test's own address space.
#include <memory>
#include <string>
#include <vector>

#include "stack/core/expected.h"
#include "stack/core/time.h"
#include "tests/support/subprocess.h"

namespace ustack::testing {

class PrivateNetns {
public:
    // Enters a fresh namespace and sets `lo` up. Fails (with the reason, for
    // GTEST_SKIP) without CAP_SYS_ADMIN, e.g. "unshare(CLONE_NEWNET):
    // Operation not permitted: interop tests need root (CAP_SYS_ADMIN and
    // CAP_NET_ADMIN)".
    static Expected<std::unique_ptr<PrivateNetns>, std::string> enter();
    // Returns the thread to the namespace it came from. Must run on the
    // thread that called enter().
    ~PrivateNetns();

    PrivateNetns(const PrivateNetns&) = delete;
    PrivateNetns& operator=(const PrivateNetns&) = delete;

    // True while the calling thread is inside this namespace.
    bool inside() const;
    // Runs a command inside the namespace. Refuses (exit code -1) when the
    // calling thread is not inside, so an `ip` command can never change the
    // machine's own network.
    CommandResult run(const std::vector<std::string>& argv, Duration timeout = Duration::from_secs(20)) const;
    // Spawns a long-running command inside (same guard: a refused spawn has
    // exited with code 127).
    Subprocess spawn(const std::vector<std::string>& argv, Subprocess::Options options = {}) const;

private:
    PrivateNetns(int original_fd, unsigned long original_inode, unsigned long inode)
        : original_fd_(original_fd), original_inode_(original_inode), inode_(inode) {}

    int original_fd_;
    unsigned long original_inode_;
    unsigned long inode_;
};

// Whether a UDP socket in the current namespace is bound to `port`
// (/proc/thread-self/net/udp), for waiting until a kernel-side server listens.
bool kernel_udp_port_bound(uint16_t port);

}  // namespace ustack::testing
