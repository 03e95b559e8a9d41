#include "stack/host/unix_liveness.h"

#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>

namespace ustack::host {

namespace {

std::optional<bool> ask_sock_diag(ino_t inode) {
    const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0) {
        return std::nullopt;
    }
    struct {
        nlmsghdr header;
        unix_diag_req request;
    } message{};
    message.header.nlmsg_len = sizeof message;
    message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    message.header.nlmsg_flags = NLM_F_REQUEST;
    message.request.sdiag_family = AF_UNIX;
    message.request.udiag_states = ~0u;
    message.request.udiag_ino = static_cast<uint32_t>(inode);
    message.request.udiag_cookie[0] = ~0u;  // INET_DIAG_NOCOOKIE: any
    message.request.udiag_cookie[1] = ~0u;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    std::optional<bool> answer;
    if (::sendto(fd, &message, sizeof message, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) ==
        static_cast<ssize_t>(sizeof message)) {
        alignas(nlmsghdr) char buffer[1024];
        timeval timeout{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n >= static_cast<ssize_t>(sizeof(nlmsghdr))) {
            const auto* reply = reinterpret_cast<const nlmsghdr*>(buffer);
            if (reply->nlmsg_type == SOCK_DIAG_BY_FAMILY) {
                answer = true;
            } else if (reply->nlmsg_type == NLMSG_ERROR &&
                       n >= static_cast<ssize_t>(NLMSG_LENGTH(sizeof(nlmsgerr)))) {
                const auto* error = static_cast<const nlmsgerr*>(NLMSG_DATA(reply));
                if (error->error == -ENOENT) {
                    answer = false;
                }
            }
        }
    }
    ::close(fd);
    return answer;
}

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

bool unix_socket_exists(ino_t inode) {
    if (auto a = ask_sock_diag(inode)) {
        return *a;
    }
    if (auto a = ask_proc(inode)) {
        return *a;
    }
    return true;
}

}  // namespace ustack::host
