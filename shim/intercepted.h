#pragma once
// The one table of calls libustack.so intercepts (OpenOnload's pattern).
// It is expanded three times: the pointers to the real functions, their
// resolution with dlsym(RTLD_NEXT) (once, before the first use), and the
// exported wrappers in shim.cpp. shim/libustack.map exports exactly these
// names. Variadic calls (fcntl, fcntl64, ioctl) have their own list: their
// wrappers are written out by hand.
//
// X(return type, name, (parameters), (arguments))
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

#define USTACK_INTERCEPTED(X)                                                                                   \
    X(int, socket, (int domain, int type, int protocol), (domain, type, protocol))                              \
    X(int, bind, (int fd, const struct sockaddr* addr, socklen_t len), (fd, addr, len))                         \
    X(int, listen, (int fd, int backlog), (fd, backlog))                                                        \
    X(int, accept, (int fd, struct sockaddr* addr, socklen_t* len), (fd, addr, len))                            \
    X(int, accept4, (int fd, struct sockaddr* addr, socklen_t* len, int flags), (fd, addr, len, flags))         \
    X(int, connect, (int fd, const struct sockaddr* addr, socklen_t len), (fd, addr, len))                      \
    X(int, getsockname, (int fd, struct sockaddr* addr, socklen_t* len), (fd, addr, len))                       \
    X(int, getpeername, (int fd, struct sockaddr* addr, socklen_t* len), (fd, addr, len))                       \
    X(int, setsockopt, (int fd, int level, int name, const void* value, socklen_t len),                         \
      (fd, level, name, value, len))                                                                            \
    X(int, getsockopt, (int fd, int level, int name, void* value, socklen_t* len), (fd, level, name, value, len)) \
    X(int, shutdown, (int fd, int how), (fd, how))                                                              \
    X(int, close, (int fd), (fd))                                                                               \
    X(int, close_range, (unsigned int first, unsigned int last, int flags), (first, last, flags))               \
    X(void, closefrom, (int lowfd), (lowfd))                                                                    \
    X(int, dup, (int fd), (fd))                                                                                 \
    X(int, dup2, (int oldfd, int newfd), (oldfd, newfd))                                                        \
    X(int, dup3, (int oldfd, int newfd, int flags), (oldfd, newfd, flags))                                      \
    X(ssize_t, send, (int fd, const void* buf, size_t len, int flags), (fd, buf, len, flags))                   \
    X(ssize_t, sendto, (int fd, const void* buf, size_t len, int flags, const struct sockaddr* addr, socklen_t alen), \
      (fd, buf, len, flags, addr, alen))                                                                        \
    X(ssize_t, sendmsg, (int fd, const struct msghdr* msg, int flags), (fd, msg, flags))                        \
    X(int, sendmmsg, (int fd, struct mmsghdr* vec, unsigned int vlen, int flags), (fd, vec, vlen, flags))       \
    X(ssize_t, recv, (int fd, void* buf, size_t len, int flags), (fd, buf, len, flags))                         \
    X(ssize_t, recvfrom, (int fd, void* buf, size_t len, int flags, struct sockaddr* addr, socklen_t* alen),    \
      (fd, buf, len, flags, addr, alen))                                                                        \
    X(ssize_t, recvmsg, (int fd, struct msghdr* msg, int flags), (fd, msg, flags))                              \
    X(int, recvmmsg, (int fd, struct mmsghdr* vec, unsigned int vlen, int flags, struct timespec* timeout),     \
      (fd, vec, vlen, flags, timeout))                                                                          \
    X(ssize_t, read, (int fd, void* buf, size_t count), (fd, buf, count))                                       \
    X(ssize_t, readv, (int fd, const struct iovec* iov, int iovcnt), (fd, iov, iovcnt))                         \
    X(ssize_t, write, (int fd, const void* buf, size_t count), (fd, buf, count))                                \
    X(ssize_t, writev, (int fd, const struct iovec* iov, int iovcnt), (fd, iov, iovcnt))                        \
    X(ssize_t, __read_chk, (int fd, void* buf, size_t count, size_t buflen), (fd, buf, count, buflen))          \
    X(ssize_t, __recv_chk, (int fd, void* buf, size_t len, size_t buflen, int flags), (fd, buf, len, buflen, flags)) \
    X(ssize_t, __recvfrom_chk,                                                                                  \
      (int fd, void* buf, size_t len, size_t buflen, int flags, struct sockaddr* addr, socklen_t* alen),        \
      (fd, buf, len, buflen, flags, addr, alen))                                                                \
    X(int, epoll_ctl, (int epfd, int op, int fd, struct epoll_event* event), (epfd, op, fd, event))          \
    USTACK_INTERCEPTED_WAITS(X)

// The program's own waits: only watched (the inproc host's thread must
// watch the loop while a thread sleeps here), never served by the shim.
// The parameter names are the ones the wrappers' "does it block" tests use.
#define USTACK_INTERCEPTED_WAITS(X)                                                                             \
    X(int, poll, (struct pollfd* fds, nfds_t nfds, int timeout), (fds, nfds, timeout))                          \
    X(int, __poll_chk, (struct pollfd* fds, nfds_t nfds, int timeout, size_t fdslen), (fds, nfds, timeout, fdslen)) \
    X(int, ppoll, (struct pollfd* fds, nfds_t nfds, const struct timespec* ts, const sigset_t* mask),          \
      (fds, nfds, ts, mask))                                                                                    \
    X(int, __ppoll_chk,                                                                                         \
      (struct pollfd* fds, nfds_t nfds, const struct timespec* ts, const sigset_t* mask, size_t fdslen),       \
      (fds, nfds, ts, mask, fdslen))                                                                            \
    X(int, select, (int nfds, fd_set* r, fd_set* w, fd_set* x, struct timeval* tv), (nfds, r, w, x, tv))        \
    X(int, pselect, (int nfds, fd_set* r, fd_set* w, fd_set* x, const struct timespec* ts, const sigset_t* mask), \
      (nfds, r, w, x, ts, mask))                                                                                \
    X(int, epoll_wait, (int epfd, struct epoll_event* events, int maxevents, int timeout),                      \
      (epfd, events, maxevents, timeout))                                                                       \
    X(int, epoll_pwait, (int epfd, struct epoll_event* events, int maxevents, int timeout, const sigset_t* mask), \
      (epfd, events, maxevents, timeout, mask))                                                                 \
    X(int, epoll_pwait2,                                                                                        \
      (int epfd, struct epoll_event* events, int maxevents, const struct timespec* ts, const sigset_t* mask),  \
      (epfd, events, maxevents, ts, mask))

// X(name): int name(int fd, <int or unsigned long> request, ...)
#define USTACK_INTERCEPTED_VARIADIC(X) \
    X(fcntl)                           \
    X(fcntl64)                         \
    X(ioctl)

namespace ustack::shim {

struct RealFunctions {
#define USTACK_REAL_POINTER(ret, name, params, args) ret(*name) params = nullptr;
    USTACK_INTERCEPTED(USTACK_REAL_POINTER)
#undef USTACK_REAL_POINTER
    int (*fcntl)(int, int, ...) = nullptr;
    int (*fcntl64)(int, int, ...) = nullptr;
    int (*ioctl)(int, unsigned long, ...) = nullptr;
};

// Resolved once (dlsym(RTLD_NEXT)) before any wrapper uses them.
extern RealFunctions real;
void resolve_real_functions();

}  // namespace ustack::shim
