#include "tests/support/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "netdev/linux_interface.h"

namespace ustack::testing {
namespace {

constexpr const char* thread_netns = "/proc/thread-self/ns/net";

unsigned long current_netns_inode() {
    struct stat st {};
    if (::stat(thread_netns, &st) < 0) {
        return 0;
    }
    return static_cast<unsigned long>(st.st_ino);
}

}  // namespace

Expected<std::unique_ptr<PrivateNetns>, std::string> PrivateNetns::enter() {
    const int original = ::open(thread_netns, O_RDONLY | O_CLOEXEC);
    if (original < 0) {
        return make_unexpected(std::string("cannot open ") + thread_netns + ": " + std::strerror(errno));
    }
    const unsigned long original_inode = current_netns_inode();
    if (::unshare(CLONE_NEWNET) < 0) {
        const int err = errno;
        ::close(original);
        return make_unexpected(std::string("unshare(CLONE_NEWNET): ") + std::strerror(err) +
                               ": interop tests need root (CAP_SYS_ADMIN to make a private network namespace, "
                               "CAP_NET_ADMIN inside it)");
    }
    const unsigned long inode = current_netns_inode();
    std::unique_ptr<PrivateNetns> ns(new PrivateNetns(original, original_inode, inode));
    if (inode == 0 || inode == original_inode) {
        return make_unexpected(std::string("unshare(CLONE_NEWNET) did not give a new namespace"));
    }
    if (auto up = netdev::bring_interface_up("lo"); !up) {
        return make_unexpected("cannot set lo up in the private namespace: " + up.error().message);
    }
    return ns;
}

PrivateNetns::~PrivateNetns() {
    if (::setns(original_fd_, CLONE_NEWNET) < 0) {
        // The thread stays in the private namespace: harmless for the
        // machine, fatal for the next test, so say so loudly.
        std::fprintf(stderr, "PrivateNetns: setns back failed: %s\n", std::strerror(errno));
    }
    ::close(original_fd_);
}

bool PrivateNetns::inside() const { return inode_ != 0 && current_netns_inode() == inode_; }

CommandResult PrivateNetns::run(const std::vector<std::string>& argv, Duration timeout) const {
    if (!inside()) {
        CommandResult refused;
        refused.err = "refused: not inside the private network namespace";
        return refused;
    }
    return run_command(argv, timeout);
}

Subprocess PrivateNetns::spawn(const std::vector<std::string>& argv, Subprocess::Options options) const {
    if (!inside()) {
        return Subprocess::spawn({"/nonexistent/refused-outside-private-netns"}, options);
    }
    return Subprocess::spawn(argv, options);
}

bool kernel_udp_port_bound(uint16_t port) {
    std::ifstream udp("/proc/thread-self/net/udp");
    char hex[8];
    std::snprintf(hex, sizeof hex, ":%04X", port);
    std::string line;
    std::getline(udp, line);  // header
    while (std::getline(udp, line)) {
        std::istringstream fields(line);
        std::string slot;
        std::string local;
        fields >> slot >> local;  // "0:" "00000000:1B59"
        if (local.size() > 5 && local.compare(local.size() - 5, 5, hex) == 0) {
            return true;
        }
    }
    return false;
}

}  // namespace ustack::testing
