#pragma once
// Whether a unix socket (by inode) still exists: the host's way to tell
// "the app closed its end" from "both directions of the pair are shut
// down" — epoll shows the same EPOLLHUP for both once the host itself shut
// its end down (a reset delivered to the app, or a half-close both ways).
// Asked once per connection that ends with the peer's FIN (bench crr), so
// the netlink socket is kept open: three syscalls a question instead of
// five (an fstat first: in inproc mode the program may have closed the fd
// and reused its number).
#include <sys/types.h>

#include <cstdint>
#include <optional>

namespace ustack::host {

class UnixLiveness {
public:
    UnixLiveness() = default;
    ~UnixLiveness();
    UnixLiveness(const UnixLiveness&) = delete;
    UnixLiveness& operator=(const UnixLiveness&) = delete;

    // Asks sock_diag (NETLINK_SOCK_DIAG, unix_diag_get_exact) and falls
    // back to /proc/net/unix. When neither answers, says true (kept open:
    // a leak until the host exits is better than closing a live socket).
    bool exists(ino_t inode);

private:
    std::optional<bool> ask_sock_diag(ino_t inode);
    void close_netlink();

    int netlink_fd_ = -1;
    ino_t netlink_inode_ = 0;  // of the socket behind netlink_fd_ (close_netlink)
    uint32_t sequence_ = 0;  // matches a reply to its question (a late one is skipped)
};

}  // namespace ustack::host
