#pragma once
// Whether a unix socket (by inode) still exists: the host's way to tell
// "the app closed its end" from "both directions of the pair are shut
// down" — epoll shows the same EPOLLHUP for both once the host itself shut
// its end down (a reset delivered to the app, or a half-close both ways).
#include <sys/types.h>

namespace ustack::host {

// Asks sock_diag (NETLINK_SOCK_DIAG, unix_diag_get_exact) and falls back
// to /proc/net/unix. When neither answers, says true (kept open: a leak
// until the host exits is better than closing a live socket).
bool unix_socket_exists(ino_t inode);

}  // namespace ustack::host
