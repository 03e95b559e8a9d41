#include "stack/host/protocol.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace ustack::host {

std::string control_socket_name(std::string_view device) { return "ustack-ctl/" + std::string(device); }

std::string host_end_name(int domain, int type, long host_pid, uint64_t serial, std::string_view device) {
    return std::string(host_end_prefix) + std::to_string(domain) + "/" + std::to_string(type) + "/" +
           std::to_string(host_pid) + "/" + std::to_string(serial) + "/" + std::string(device);
}

std::optional<HostEndInfo> parse_host_end_name(std::string_view name) {
    if (!name.starts_with(host_end_prefix)) {
        return std::nullopt;
    }
    name.remove_prefix(host_end_prefix.size());
    long fields[4] = {};
    for (long& field : fields) {
        const size_t slash = name.find('/');
        if (slash == std::string_view::npos) {
            return std::nullopt;
        }
        auto [end, ec] = std::from_chars(name.data(), name.data() + slash, field);
        if (ec != std::errc() || end != name.data() + slash) {
            return std::nullopt;
        }
        name.remove_prefix(slash + 1);
    }
    HostEndInfo info;
    info.domain = static_cast<int>(fields[0]);
    info.type = static_cast<int>(fields[1]);
    info.device = std::string(name);
    return info;
}

socklen_t make_abstract_address(std::string_view name, sockaddr_un& out) {
    std::memset(&out, 0, sizeof out);
    out.sun_family = AF_UNIX;
    const size_t n = std::min(name.size(), sizeof(out.sun_path) - 1);
    std::memcpy(out.sun_path + 1, name.data(), n);
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

std::optional<std::string_view> abstract_name(const sockaddr_un& address, socklen_t len) {
    const size_t base = offsetof(sockaddr_un, sun_path);
    if (address.sun_family != AF_UNIX || len <= base + 1 || address.sun_path[0] != '\0') {
        return std::nullopt;
    }
    const size_t n = std::min<size_t>(len - base - 1, sizeof(address.sun_path) - 1);
    return std::string_view(address.sun_path + 1, n);
}

ssize_t send_with_fd(int socket, const void* data, size_t len, int fd, int flags) {
    iovec iov{const_cast<void*>(data), len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    if (fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    ssize_t n;
    do {
        n = ::sendmsg(socket, &msg, flags | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t recv_with_fd(int socket, void* data, size_t len, int* fd, int flags) {
    *fd = -1;
    iovec iov{data, len};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)] = {};
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = ::recvmsg(socket, &msg, flags | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        return n;
    }
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg != nullptr; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) {
            continue;
        }
        const size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int received;
            std::memcpy(&received, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
            if (*fd < 0) {
                *fd = received;
            } else {
                ::close(received);
            }
        }
    }
    return n;
}

}  // namespace ustack::host
