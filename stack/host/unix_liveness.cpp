#include "stack/host/unix_liveness.h"

#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>

namespace ustack::host {

namespace {

std::optional<bool> ask_proc(ino_t inode) {
    FILE* f = std::fopen("/proc/net/unix", "re");
    if (f == nullptr) {
        return std::nullopt;
    }
    char line[512];
    bool found = false;
    (void)!std::fgets(line, sizeof line, f);  // header
    while (!found && std::fgets(line, sizeof line, f) != nullptr) {
        // Num RefCount Protocol Flags Type St Inode Path
        unsigned long long ino = 0;
        if (std::sscanf(line, "%*s %*s %*s %*s %*s %*s %llu", &ino) == 1 && ino == inode) {
            found = true;
        }
    }
    std::fclose(f);
    return found;
}

}  // namespace

UnixLiveness::~UnixLiveness() { close_netlink(); }

void UnixLiveness::close_netlink() {
    // In inproc mode the program may have closed this fd number and
    // reused it (a daemon closing every fd it did not open): close only
    // the socket this object made, never what now has its number.
    struct stat st {};
    if (netlink_fd_ >= 0 && ::fstat(netlink_fd_, &st) == 0 && st.st_ino == netlink_inode_) {
        ::close(netlink_fd_);
    }
    netlink_fd_ = -1;
}

std::optional<bool> UnixLiveness::ask_sock_diag(ino_t inode) {
    struct stat own {};
    if (netlink_fd_ >= 0 && (::fstat(netlink_fd_, &own) != 0 || own.st_ino != netlink_inode_)) {
        netlink_fd_ = -1;  // no longer ours (inproc: the program closed it): not closed by us
    }
    if (netlink_fd_ < 0) {
        netlink_fd_ = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (netlink_fd_ < 0) {
            return std::nullopt;
        }
        struct stat st {};
        netlink_inode_ = ::fstat(netlink_fd_, &st) == 0 ? st.st_ino : 0;
        timeval timeout{1, 0};
        ::setsockopt(netlink_fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    }
    struct {
        nlmsghdr header;
        unix_diag_req request;
    } message{};
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;
    message.header.nlmsg_seq = ++sequence_;
    message.request.sdiag_family = AF_UNIX;
    message.request.udiag_states = ~0u;
    message.request.udiag_ino = static_cast<uint32_t>(inode);
    message.request.udiag_cookie[0] = ~0u;  // INET_DIAG_NOCOOKIE: any
    message.request.udiag_cookie[1] = ~0u;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(netlink_fd_, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) !=
        static_cast<ssize_t>(sizeof message)) {
        close_netlink();  // a fresh socket next time
        return std::nullopt;
    }
    for (;;) {
        alignas(nlmsghdr) char buffer[1024];
        const ssize_t n = ::recv(netlink_fd_, buffer, sizeof buffer, 0);
        if (n < static_cast<ssize_t>(sizeof(nlmsghdr))) {
            // Timed out or failed: the socket may still get the answer
            // later; a new one cannot confuse it with the next question.
            close_netlink();
            return std::nullopt;
        }
        const auto* reply = reinterpret_cast<const nlmsghdr*>(buffer);
        if (reply->nlmsg_seq != sequence_) {
            continue;  // the late answer to an earlier question
        }
        if (reply->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
            return true;
        }
        if (reply->nlmsg_type == NLMSG_ERROR && n >= static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr)))) {
            const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(reply));
            if (error->error == -ENOENT) {
                return false;
            }
        }
        return std::nullopt;
    }
}

bool UnixLiveness::exists(ino_t inode) {
    if (auto a = ask_sock_diag(inode)) {
        return *a;
    }
    if (auto a = ask_proc(inode)) {
        return *a;
    }
    return true;
}

}  // namespace ustack::host
