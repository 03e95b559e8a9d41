#pragma once
// What the shim knows about each fd of the process, indexed by fd number.
//
// - Unknown: never seen (inherited, received over SCM_RIGHTS, opened by a
//   call we do not intercept). A socket call on it classifies it once.
// - Kernel: a kernel fd the shim leaves alone.
// - Candidate: an AF_INET/AF_INET6 socket created through socket(), still a
//   kernel socket (or, pair-backed, a spare socketpair's app end that only
//   becomes one if a call needs it): bind/connect/listen/sendto decide
//   whether it moves to ustack. Its options live in the kernel socket and are read back at the
//   swap, unless the entry knows that nothing can have changed them since
//   socket() (`creation_flags_hold`: a TCP client's usual life, eight
//   syscalls saved per connection).
// - Ustack: the fd is the app end of a ustack socketpair.
//
// The table is process memory: fork copies it; exec loses it, and the new
// image rebuilds it from the fds themselves (identify(): the host end of a
// ustack socketpair is bound to a name that says so, see protocol.h).
// Entries are changed under a lock and read lock-free (kind is atomic and
// published last).
#include <atomic>
#include <cstdint>
#include <mutex>

namespace ustack::shim {

enum class FdKind : uint8_t { Unknown = 0, Kernel = 1, Candidate = 2, Ustack = 3 };

// A few IPPROTO_IP/IPV6 and SOL_SOCKET options the shim answers itself on
// ustack sockets (IP_TOS, IPV6_V6ONLY, SO_BROADCAST...): set values are
// kept here so that getsockopt returns them.
struct LocalOption {
    int level = 0;
    int name = 0;
    int value = 0;
};

struct FdEntry {
    std::atomic<uint8_t> kind{0};
    uint8_t domain = 0;      // AF_INET / AF_INET6
    uint8_t type = 0;        // SOCK_DGRAM / SOCK_STREAM
    int8_t connected = -1;   // UDP: -1 unknown (ask the host), 0, 1
    int8_t listening = -1;   // TCP: -1 unknown (ask the host), 0, 1
    // TCP: a blocking connect() returned 0 but the host has not been told
    // that it did. The engine keeps inet_stream_connect's "0 once after
    // EINPROGRESS" for non-blocking callers; a blocking connect consumes
    // it. Telling the host costs a round trip per connect, so it is only
    // done when the app calls connect() on the socket again (which must
    // then be EISCONN).
    uint8_t connect_completion_owed = 0;
    static constexpr int max_local_options = 6;
    LocalOption local_options[max_local_options];
    // Candidate TCP sockets: options set on the kernel socket that the
    // stack socket must get too (SO_SNDBUF, TCP_NODELAY, SO_LINGER...),
    // replayed in order at the swap. SO_LINGER as on << 32 | seconds.
    static constexpr int max_replay_options = 12;
    struct ReplayOption {
        int level = 0;
        int name = 0;
        int64_t value = 0;
    };
    uint8_t replay_count = 0;
    ReplayOption replay[max_replay_options];
    // Candidates: the kernel socket's SOL_SOCKET options and file flags
    // are still what socket() made them (SOCK_NONBLOCK / SOCK_CLOEXEC as
    // below, every other option the kernel's default). Cleared by whatever
    // could change them: a SOL_SOCKET setsockopt, fcntl F_SETFL/F_SETFD, an
    // ioctl, a dup (the copy shares the open file), close_range's
    // CLOSE_RANGE_CLOEXEC, passing it over SCM_RIGHTS, and a fork (the
    // other process shares it) through `fork_generation`. Not seen: a
    // child made without fork handlers (posix_spawn, vfork, _Fork) that
    // inherits a candidate without SOCK_CLOEXEC and changes it after exec.
    uint8_t creation_flags_hold = 0;
    // Candidates: the program called bind/connect/listen on the kernel
    // socket itself (they failed, or it would not be a candidate any more,
    // but a failed connect may have bound a port or left a handshake
    // running): the swap closes it at once, never later (retire_fd).
    uint8_t kernel_side_used = 0;
    uint8_t created_nonblock = 0;
    uint8_t created_cloexec = 0;
    uint32_t fork_generation = 0;
    // Pair-backed candidates (inproc, IPv4 TCP; see shim.cpp): the fd is a
    // spare socketpair's app end from socket() on. The host end waits here
    // for the bind, connect or listen that adopts the pair, or for the
    // first call that needs the kernel socket after all (then made, with
    // what was set so far). -1: a kernel socket, as always.
    int32_t pair_host_end = -1;
    uint8_t pair_in_epoll = 0;
    uint8_t pair_reuse_addr = 0;
    uint8_t pair_reuse_port = 0;
    uint8_t pair_timeouts = 0;  // SO_RCVTIMEO / SO_SNDTIMEO set on the app end
    uint64_t pair_app_inode = 0;
    // Candidates: the program's epoll registrations of the fd (an
    // epoll_ctl ADD before connecting, as nginx makes for its upstreams).
    // A pair-backed adoption keeps the file, and them with it; a
    // materialize and the swap replace the file (dup3 drops them) and make
    // them again on the new one, those still in their epoll set (an epoll
    // fd closed and its number reused fails the DEL: shim.cpp,
    // take_epoll_watches_off). Not kept: a third epoll set's
    // (epoll_untracked).
    struct EpollWatch {
        int32_t epfd = -1;
        uint32_t events = 0;
        uint64_t data = 0;
    };
    static constexpr int max_epoll_watches = 2;
    EpollWatch epoll_watches[max_epoll_watches];
    uint8_t epoll_untracked = 0;  // a registration not in epoll_watches: the swap frees the old file at once

    FdKind get_kind() const { return static_cast<FdKind>(kind.load(std::memory_order_acquire)); }
};

class FdTable {
public:
    static constexpr int chunk_bits = 10;
    static constexpr int chunk_size = 1 << chunk_bits;
    static constexpr int max_chunks = 1024;  // fds up to 1,048,575
    static constexpr int max_fd = chunk_size * max_chunks - 1;

    // nullptr for an fd out of range; creates the chunk when `create`.
    FdEntry* get(int fd, bool create);
    FdKind kind(int fd) {
        FdEntry* e = get(fd, false);
        return e == nullptr ? FdKind::Unknown : e->get_kind();
    }
    void set(int fd, FdKind kind, int domain = 0, int type = 0, int connected = -1);
    void clear(int fd);
    // dup/dup2/dup3/F_DUPFD: `to` becomes what `from` is.
    void copy(int from, int to);

    std::mutex& lock() { return mutex_; }

private:
    std::atomic<FdEntry*> chunks_[max_chunks] = {};
    std::mutex mutex_;
};

FdTable& fd_table();

// Bumped before every fork() of the process (pthread_atfork): a candidate
// created under an older generation may be shared with another process.
uint32_t fork_generation();
void count_fork();

}  // namespace ustack::shim
