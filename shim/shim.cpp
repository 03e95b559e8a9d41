// libustack.so: the LD_PRELOAD shim. Moves a program's IPv4 (and dual-stack
// IPv6) sockets onto ustack; everything else stays with the kernel.
//
// Each wrapper: init guard (resolve the real functions once) → re-entry
// guard (calls made by the shim itself, and by the inproc host thread, go
// straight to libc) → fd lookup → the ustack path for ustack fds, else the
// real call. No exception crosses the C ABI: errors are -1/errno.
//
// See stack/host/protocol.h for the wire formats and DESIGN.md for the
// model (a socket stays a kernel socket until bind/connect/sendto shows
// its address is ustack's; then the fd is swapped with dup3 for the app end
// of a socketpair served by the host).
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "shim/fd_table.h"
#include "shim/intercepted.h"
#include "shim/signal_dispositions.h"
#include "stack/host/client.h"
#include "stack/host/fork_wiped.h"
#include "stack/host/host.h"
#include "stack/host/host_config.h"
#include "stack/host/protocol.h"
#include "stack/host/tcp_host_socket.h"

namespace ustack::shim {

RealFunctions real;

namespace {

using host::DatagramHeader;
using host::DatagramKind;
using host::Op;
using host::Reply;
using host::Request;
using host::SocketAction;

// ------------------------------------------------------------ guards

// Non-zero while the shim itself (or the inproc host thread) runs: its
// own socket calls must reach libc, not the wrappers.
__attribute__((tls_model("initial-exec"))) thread_local int in_shim = 0;

struct ShimScope {
    ShimScope() { ++in_shim; }
    ~ShimScope() { --in_shim; }
    ShimScope(const ShimScope&) = delete;
    ShimScope& operator=(const ShimScope&) = delete;
};

std::atomic<bool> resolved{false};

void ensure_resolved() {
    if (!resolved.load(std::memory_order_acquire)) {
        resolve_real_functions();
    }
}

// ------------------------------------------------------------ configuration

struct Config {
    bool enabled = false;
    std::string device;
    host::HostMode mode = host::HostMode::Daemon;
    uint32_t address = 0;  // host order
    uint32_t netmask = 0;
    bool has_gateway = false;
    std::string daemon_path;
};

Config& config() {
    static Config* c = new Config();
    return *c;
}

std::once_flag config_once;

void message_once(std::atomic<bool>& flag, const std::string& text) {
    if (!flag.exchange(true)) {
        const std::string line = "ustack: " + text + "\n";
        (void)!real.write(2, line.data(), line.size());
    }
}

std::atomic<bool> config_warned{false};
std::atomic<bool> host_warned{false};

void scan_inherited_fds();

void load_config() {
    Config& c = config();
    host::HostConfig hc;
    if (auto error = hc.load_environment()) {
        message_once(config_warned, *error + "; sockets stay with the kernel");
        return;
    }
    if (!hc.address) {
        return;  // not under ustack-run: the shim stays out of the way
    }
    c.device = hc.device;
    c.mode = hc.mode;
    c.address = hc.address->address.to_u32();
    c.netmask = hc.address->netmask();
    c.has_gateway = hc.gateway.has_value();
    if (const char* d = std::getenv("USTACK_DAEMON")) {
        c.daemon_path = d;
    } else {
        // Next to the library: build/lib/libustack.so → build/bin/ustackd.
        Dl_info info{};
        if (::dladdr(reinterpret_cast<void*>(&load_config), &info) != 0 && info.dli_fname != nullptr) {
            std::string p = info.dli_fname;
            const size_t slash = p.rfind('/');
            c.daemon_path = (slash == std::string::npos ? std::string(".") : p.substr(0, slash)) + "/../bin/ustackd";
        }
    }
    c.enabled = true;
}

void ensure_config() {
    std::call_once(config_once, [] {
        load_config();
        if (config().enabled) {
            scan_inherited_fds();
        }
    });
}

// A destination ustack routes: its subnet (and its own address), or
// anything but loopback when a gateway is set.
bool ustack_destination(uint32_t addr) {
    const Config& c = config();
    if (addr == 0 || (addr >> 24) == 127) {
        return false;
    }
    if (addr == c.address || (addr & c.netmask) == (c.address & c.netmask)) {
        return true;
    }
    return c.has_gateway;
}

// A local address ustack owns for bind: its own, or the wildcard.
bool ustack_bind_address(uint32_t addr) { return addr == 0 || addr == config().address; }

// ------------------------------------------------------------ addresses

struct Address {
    bool unspec = false;     // AF_UNSPEC
    bool v6_native = false;  // an IPv6 address that is not v4-mapped (nor ::)
    bool v6_any = false;     // ::
    bool v6_loopback = false;  // ::1 (the kernel's, like 127.0.0.0/8)
    uint32_t addr = 0;       // host order
    uint16_t port = 0;       // host order
};

// 0 or an errno (EINVAL for a short length, EAFNOSUPPORT for a foreign family).
int parse_address(const sockaddr* sa, socklen_t len, Address& out) {
    out = Address{};
    if (sa == nullptr || len < static_cast<socklen_t>(sizeof(sa_family_t))) {
        return EINVAL;
    }
    switch (sa->sa_family) {
    case AF_UNSPEC:
        out.unspec = true;
        return 0;
    case AF_INET: {
        if (len < static_cast<socklen_t>(sizeof(sockaddr_in))) {
            return EINVAL;
        }
        sockaddr_in sin;
        std::memcpy(&sin, sa, sizeof sin);
        out.addr = ntohl(sin.sin_addr.s_addr);
        out.port = ntohs(sin.sin_port);
        return 0;
    }
    case AF_INET6: {
        if (len < 24) {  // SIN6_LEN_RFC2133: without sin6_scope_id
            return EINVAL;
        }
        sockaddr_in6 sin6{};
        std::memcpy(&sin6, sa, std::min<size_t>(len, sizeof sin6));
        out.port = ntohs(sin6.sin6_port);
        const in6_addr& a = sin6.sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&a)) {
            uint32_t v4;
            std::memcpy(&v4, a.s6_addr + 12, 4);
            out.addr = ntohl(v4);
        } else if (IN6_IS_ADDR_UNSPECIFIED(&a)) {
            out.v6_any = true;
        } else {
            out.v6_native = true;
            out.v6_loopback = IN6_IS_ADDR_LOOPBACK(&a);
        }
        return 0;
    }
    default:
        return EAFNOSUPPORT;
    }
}

// Writes the address as the socket's family shows it: sockaddr_in, or a
// v4-mapped sockaddr_in6 (:: for the wildcard) on an AF_INET6 socket.
void fill_address(int domain, uint32_t addr_be, uint16_t port_be, sockaddr* out, socklen_t* len) {
    if (out == nullptr || len == nullptr) {
        return;
    }
    if (domain == AF_INET6) {
        sockaddr_in6 sin6{};
        sin6.sin6_family = AF_INET6;
        sin6.sin6_port = port_be;
        if (addr_be != 0) {
            sin6.sin6_addr.s6_addr[10] = 0xff;
            sin6.sin6_addr.s6_addr[11] = 0xff;
            std::memcpy(sin6.sin6_addr.s6_addr + 12, &addr_be, 4);
        }
        std::memcpy(out, &sin6, std::min<size_t>(*len, sizeof sin6));
        *len = sizeof sin6;
    } else {
        sockaddr_in sin{};
        sin.sin_family = AF_INET;
        sin.sin_port = port_be;
        sin.sin_addr.s_addr = addr_be;
        std::memcpy(out, &sin, std::min<size_t>(*len, sizeof sin));
        *len = sizeof sin;
    }
}

int set_errno(int error) {
    errno = error;
    return -1;
}

// ------------------------------------------------------------ the host connection

struct HostLink {
    std::mutex mutex;
    int fd = -1;
    pid_t pid = 0;  // the process that opened fd (a forked child reconnects)
    bool have_hello = false;
    uint32_t capabilities = 0;
};

HostLink& link() {
    static HostLink* l = new HostLink();
    return *l;
}

// The inproc host: a thread of this process.
struct InprocHost {
    std::unique_ptr<host::Host> host;
    std::thread thread;
    pid_t pid = 0;
};

// Whether `p` is this process's own host, not a forked child's copy of its
// parent's: by the fork-wiped page when the kernel has one (no syscall per
// call), else by the pid.
bool owned_here(const InprocHost* p) {
    if (host::ForkWiped* wiped = host::fork_wiped(); wiped != nullptr) {
        return wiped->owner.load(std::memory_order_acquire) == p;
    }
    return p->pid == ::getpid();
}
// Set once, by the thread that starts it; read by every thread (caller_host).
std::atomic<InprocHost*> inproc{nullptr};
// Set in a forked child: the inproc host's thread stayed in the parent.
std::atomic<bool> inproc_host_elsewhere{false};

// The calling thread is about to block where no caller pass works the
// inproc host's loop (Host::outside_wait_begin: the host thread comes back
// to watch meanwhile). No getpid(): in a forked child the flag above says
// the host is not ours.
class OutsideLoopWait {
public:
    explicit OutsideLoopWait(bool blocks = true) {
        InprocHost* p = blocks ? inproc.load(std::memory_order_acquire) : nullptr;
        if (p != nullptr && !inproc_host_elsewhere.load(std::memory_order_relaxed)) {
            host_ = p->host.get();
            host_->outside_wait_begin();
        }
    }
    ~OutsideLoopWait() {
        if (host_ != nullptr) {
            host_->outside_wait_end();
        }
    }
    OutsideLoopWait(const OutsideLoopWait&) = delete;
    OutsideLoopWait& operator=(const OutsideLoopWait&) = delete;

private:
    host::Host* host_ = nullptr;
};

// The app end changed in a way only the host's loop notices (bytes, a
// shutdown or a hang-up put into a pair outside a caller's turn): the host
// thread must be watching, not wait for its lookout timer.
void host_must_look() { const OutsideLoopWait look; }

// After the app read from an app end outside a caller's turn: the host may
// have been waiting for that room.
void after_app_end_read(ssize_t n) {
    InprocHost* p = n > 0 ? inproc.load(std::memory_order_acquire) : nullptr;
    if (p != nullptr && !inproc_host_elsewhere.load(std::memory_order_relaxed) && p->host->host_ends_wait_for_room()) {
        host_must_look();
    }
}

int start_inproc_host(std::string* message) {
    host::HostConfig hc;
    if (auto error = hc.load_environment()) {
        *message = *error;
        return EINVAL;
    }
    host::Host::Options options;
    options.persistent = true;
    options.inproc = true;
    auto created = host::Host::create(hc, options);
    if (!created) {
        if (created.error().first == EADDRINUSE && created.error().second.find("already running") != std::string::npos) {
            return 0;  // another process's host serves the device: use it
        }
        *message = created.error().second;
        return created.error().first;
    }
    auto* p = new InprocHost();
    p->host = std::move(*created);
    p->pid = ::getpid();
    if (host::ForkWiped* wiped = host::fork_wiped(); wiped != nullptr) {
        wiped->owner.store(p, std::memory_order_release);
    }
    // Before any turn: with no handler installed, turns need not hold
    // signals back (Host::signal_handlers_scanned).
    host::Host::signal_handlers_scanned(program_has_signal_handlers());
    host::Host* h = p->host.get();
    // The host thread runs none of the program's signal handlers (they
    // could fork or block while it holds the host's locks): it starts
    // with every asynchronous signal blocked (a new thread inherits the
    // mask), and the program's are delivered to its own threads.
    sigset_t blocked;
    sigset_t program_mask;
    ::sigfillset(&blocked);
    for (int sig : {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP, SIGSYS, SIGABRT}) {
        ::sigdelset(&blocked, sig);
    }
    ::pthread_sigmask(SIG_BLOCK, &blocked, &program_mask);
    p->thread = std::thread([h] {
        in_shim = 1;  // the host's own syscalls go straight to libc
        h->run();
    });
    ::pthread_sigmask(SIG_SETMASK, &program_mask, nullptr);
    inproc = p;
    inproc_host_elsewhere = false;  // after: a forked child's own host is ours now, the parent's never was
    return 0;
}

// Connected control fd, or -errno. Call with link().mutex held.
int host_fd_locked(std::string* message) {
    HostLink& l = link();
    const pid_t self = ::getpid();
    if (l.fd >= 0 && l.pid == self) {
        return l.fd;
    }
    if (l.fd >= 0) {
        // Inherited through fork: the parent's conversation, not ours.
        real.close(l.fd);
        l.fd = -1;
    }
    const Config& c = config();
    int fd = host::connect_control(c.device);
    if (fd < 0 && (fd == -ECONNREFUSED || fd == -ENOENT)) {
        if (c.mode == host::HostMode::Inproc) {
            if (int err = start_inproc_host(message); err != 0) {
                return -ENETDOWN;
            }
            fd = host::connect_control(c.device);
        } else {
            std::string why;
            fd = host::connect_or_start(c.device, c.daemon_path, {}, &why);
            if (fd < 0) {
                *message = why;
                return -ENETDOWN;
            }
        }
    }
    if (fd < 0) {
        *message = std::strerror(-fd);
        return fd;
    }
    l.fd = fd;
    l.pid = self;
    if (!l.have_hello) {
        Request hello;
        hello.op = Op::Hello;
        Reply reply;
        if (host::control_call(fd, hello, -1, reply) == 0 && reply.error == 0) {
            l.have_hello = true;
            l.capabilities = reply.flags;
            if (ntohl(reply.addr) != c.address) {
                static std::atomic<bool> warned{false};
                message_once(warned, "the host for " + c.device + " has address " +
                                         wire::Ipv4Address(ntohl(reply.addr)).to_string() + ", not USTACK_ADDR");
            }
        }
    }
    return fd;
}

// One RPC. Returns 0 (the host's answer in reply.error) or an errno when
// the host cannot be reached (reported once on stderr).
host::Host* caller_host();

int call_host(const Request& request, int pass_fd, Reply& reply, int* received_fd = nullptr,
              std::string* text = nullptr) {
    if (host::Host* h = caller_host(); h != nullptr) {
        // The host is a thread of this process: the call runs here (no
        // round trip through the control socket, no thread woken for it).
        if (auto direct = h->caller_call(request, pass_fd, text, received_fd)) {
            reply = *direct;
            return 0;
        }
    }
    HostLink& l = link();
    std::lock_guard<std::mutex> guard(l.mutex);
    std::string message;
    for (int attempt = 0; attempt < 2; ++attempt) {
        const int fd = host_fd_locked(&message);
        if (fd < 0) {
            message_once(host_warned, "cannot reach the ustack host for " + config().device + ": " + message);
            return -fd == ENETDOWN ? ENETDOWN : ECONNREFUSED;
        }
        const int err = host::control_call(fd, request, pass_fd, reply, text, received_fd);
        if (err == 0) {
            return 0;
        }
        // The host went away (idle exit between two calls): once more.
        real.close(l.fd);
        l.fd = -1;
        message = std::strerror(err);
    }
    message_once(host_warned, "lost the ustack host for " + config().device + ": " + message);
    return ECONNREFUSED;
}

uint32_t host_capabilities() {
    {
        HostLink& l = link();
        std::lock_guard<std::mutex> guard(l.mutex);
        // Connecting says Hello (host_fd_locked), and its answer is the
        // capabilities: a second Hello would be one more round trip on
        // every program's first bind/connect/listen.
        std::string message;
        if (!l.have_hello && host_fd_locked(&message) < 0) {
            message_once(host_warned, "cannot reach the ustack host for " + config().device + ": " + message);
            return 0;
        }
        if (l.have_hello) {
            return l.capabilities;
        }
    }
    // Connected, but the Hello got no answer (the host went away): ask
    // again through call_host, which reconnects once.
    Request hello;
    hello.op = Op::Hello;
    Reply reply;
    if (call_host(hello, -1, reply) != 0 || reply.error != 0) {
        return 0;
    }
    return reply.flags;
}

// A per-socket call: passes the fd itself, the host finds the socket by it.
// Returns 0 or sets errno and returns -1.
int socket_call(int fd, Request& request, Reply& reply) {
    if (int err = call_host(request, fd, reply); err != 0) {
        return set_errno(err);
    }
    if (reply.error != 0) {
        return set_errno(reply.error);
    }
    return 0;
}

// ------------------------------------------------------------ fd identification

// Whether fd is the app end of a ustack socketpair (after exec, or an fd
// received from another process): its peer, the host end, has a name that
// says so.
void identify(int fd) {
    sockaddr_un peer{};
    socklen_t len = sizeof peer;
    if (real.getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) == 0) {
        if (auto name = host::abstract_name(peer, len)) {
            if (auto info = host::parse_host_end_name(*name)) {
                fd_table().set(fd, FdKind::Ustack, info->domain, info->type, -1);
                return;
            }
        }
    }
    fd_table().set(fd, FdKind::Kernel);
}

void scan_inherited_fds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) {
        return;
    }
    const int own = ::dirfd(dir);
    while (dirent* entry = ::readdir(dir)) {
        char* end = nullptr;
        const long fd = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || fd == own) {
            continue;
        }
        identify(static_cast<int>(fd));
    }
    ::closedir(dir);
}

// The entry of an fd a socket call is about, classifying an unknown fd
// first. nullptr for fds out of range.
FdEntry* socket_entry(int fd) {
    FdEntry* e = fd_table().get(fd, true);
    if (e != nullptr && e->get_kind() == FdKind::Unknown) {
        identify(fd);
    }
    return e;
}

bool is_ustack(FdEntry* e) { return e != nullptr && e->get_kind() == FdKind::Ustack; }

FdEntry* ustack_entry(int fd) {
    FdEntry* e = fd_table().get(fd, false);
    return is_ustack(e) ? e : nullptr;
}

// ------------------------------------------------------------ pair-backed candidates
//
// With the host in this process, an IPv4 TCP socket is a spare socketpair's
// app end from socket() on (Host::take_spare_for_socket). A bind, connect
// or listen on ustack's side then adopts the pair (Host::caller_adopt):
// no kernel socket made at socket() only to be replaced with dup3 and
// closed. Until then the entry holds the host end. The calls that a fresh
// socket answers as only a kernel socket does (getsockopt, a read or write
// before connecting, a kernel address, dup, SCM_RIGHTS, most fcntl and
// ioctl) first make it the kernel socket socket() would have made
// (materialize_pair), with the flags and options set so far; from there on
// it is an ordinary candidate. Not seen by the shim: a fresh socket's poll
// readiness (POLLOUT, where Linux adds POLLHUP), and such a socket carried
// across exec before any of those calls (the new image finds an app end
// that its host has no socket for).

int option_value(int level, int name, const void* value, socklen_t len, int64_t* out);
void remember_for_replay(FdEntry& e, int level, int name, int64_t value);

// A forked child's pair-backed fd: its copy of the host end was closed at
// the fork (after_fork_in_child); it can only become a kernel socket.
constexpr int32_t pair_orphaned = -2;

bool pair_backed(const FdEntry* e) {
    return e != nullptr && e->get_kind() == FdKind::Candidate && e->pair_host_end != -1;
}

// The entry's pair (the app end is the fd). Call with the table's lock held.
host::Host::PairEnds pair_of(const FdEntry& e, int fd) {
    host::Host::PairEnds pair;
    pair.host_end = e.pair_host_end;
    pair.app_end = fd;
    pair.app_inode = static_cast<ino_t>(e.pair_app_inode);
    pair.in_epoll = e.pair_in_epoll != 0;
    return pair;
}

// Takes the pair out of the entry: one thread adopts, materializes or
// releases it, and a racing call on the same fd sees an ordinary candidate.
// nullopt: not pair-backed (any more).
std::optional<host::Host::PairEnds> claim_pair(int fd, FdEntry& e) {
    std::lock_guard<std::mutex> guard(fd_table().lock());
    if (e.get_kind() != FdKind::Candidate || e.pair_host_end == -1) {
        return std::nullopt;
    }
    host::Host::PairEnds pair = pair_of(e, fd);
    e.pair_host_end = -1;
    return pair;
}

// A claim that came to nothing (an adoption refused, no fd for the kernel socket).
void unclaim_pair(FdEntry& e, const host::Host::PairEnds& pair) {
    std::lock_guard<std::mutex> guard(fd_table().lock());
    e.pair_host_end = pair.host_end;
}

// A claimed pair's host end leaves the host, before the app end's last
// copy goes (its hang-up would be an event for no socket).
void release_claimed(const host::Host::PairEnds& pair) {
    if (pair.host_end < 0) {
        return;  // orphaned: closed at the fork
    }
    if (host::Host* h = caller_host(); h != nullptr) {
        h->release_spare_host_end(pair);
    } else {
        real.close(pair.host_end);  // a forked child's copy: the inner set is the parent's, left alone
    }
}

void release_pair_if_backed(int fd) {
    if (FdEntry* e = fd_table().get(fd, false); pair_backed(e)) {
        if (auto pair = claim_pair(fd, *e)) {
            release_claimed(*pair);
        }
    }
}

// dup2/dup3 about to put a copy of oldfd at newfd: a pair-backed newfd's
// host end goes first (unless the dup would fail and leave newfd as it is).
void release_pair_replaced(int oldfd, int newfd) {
    FdEntry* e = fd_table().get(newfd, false);
    if (oldfd != newfd && pair_backed(e) && real.fcntl(oldfd, F_GETFD) >= 0) {
        release_pair_if_backed(newfd);
    }
}

// In a forked child (one thread, the table's lock possibly held by a thread
// that is gone): the parent's pairs must not be kept open by our copies of
// their host ends, nor adopted by a host of our own.
void orphan_pairs_in_child() {
    for (int fd = 0; fd <= FdTable::max_fd; ++fd) {
        FdEntry* e = fd_table().get(fd, false);
        if (e == nullptr) {
            fd |= FdTable::chunk_size - 1;  // a chunk never used
            continue;
        }
        if (e->get_kind() == FdKind::Candidate && e->pair_host_end >= 0) {
            real.close(e->pair_host_end);
            e->pair_host_end = pair_orphaned;
        }
    }
}

// Before close_range or closefrom closes [first, last].
void release_pairs_in_range(unsigned int first, unsigned int last) {
    const unsigned int top = std::min<unsigned int>(last, FdTable::max_fd);
    for (unsigned int fd = first; fd <= top; ++fd) {
        if (fd_table().get(static_cast<int>(fd), false) == nullptr) {
            fd |= FdTable::chunk_size - 1;  // a chunk never used
            continue;
        }
        release_pair_if_backed(static_cast<int>(fd));
    }
}

// socket(AF_INET, SOCK_STREAM) with the host in this process: a spare
// pair's app end, at the fd socket() would have returned. -1: no spare
// (the kernel socket, as before).
int pair_backed_socket(host::Host& h, int type, uint32_t generation) {
    auto pair = h.take_spare_for_socket();
    if (!pair) {
        return -1;
    }
    const bool cloexec = (type & SOCK_CLOEXEC) != 0;
    const int fd = real.fcntl(pair->app_end, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0);
    real.close(pair->app_end);
    FdEntry* e = fd >= 0 ? fd_table().get(fd, true) : nullptr;
    if (e == nullptr) {
        h.release_spare_host_end(*pair);
        if (fd >= 0) {
            real.close(fd);
        }
        return -1;
    }
    if ((type & SOCK_NONBLOCK) != 0) {
        real.fcntl(fd, F_SETFL, O_NONBLOCK);
    }
    fd_table().set(fd, FdKind::Candidate, AF_INET, SOCK_STREAM);
    std::lock_guard<std::mutex> guard(fd_table().lock());
    e->created_nonblock = (type & SOCK_NONBLOCK) != 0 ? 1 : 0;
    e->created_cloexec = cloexec ? 1 : 0;
    e->fork_generation = generation;
    e->creation_flags_hold = 1;
    e->pair_host_end = pair->host_end;
    e->pair_in_epoll = pair->in_epoll ? 1 : 0;
    e->pair_app_inode = static_cast<uint64_t>(pair->app_inode);
    return fd;
}

// The program's epoll registrations of a candidate (FdEntry::epoll_watches)
// move with its fd when a dup3 replaces the file: taken off the old file
// first (a copy of it may outlive the dup3, and its registration would
// report that dead socket's EPOLLOUT|EPOLLHUP under the program's data),
// then made again on the new one. Only those the DEL found: an epoll fd the
// program closed without EPOLL_CTL_DEL, its number reused since, fails the
// DEL (ENOENT, EBADF, EINVAL) and is forgotten, never registered into.
// Not in a forked child that inherited the candidate: its epoll sets are
// the parent's too, and a parent's registration is the parent's.
// Returns the watches to make again (a bit per slot).
unsigned take_epoll_watches_off(int fd, FdEntry& e) {
    FdEntry::EpollWatch watches[FdEntry::max_epoll_watches];
    {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        if (e.fork_generation != fork_generation()) {
            return 0;
        }
        std::copy(e.epoll_watches, e.epoll_watches + FdEntry::max_epoll_watches, watches);
    }
    unsigned found = 0;
    unsigned stale = 0;
    for (int i = 0; i < FdEntry::max_epoll_watches; ++i) {
        if (watches[i].epfd < 0) {
            continue;
        }
        if (real.epoll_ctl(watches[i].epfd, EPOLL_CTL_DEL, fd, nullptr) == 0) {
            found |= 1u << i;
        } else {
            stale |= 1u << i;
        }
    }
    if (stale != 0) {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        for (int i = 0; i < FdEntry::max_epoll_watches; ++i) {
            if ((stale & (1u << i)) != 0 && e.epoll_watches[i].epfd == watches[i].epfd) {
                e.epoll_watches[i] = FdEntry::EpollWatch{};
            }
        }
    }
    return found;
}

void put_epoll_watches_back(int fd, FdEntry& e, unsigned which) {
    FdEntry::EpollWatch watches[FdEntry::max_epoll_watches];
    {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        std::copy(e.epoll_watches, e.epoll_watches + FdEntry::max_epoll_watches, watches);
    }
    for (int i = 0; i < FdEntry::max_epoll_watches; ++i) {
        if ((which & (1u << i)) != 0 && watches[i].epfd >= 0) {
            epoll_event ev{};
            ev.events = watches[i].events;
            ev.data.u64 = watches[i].data;
            real.epoll_ctl(watches[i].epfd, EPOLL_CTL_ADD, fd, &ev);
        }
    }
}

// Makes a pair-backed candidate the kernel socket socket() would have
// made, with the file flags and options the program set on it so far.
// 0, or -1 with errno (socket()'s: EMFILE, ENOBUFS...).
int materialize_pair(int fd, FdEntry& e) {
    auto claimed = claim_pair(fd, e);
    if (!claimed) {
        return 0;  // another thread adopted or materialized it
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || st.st_ino != claimed->app_inode) {
        // Not the pair's app end any more (closed where the shim cannot
        // see, as fclose(fdopen()) does, and the number reused): a stale
        // entry, never a dup3 over someone's file.
        release_claimed(*claimed);
        fd_table().clear(fd);
        return 0;
    }
    int s = real.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 && (errno == EMFILE || errno == ENFILE)) {
        if (host::Host* h = caller_host(); h != nullptr && h->release_reserved_fds()) {
            s = real.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        }
    }
    if (s < 0) {
        const int err = errno;
        unclaim_pair(e, *claimed);
        return set_errno(err);
    }
    const int status = real.fcntl(fd, F_GETFL);
    const int fd_flags = real.fcntl(fd, F_GETFD);
    if (status >= 0) {
        real.fcntl(s, F_SETFL, status);  // O_NONBLOCK, O_ASYNC...
    }
    bool reuse_addr = false;
    bool reuse_port = false;
    bool timeouts = false;
    uint8_t count = 0;
    FdEntry::ReplayOption replay[FdEntry::max_replay_options];
    {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        reuse_addr = e.pair_reuse_addr != 0;
        reuse_port = e.pair_reuse_port != 0;
        timeouts = e.pair_timeouts != 0;
        count = e.replay_count;
        std::copy(e.replay, e.replay + count, replay);
    }
    const int one = 1;
    if (reuse_addr) {
        real.setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (reuse_port) {
        real.setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    }
    for (uint8_t i = 0; i < count; ++i) {
        const int v = static_cast<int>(replay[i].value);  // the fast path records int options only
        real.setsockopt(s, replay[i].level, replay[i].name, &v, sizeof v);
    }
    if (timeouts) {
        for (const int option : {SO_RCVTIMEO, SO_SNDTIMEO}) {
            timeval tv{};
            socklen_t len = sizeof tv;
            if (real.getsockopt(fd, SOL_SOCKET, option, &tv, &len) == 0) {
                real.setsockopt(s, SOL_SOCKET, option, &tv, len);
            }
        }
    }
    release_claimed(*claimed);
    // What the program registered moves to the file the fd is now. The
    // entry keeps it: a swap to ustack may still replace this file.
    const unsigned watches = take_epoll_watches_off(fd, e);
    const int rc = real.dup3(s, fd, (fd_flags >= 0 && (fd_flags & FD_CLOEXEC) != 0) ? O_CLOEXEC : 0);
    const int err = errno;
    real.close(s);
    put_epoll_watches_back(fd, e, watches);  // on the new file, or again on the old one
    if (rc < 0) {
        return set_errno(err);
    }
    {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        e.creation_flags_hold = 0;  // options live in the kernel socket now: a swap reads them back
    }
    return 0;
}

// A call that needs the kernel socket: made now if the fd is pair-backed.
// 0, or -1 with errno when it cannot be.
int settle_pair(int fd) {
    FdEntry* e = fd_table().get(fd, false);
    if (!pair_backed(e)) {
        return 0;
    }
    return materialize_pair(fd, *e);
}

// setsockopt on a pair-backed candidate without a kernel socket, for the
// options a client sets before connecting (TCP_NODELAY, SO_REUSEADDR,
// SO_REUSEPORT; the timeouts act on the app end, as after a swap).
// nullopt: not one of them (the caller materializes).
std::optional<int> pair_setsockopt(int fd, FdEntry& e, int level, int name, const void* value, socklen_t len) {
    const bool flag = (level == IPPROTO_TCP && name == TCP_NODELAY) ||
                      (level == SOL_SOCKET && (name == SO_REUSEADDR || name == SO_REUSEPORT));
    if (flag) {
        int64_t v = 0;
        if (int err = option_value(level, name, value, len, &v); err != 0) {
            return set_errno(err);
        }
        if (level == IPPROTO_TCP) {
            remember_for_replay(e, level, name, v != 0 ? 1 : 0);
        } else {
            std::lock_guard<std::mutex> guard(fd_table().lock());
            (name == SO_REUSEADDR ? e.pair_reuse_addr : e.pair_reuse_port) = v != 0 ? 1 : 0;
        }
        return 0;
    }
    if (level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) {
        const int rc = real.setsockopt(fd, level, name, value, len);
        if (rc == 0) {
            std::lock_guard<std::mutex> guard(fd_table().lock());
            e.pair_timeouts = 1;
        }
        return rc;
    }
    return std::nullopt;
}

// The swap of a pair-backed candidate: the host takes the pair the fd
// already is. As swap_to_ustack; -2: make the kernel socket and swap that
// (orphaned, or the host stopping), -3: not pair-backed any more.
int adopt_pair(int fd, FdEntry& e, host::Host& h, SocketAction action, const Address& addr, int64_t argument,
               int64_t* reply_value, uint32_t* reply_flags) {
    Request request;
    request.op = Op::Socket;
    request.domain = AF_INET;
    request.type = SOCK_STREAM;
    request.action = action;
    request.addr = htonl(addr.addr);
    request.port = htons(addr.port);
    request.value = argument;
    {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        request.reuse_addr = e.pair_reuse_addr;
        request.reuse_port = e.pair_reuse_port;
        request.option_count = std::min<uint32_t>(e.replay_count, host::max_replayed_options);
        for (uint32_t i = 0; i < request.option_count; ++i) {
            request.options[i] = host::ReplayedOption{e.replay[i].level, e.replay[i].name, e.replay[i].value};
        }
    }
    auto claimed = claim_pair(fd, e);
    if (!claimed) {
        return -3;  // another thread materialized it meanwhile: an ordinary candidate
    }
    if (claimed->host_end < 0) {
        unclaim_pair(e, *claimed);
        return -2;  // orphaned at a fork: the kernel socket's way
    }
    auto reply = h.caller_adopt(request, fd, *claimed);
    if (!reply || reply->error != 0) {
        unclaim_pair(e, *claimed);  // the pair stays the fd's: another bind or connect may follow
        if (!reply) {
            return -2;  // the host is stopping: the kernel socket's way
        }
        return set_errno(reply->error);
    }
    fd_table().set(fd, FdKind::Ustack, AF_INET, SOCK_STREAM, action == SocketAction::Connect ? 1 : 0);
    e.listening = action == SocketAction::Listen ? 1 : 0;
    if (reply_value != nullptr) {
        *reply_value = reply->value;
    }
    if (reply_flags != nullptr) {
        *reply_flags = reply->flags;
    }
    return 0;
}

// ------------------------------------------------------------ the swap

// Moves a candidate kernel socket to ustack: the host creates the socket
// (with the options read back from the kernel socket) and, in the same
// call, binds or connects it; only on success does the app's fd become the
// app end (dup3), so a refused bind leaves the kernel socket untouched.
int swap_to_ustack(int fd, FdEntry& e, SocketAction action, const Address& addr, int64_t argument = 0,
                   int64_t* reply_value = nullptr, uint32_t* reply_flags = nullptr) {
    if (pair_backed(&e)) {
        int rc = -2;
        if (host::Host* h = caller_host(); h != nullptr) {
            rc = adopt_pair(fd, e, *h, action, addr, argument, reply_value, reply_flags);
        }
        if (rc != -2 && rc != -3) {
            return rc;
        }
        if (rc == -2 && materialize_pair(fd, e) < 0) {  // a forked child, or the host stopping
            return -1;
        }
    }
    int reuse_addr = 0;
    int reuse_port = 0;
    int rcvbuf = 0;  // 0: the host's default (TCP has no use for the kernel's figure)
    timeval rcvtimeo{};
    timeval sndtimeo{};
    int broadcast = 0;
    int status_flags = 0;
    int fd_flags = 0;
    bool creation_flags_hold = false;
    bool kernel_side_used = true;
    {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        // An epoll registration the entry does not hold must go with the
        // old file, at the dup3: no copy of it may outlive the swap.
        kernel_side_used = e.kernel_side_used != 0 || e.epoll_untracked != 0;
        creation_flags_hold =
            e.type == SOCK_STREAM && e.creation_flags_hold != 0 && e.fork_generation == fork_generation();
        status_flags = O_RDWR | (e.created_nonblock != 0 ? O_NONBLOCK : 0);
        fd_flags = e.created_cloexec != 0 ? FD_CLOEXEC : 0;
    }
    if (!creation_flags_hold) {
        socklen_t len = sizeof(int);
        real.getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse_addr, &len);
        len = sizeof(int);
        real.getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuse_port, &len);
        len = sizeof(int);
        real.getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, &len);
        len = sizeof rcvtimeo;
        real.getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcvtimeo, &len);
        len = sizeof sndtimeo;
        real.getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sndtimeo, &len);
        len = sizeof(int);
        real.getsockopt(fd, SOL_SOCKET, SO_BROADCAST, &broadcast, &len);
        status_flags = real.fcntl(fd, F_GETFL);
        fd_flags = real.fcntl(fd, F_GETFD);
    }

    Request request;
    request.op = Op::Socket;
    request.domain = e.domain;
    request.type = e.type;
    request.action = action;
    request.reuse_addr = reuse_addr != 0;
    request.reuse_port = reuse_port != 0;
    request.rcvbuf = rcvbuf;
    request.addr = htonl(addr.addr);
    request.port = htons(addr.port);
    request.value = argument;
    if (e.type == SOCK_STREAM) {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        request.option_count = std::min<uint32_t>(e.replay_count, host::max_replayed_options);
        for (uint32_t i = 0; i < request.option_count; ++i) {
            request.options[i] = host::ReplayedOption{e.replay[i].level, e.replay[i].name, e.replay[i].value};
        }
    }
    Reply reply;
    int app_end = -1;
    if (int err = call_host(request, -1, reply, &app_end); err != 0) {
        return set_errno(err);
    }
    if (reply.error != 0) {
        if (app_end >= 0) {
            real.close(app_end);
        }
        return set_errno(reply.error);
    }
    if (app_end < 0) {
        return set_errno(EPROTO);
    }
    // When the program never bound, connected or listened on the kernel
    // socket the dup3 replaces, nobody can tell when it is destroyed, and
    // destroying it costs ~4 us: an inproc host's thread does that, off
    // the program's thread.
    host::Host* inproc_host = kernel_side_used ? nullptr : caller_host();
    const int replaced = inproc_host != nullptr ? real.fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;
    // The program's epoll registrations move with the fd to the app end
    // (an upstream socket nginx adds before it connects).
    const unsigned watches = take_epoll_watches_off(fd, e);
    if (real.dup3(app_end, fd, (fd_flags >= 0 && (fd_flags & FD_CLOEXEC) != 0) ? O_CLOEXEC : 0) < 0) {
        const int err = errno;
        real.close(app_end);
        if (replaced >= 0) {
            real.close(replaced);
        }
        put_epoll_watches_back(fd, e, watches);
        return set_errno(err);
    }
    put_epoll_watches_back(fd, e, watches);
    real.close(app_end);
    if (replaced >= 0) {
        inproc_host->retire_fd(replaced);
    }
    if (status_flags >= 0 && (status_flags & O_NONBLOCK) != 0) {
        real.fcntl(fd, F_SETFL, real.fcntl(fd, F_GETFL) | O_NONBLOCK);
    }
    if (rcvtimeo.tv_sec != 0 || rcvtimeo.tv_usec != 0) {
        real.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcvtimeo, sizeof rcvtimeo);
    }
    if (sndtimeo.tv_sec != 0 || sndtimeo.tv_usec != 0) {
        real.setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &sndtimeo, sizeof sndtimeo);
    }
    const int domain = e.domain;
    const int type = e.type;
    fd_table().set(fd, FdKind::Ustack, domain, type, action == SocketAction::Connect ? 1 : 0);
    if (type == SOCK_STREAM) {
        e.listening = action == SocketAction::Listen ? 1 : 0;
    }
    if (reply_value != nullptr) {
        *reply_value = reply.value;
    }
    if (reply_flags != nullptr) {
        *reply_flags = reply.flags;
    }
    if (broadcast != 0) {
        FdEntry* entry = fd_table().get(fd, false);
        std::lock_guard<std::mutex> guard(fd_table().lock());
        entry->local_options[0] = LocalOption{SOL_SOCKET, SO_BROADCAST, 1};
    }
    return 0;
}

// Whether a candidate may move at all: UDP always, TCP when the host
// has a TCP engine (Hello's capability_tcp; every host of this tree has).
bool can_move(const FdEntry& e) {
    if (e.type == SOCK_DGRAM) {
        return true;
    }
    return (host_capabilities() & host::capability_tcp) != 0;
}

bool v6only(int fd, const FdEntry& e) {
    if (e.domain != AF_INET6) {
        return false;
    }
    int value = 0;
    socklen_t len = sizeof value;
    real.getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &value, &len);
    return value != 0;
}

// ------------------------------------------------------------ UDP data path

constexpr size_t max_iov = 64;

// Takes a pending socket error (an Error message at the front of the
// queue) if there is one: 0 or the errno.
int take_channel_error(int fd) {
    DatagramHeader header;
    const ssize_t n = real.recv(fd, &header, sizeof header, MSG_PEEK | MSG_DONTWAIT);
    if (n == static_cast<ssize_t>(sizeof header) && header.kind == static_cast<uint8_t>(DatagramKind::Error)) {
        real.recv(fd, &header, sizeof header, MSG_DONTWAIT);
        return static_cast<int>(header.addr);
    }
    return 0;
}

int8_t connected_state(int fd, FdEntry& e) {
    if (e.connected < 0) {
        Request request;
        request.op = Op::GetPeerName;
        Reply reply;
        if (call_host(request, fd, reply) == 0) {
            e.connected = reply.error == 0 ? 1 : 0;
        }
    }
    return e.connected;
}

ssize_t udp_send(int fd, FdEntry& e, const iovec* iov, size_t iovcnt, int flags, const sockaddr* dest,
                 socklen_t dest_len) {
    if (iovcnt + 1 > max_iov) {
        return set_errno(EMSGSIZE);
    }
    size_t total = 0;
    for (size_t i = 0; i < iovcnt; ++i) {
        total += iov[i].iov_len;
    }
    if (total > host::max_udp_payload) {
        return set_errno(EMSGSIZE);
    }
    DatagramHeader header;
    bool has_dest = false;
    if (dest != nullptr && dest_len > 0) {
        Address a;
        if (int err = parse_address(dest, dest_len, a); err != 0) {
            return set_errno(err);
        }
        if (!a.unspec) {
            if (e.domain == AF_INET && dest->sa_family != AF_INET) {
                return set_errno(EAFNOSUPPORT);
            }
            if (a.v6_native || a.v6_any) {
                return set_errno(ENETUNREACH);  // ustack serves IPv4 (and v4-mapped) peers only
            }
            if (!ustack_destination(a.addr)) {
                return set_errno(ENETUNREACH);
            }
            if (a.port == 0) {
                return set_errno(EINVAL);
            }
            header.flags = host::header_has_address;
            header.addr = htonl(a.addr);
            header.port = htons(a.port);
            has_dest = true;
        }
    }
    if (!has_dest) {
        if (connected_state(fd, e) != 1) {
            return set_errno(EDESTADDRREQ);
        }
        // A connected socket's pending error (ICMP port unreachable) fails
        // this send, as in Linux.
        if (int err = take_channel_error(fd); err != 0) {
            return set_errno(err);
        }
    }
    iovec v[max_iov];
    v[0] = iovec{&header, sizeof header};
    for (size_t i = 0; i < iovcnt; ++i) {
        v[i + 1] = iov[i];
    }
    msghdr msg{};
    msg.msg_iov = v;
    msg.msg_iovlen = iovcnt + 1;
    const OutsideLoopWait wait;  // the datagram is the host's to send: it must look
    const ssize_t n = real.sendmsg(fd, &msg, (flags & MSG_DONTWAIT) | MSG_NOSIGNAL);
    if (n < 0) {
        return -1;
    }
    return n - static_cast<ssize_t>(sizeof header);
}

ssize_t udp_recv(int fd, FdEntry& e, const iovec* iov, size_t iovcnt, int flags, sockaddr* from, socklen_t* from_len,
                 int* msg_flags) {
    if ((flags & MSG_ERRQUEUE) != 0) {
        return set_errno(EAGAIN);  // no error queue (IP_RECVERR) on ustack sockets
    }
    if (iovcnt + 1 > max_iov) {
        return set_errno(EINVAL);
    }
    DatagramHeader header;
    iovec v[max_iov];
    v[0] = iovec{&header, sizeof header};
    for (size_t i = 0; i < iovcnt; ++i) {
        v[i + 1] = iov[i];
    }
    msghdr msg{};
    msg.msg_iov = v;
    msg.msg_iovlen = iovcnt + 1;
    const int pass = flags & (MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC | MSG_WAITALL);
    ssize_t n = 0;
    {
        const OutsideLoopWait wait((pass & MSG_DONTWAIT) == 0);
        n = real.recvmsg(fd, &msg, pass);
    }
    if ((pass & MSG_DONTWAIT) != 0) {
        after_app_end_read(n);
    }
    if (n <= 0) {
        return n;  // error, or 0: end of stream (shutdown(SHUT_RD), or the host is gone)
    }
    if (static_cast<size_t>(n) < sizeof header) {
        return set_errno(EIO);
    }
    if (header.kind == static_cast<uint8_t>(DatagramKind::Error)) {
        if ((flags & MSG_PEEK) != 0) {
            real.recv(fd, &header, sizeof header, MSG_DONTWAIT);  // an error is taken even by a peek
        }
        return set_errno(static_cast<int>(header.addr));
    }
    if (from != nullptr && from_len != nullptr) {
        fill_address(e.domain, header.addr, header.port, from, from_len);
    }
    if (msg_flags != nullptr) {
        *msg_flags = msg.msg_flags & MSG_TRUNC;
    }
    return n - static_cast<ssize_t>(sizeof header);
}

int udp_first_datagram_size(int fd) {
    DatagramHeader header;
    const ssize_t n = real.recv(fd, &header, sizeof header, MSG_PEEK | MSG_DONTWAIT | MSG_TRUNC);
    if (n < static_cast<ssize_t>(sizeof header) || header.kind != static_cast<uint8_t>(DatagramKind::Data)) {
        return 0;
    }
    return static_cast<int>(n - static_cast<ssize_t>(sizeof header));
}

// ------------------------------------------------------------ options kept locally

bool local_option(FdEntry& e, int level, int name, int* value) {
    std::lock_guard<std::mutex> guard(fd_table().lock());
    for (const LocalOption& o : e.local_options) {
        if (o.level == level && o.name == name && o.level != 0) {
            *value = o.value;
            return true;
        }
    }
    return false;
}

void store_local_option(FdEntry& e, int level, int name, int value) {
    std::lock_guard<std::mutex> guard(fd_table().lock());
    LocalOption* free_slot = nullptr;
    for (LocalOption& o : e.local_options) {
        if (o.level == level && o.name == name && o.level != 0) {
            o.value = value;
            return;
        }
        if (o.level == 0 && free_slot == nullptr) {
            free_slot = &o;
        }
    }
    if (free_slot != nullptr) {
        *free_slot = LocalOption{level, name, value};
    }
}

int default_local_option(int level, int name) {
    if (level == IPPROTO_IP && name == IP_TTL) {
        return 64;
    }
    if (level == IPPROTO_IP && (name == IP_MULTICAST_TTL || name == IP_MULTICAST_LOOP)) {
        return 1;
    }
    if (level == IPPROTO_IP && name == IP_MTU_DISCOVER) {
        return IP_PMTUDISC_DONT;
    }
    return 0;
}

int write_int_option(int value, void* out, socklen_t* len) {
    if (out == nullptr || len == nullptr || *len < static_cast<socklen_t>(sizeof(int))) {
        return set_errno(EINVAL);
    }
    std::memcpy(out, &value, sizeof value);
    *len = sizeof value;
    return 0;
}

// ------------------------------------------------------------ TCP

std::atomic<bool> v6_warned{false};

// Native IPv6 (not v4-mapped, not ::1): ustack does not carry it, and
// sending it to the kernel instead would silently leave ustack's rules.
int refuse_native_v6(int error) {
    message_once(v6_warned, "native IPv6 is not supported by ustack (IPv4 and v4-mapped addresses only)");
    return set_errno(error);
}

// ------------------------------------------------------------ inproc: the app thread works the loop
//
// With the host in this process, a TCP send goes straight into the engine
// and out to the device on the app's thread, and a read (or a blocking
// connect) that would block works the host's loop on the app's thread
// instead of sleeping until the host thread has been woken and has woken
// it (Host::caller_send, Host::caller_wait; host_caller.cpp says why).
// Everything else, and every case these decline, goes through the pair
// as in daemon mode.

// The inproc host serving this process, or nullptr (daemon mode, another
// process's host, or a forked child: the host thread stayed in the parent).
host::Host* caller_host() {
    InprocHost* p = inproc.load(std::memory_order_acquire);
    if (p == nullptr || !owned_here(p)) {
        return nullptr;
    }
    return p->host.get();
}

// SO_RCVTIMEO / SO_SNDTIMEO of the app end as a deadline from now.
std::optional<Instant> timeout_deadline(int fd, int option) {
    timeval timeout{};
    socklen_t len = sizeof timeout;
    if (real.getsockopt(fd, SOL_SOCKET, option, &timeout, &len) < 0 || (timeout.tv_sec == 0 && timeout.tv_usec == 0)) {
        return std::nullopt;
    }
    return host::monotonic_now() +
           Duration::from_micros(static_cast<int64_t>(timeout.tv_sec) * 1000000 + timeout.tv_usec);
}

// After a signal interrupted a wait: whether a blocking socket call
// restarts (SA_RESTART, and no timeout: sock_intr_errno) or fails with
// EINTR. Which signal it was is not known here, so it restarts only when
// every caught signal has SA_RESTART (rare path: one sigaction per signal).
bool restarts_after_signal(bool has_timeout) {
    if (has_timeout) {
        return false;
    }
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction action {};
        if (::sigaction(sig, nullptr, &action) == 0 && action.sa_handler != SIG_DFL &&
            action.sa_handler != SIG_IGN && (action.sa_flags & SA_RESTART) == 0) {
            return false;
        }
    }
    return true;
}

// A blocking wait on the app end, made on this thread by working the
// host's loop until `ready(own_fd)` (Host::caller_wait). Returns false
// when the host does not serve it this way: then the caller blocks on the
// app end. Otherwise true, with -1/errno in `result` for a timeout
// (EAGAIN, EINPROGRESS for connect) or a signal (EINTR), else `result`
// as ready() left it.
bool wait_on_this_thread(host::Host& h, int fd, int timeout_option, int timeout_errno,
                         const std::function<bool(int)>& ready, ssize_t& result,
                         host::TcpHostSocket::LentBuffer* read_into = nullptr) {
    const std::optional<Instant> deadline = timeout_deadline(fd, timeout_option);
    // The wait holds its own reference to the socket, as a blocked recv
    // holds the file: another thread's close(fd) (or dup2 over it) neither
    // ends the connection under us nor lets us read whatever file took the
    // number meanwhile.
    struct OwnReference {
        int fd;
        ~OwnReference() {
            // The last reference if the app closed its fd meanwhile: the
            // host sees the hang-up then. errno stays the wait's.
            const int saved = errno;
            real.close(fd);
            host_must_look();  // the app's close() left the hang-up to this wait
            errno = saved;
        }
    };
    const int own = real.fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (own < 0) {
        return false;
    }
    const OwnReference reference{own};
    const std::function<bool()> ready_own = [&] { return ready(own); };
    bool served = true;
    for (bool waiting = true; waiting;) {
        waiting = false;
        switch (h.caller_wait(own, ready_own, deadline, read_into)) {
        case host::Host::CallerWait::ready:
            break;
        case host::Host::CallerWait::timed_out:
            result = set_errno(timeout_errno);
            break;
        case host::Host::CallerWait::interrupted:
            if (restarts_after_signal(deadline.has_value())) {
                waiting = true;
                break;
            }
            result = set_errno(EINTR);
            break;
        case host::Host::CallerWait::not_served:
            served = false;
            break;
        }
    }
    return served;
}

// Whether fd's open file is in non-blocking mode (O_NONBLOCK is shared
// by every dup and every process holding it: asked, not remembered).
bool nonblocking(int fd) {
    const int status = real.fcntl(fd, F_GETFL);
    return status >= 0 && (status & O_NONBLOCK) != 0;
}

// recvmsg on a TCP app end, blocking unless flags or the file say not to;
// a read that would block works the inproc host's loop on this thread.
ssize_t recvmsg_app_end(int fd, msghdr& msg, int flags) {
    host::Host* h = caller_host();
    if (h == nullptr || (flags & (MSG_DONTWAIT | MSG_WAITALL)) != 0) {
        const OutsideLoopWait wait(h != nullptr && (flags & MSG_DONTWAIT) == 0);
        const ssize_t n = real.recvmsg(fd, &msg, flags);
        after_app_end_read(n);
        return n;
    }
    ssize_t n = real.recvmsg(fd, &msg, flags | MSG_DONTWAIT);
    if (n >= 0 || errno != EAGAIN || nonblocking(fd)) {
        after_app_end_read(n);
        return n;
    }
    auto ready = [&](int own) {
        n = real.recvmsg(own, &msg, flags | MSG_DONTWAIT);
        return n >= 0 || errno != EAGAIN;
    };
    const int saved = errno;
    // Not for a peek: the bytes lent out are consumed.
    host::TcpHostSocket::LentBuffer lent{msg.msg_iov, msg.msg_iovlen};
    if (wait_on_this_thread(*h, fd, SO_RCVTIMEO, EAGAIN, ready, n, (flags & MSG_PEEK) != 0 ? nullptr : &lent)) {
        if (lent.got > 0) {
            msg.msg_flags = 0;
            return static_cast<ssize_t>(lent.got);
        }
        return n;  // errno as the last recvmsg (or the timeout, or EINTR) left it
    }
    errno = saved;
    const OutsideLoopWait wait;
    return real.recvmsg(fd, &msg, flags);
}

// The socket's pending error (SO_ERROR), 0 when none or unreachable.
int take_tcp_error(int fd) {
    Request request;
    request.op = Op::GetSockOpt;
    request.level = SOL_SOCKET;
    request.name = SO_ERROR;
    Reply reply;
    if (call_host(request, fd, reply) != 0 || reply.error != 0) {
        return 0;
    }
    return static_cast<int>(reply.value);
}

// Whether a read's end of stream may stand for an error the host keeps.
// The host shuts down both directions of its end when a connection fails
// (TcpHostSocket::fail_connection, fail_connect: the app end shows
// POLLHUP), but only its writes on a peer's FIN (POLLRDHUP alone: the app
// may still send, as in CLOSE_WAIT). A zero-timeout poll is local; asking
// the host is a round trip through its thread.
bool end_of_stream_may_hide_error(int fd) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) != 1) {
        return true;
    }
    return (p.revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
}

// After a connect answered EINPROGRESS: a non-blocking socket says so; a
// blocking one waits for the handshake (bounded by SO_SNDTIMEO, as
// sk_sndtimeo bounds inet_stream_connect) and returns its result.
int finish_tcp_connect(int fd, int64_t reply_value, uint32_t reply_flags) {
    if (reply_value != EINPROGRESS) {
        return 0;
    }
    const int status = real.fcntl(fd, F_GETFL);
    if (status >= 0 && (status & O_NONBLOCK) != 0) {
        return set_errno(EINPROGRESS);
    }
    if ((reply_flags & host::reply_connected) != 0) {
        // Established within the call (the host runs on this thread).
        if (FdEntry* e = fd_table().get(fd, false); e != nullptr) {
            e->connect_completion_owed = 1;
        }
        return 0;
    }
    timeval timeout{};
    socklen_t len = sizeof timeout;
    real.getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, &len);
    const int timeout_ms = (timeout.tv_sec == 0 && timeout.tv_usec == 0)
                               ? -1
                               : static_cast<int>(timeout.tv_sec * 1000 + (timeout.tv_usec + 999) / 1000);
    pollfd p{fd, POLLOUT, 0};
    int n = -2;
    if (host::Host* h = caller_host(); h != nullptr) {
        // The handshake's answer is taken on this thread (see tcp_send).
        ssize_t waited = 0;
        auto ready = [&](int own) {
            pollfd q{own, POLLOUT, 0};
            n = ::poll(&q, 1, 0);
            p.revents = q.revents;
            return n != 0;
        };
        if (wait_on_this_thread(*h, fd, SO_SNDTIMEO, EINPROGRESS, ready, waited) && waited < 0) {
            return -1;  // EINPROGRESS (timeout) or EINTR: the handshake goes on, as in Linux
        }
    }
    if (n == -2 || n == 0) {
        const OutsideLoopWait wait(timeout_ms != 0);
        n = ::poll(&p, 1, timeout_ms);
    }
    if (n < 0) {
        return -1;  // EINTR: the handshake goes on, as in Linux
    }
    if (n == 0) {
        return set_errno(EINPROGRESS);
    }
    // A failed handshake shows as POLLERR|POLLHUP on the app end (the host
    // drops its end, see TcpHostSocket::fail_connect); only then is there
    // an error to ask the host for. Plain POLLOUT is an established
    // connection: no round trip.
    if ((p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) {
        if (const int err = take_tcp_error(fd); err != 0) {
            return set_errno(err);
        }
    }
    // A blocking connect leaves the socket connected (SS_CONNECTED): the
    // next connect() is EISCONN. The host learns it lazily (FdEntry::
    // connect_completion_owed), should the app ever call connect() again.
    if (FdEntry* e = fd_table().get(fd, false); e != nullptr) {
        e->connect_completion_owed = 1;
    }
    return 0;
}

// Settles a blocking connect's completion with the host before another
// connect() on the same socket (see FdEntry::connect_completion_owed).
// The address is the new call's: a connecting socket's connect() does not
// look at it (__inet_stream_connect, SS_CONNECTING).
void settle_connect_completion(int fd, FdEntry& e, const Address& remote) {
    if (e.connect_completion_owed == 0) {
        return;
    }
    e.connect_completion_owed = 0;
    Request again;
    again.op = Op::Connect;
    again.addr = htonl(remote.addr);
    again.port = htons(remote.port);
    Reply reply;
    (void)call_host(again, fd, reply);
}

// A TCP socket that never connected (bound, listening, or disconnected
// with AF_UNSPEC): Linux fails a send with EPIPE (sk_stream_wait_connect)
// and a receive with ENOTCONN (tcp_recvmsg); its app end would take the
// bytes and lose them, or block a read forever. The table says
// `connected == 0`, but it can be stale (the socket connected through a
// dup, or in another process): then the host decides, once.
bool tcp_never_connected(int fd) {
    FdEntry* e = fd_table().get(fd, false);
    if (e == nullptr || e->connected != 0) {
        return false;
    }
    Request request;
    request.op = Op::GetPeerName;
    Reply reply;
    if (call_host(request, fd, reply) != 0) {
        return false;  // the host is unreachable: the pair says what it says
    }
    if (reply.error == 0) {
        e->connected = 1;
        return false;
    }
    return reply.error == ENOTCONN;
}

ssize_t tcp_send(int fd, const iovec* iov, size_t iovcnt, int flags) {
    if (tcp_never_connected(fd)) {
        if ((flags & MSG_NOSIGNAL) == 0) {
            ::raise(SIGPIPE);
        }
        return set_errno(EPIPE);
    }
    size_t taken = 0;
    if (host::Host* h = caller_host();
        h != nullptr && (flags & ~(MSG_DONTWAIT | MSG_NOSIGNAL)) == 0 && iovcnt <= max_iov) {
        size_t total = 0;
        for (size_t i = 0; i < iovcnt; ++i) {
            total += iov[i].iov_len;
        }
        if (auto direct = h->caller_send(fd, iov, iovcnt)) {
            taken = *direct;
            if (taken >= total) {
                return static_cast<ssize_t>(taken);
            }
        }
    }
    if (taken > 0) {
        // The engine's buffer took the first bytes; the rest waits in the
        // pair, behind them, as a send that blocks or says EAGAIN there.
        iovec rest[max_iov];
        size_t count = 0;
        size_t skip = taken;
        for (size_t i = 0; i < iovcnt && count < max_iov; ++i) {
            if (skip >= iov[i].iov_len) {
                skip -= iov[i].iov_len;
                continue;
            }
            rest[count++] = iovec{static_cast<uint8_t*>(iov[i].iov_base) + skip, iov[i].iov_len - skip};
            skip = 0;
        }
        msghdr msg{};
        msg.msg_iov = rest;
        msg.msg_iovlen = count;
        const OutsideLoopWait wait;  // what goes into the pair is the host thread's to move
        const ssize_t n = real.sendmsg(fd, &msg, (flags & MSG_DONTWAIT) | MSG_NOSIGNAL);
        return static_cast<ssize_t>(taken) + std::max<ssize_t>(n, 0);  // bytes taken are never unsent
    }
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = iovcnt;
    // MSG_NOSIGNAL always: a reset connection fails with its error
    // (ECONNRESET) first, EPIPE and SIGPIPE only after (tcp_sendmsg →
    // sk_stream_error).
    ssize_t n = 0;
    {
        const OutsideLoopWait wait;  // what goes into the pair is the host thread's to move
        n = real.sendmsg(fd, &msg, (flags & MSG_DONTWAIT) | MSG_NOSIGNAL);
    }
    if (n < 0 && errno == EPIPE) {
        if (const int err = take_tcp_error(fd); err != 0) {
            return set_errno(err);
        }
        if ((flags & MSG_NOSIGNAL) == 0) {
            ::raise(SIGPIPE);
        }
        return set_errno(EPIPE);
    }
    return n;
}

ssize_t tcp_recv(int fd, const iovec* iov, size_t iovcnt, int flags, int* msg_flags) {
    if (tcp_never_connected(fd)) {
        return set_errno(ENOTCONN);
    }
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = iovcnt;
    size_t wanted = 0;
    for (size_t i = 0; i < iovcnt; ++i) {
        wanted += iov[i].iov_len;
    }
    ssize_t n = recvmsg_app_end(fd, msg, flags & (MSG_PEEK | MSG_DONTWAIT | MSG_WAITALL));
    if (n < 0 && errno == ECONNRESET) {
        // The host released its end after a failed connect (that is what
        // gives the app end POLLERR): the real error is the host's; once
        // taken (SO_ERROR), a read is end of stream, as tcp_recvmsg after
        // tcp_done.
        if (const int err = take_tcp_error(fd); err != 0) {
            return set_errno(err);
        }
        n = 0;
    }
    if (n == 0 && wanted > 0 && end_of_stream_may_hide_error(fd)) {
        // End of stream: a FIN, or a failure (reset, timeout, refused
        // connect) whose error the host keeps; Linux reports the error.
        if (const int err = take_tcp_error(fd); err != 0) {
            return set_errno(err);
        }
    }
    if (msg_flags != nullptr) {
        *msg_flags = 0;
    }
    return n;
}

// The connection is the program's now: its ticket goes back on the
// listener's pair before accept() returns, so before the program can close
// it, and the host tells that close (FIN) from a connection dropped
// unaccepted with its listener (RST; AcceptLedger). A full pair (a burst
// of accepts while the host reads nothing) is waited out, with the host
// brought back to read; a listener closed meanwhile by another thread gets
// nothing (its number may be another file's by now; should it be another
// ustack listener's already, the host ignores a ticket it did not issue).
void answer_accept(int fd, FdEntry& e, uint32_t ticket) {
    const int saved = errno;
    for (int tries = 0; tries < 200; ++tries) {
        if (e.get_kind() != FdKind::Ustack || e.listening != 1) {
            break;
        }
        const ssize_t n = real.send(fd, &ticket, sizeof ticket, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            break;  // 4 bytes go whole on a stream pair, or not at all
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            pollfd p{fd, POLLOUT, 0};
            const OutsideLoopWait wait;
            real.poll(&p, 1, 10);
        }
    }
    errno = saved;
}

int tcp_accept(int fd, FdEntry& e, sockaddr* addr, socklen_t* len, int flags) {
    if ((flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) != 0) {
        return set_errno(EINVAL);
    }
    if (e.listening != 1) {
        Request request;
        request.op = Op::GetSockOpt;
        request.level = SOL_SOCKET;
        request.name = SO_ACCEPTCONN;
        Reply reply;
        if (socket_call(fd, request, reply) < 0) {
            return -1;
        }
        if (reply.value == 0) {
            return set_errno(EINVAL);  // inet_accept: not listening
        }
        e.listening = 1;
    }
    // One message per connection: the peer address, a ticket and the
    // connection's app end. The listener's own O_NONBLOCK and SO_RCVTIMEO
    // apply.
    host::AcceptHeader header;
    int conn = -1;
    ssize_t n = 0;
    {
        const OutsideLoopWait wait;
        n = host::recv_with_fd(fd, &header, sizeof header, &conn, 0);
    }
    after_app_end_read(n);
    if (n < 0) {
        return -1;
    }
    if (n == 0) {
        return set_errno(EINVAL);  // the listener was shut down
    }
    if (conn < 0 || n != static_cast<ssize_t>(sizeof header)) {
        if (conn >= 0) {
            real.close(conn);
        }
        return set_errno(EPROTO);
    }
    answer_accept(fd, e, header.ticket);
    if ((flags & SOCK_CLOEXEC) == 0) {
        real.fcntl(conn, F_SETFD, real.fcntl(conn, F_GETFD) & ~FD_CLOEXEC);
    }
    if ((flags & SOCK_NONBLOCK) != 0) {
        real.fcntl(conn, F_SETFL, real.fcntl(conn, F_GETFL) | O_NONBLOCK);
    }
    fd_table().set(conn, FdKind::Ustack, e.domain, SOCK_STREAM, 1);
    if (FdEntry* c = fd_table().get(conn, false)) {
        c->listening = 0;
    }
    fill_address(e.domain, header.peer.addr, header.peer.port, addr, len);
    return conn;
}

// Options of a TCP socket the stack socket owns (engine options).
bool tcp_stack_option(int level, int name) {
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_REUSEADDR:
        case SO_REUSEPORT:
        case SO_RCVBUF:
        case SO_RCVBUFFORCE:
        case SO_SNDBUF:
        case SO_SNDBUFFORCE:
        case SO_KEEPALIVE:
        case SO_LINGER:
            return true;
        default:
            return false;
        }
    }
    if (level == IPPROTO_TCP) {
        switch (name) {
        case TCP_NODELAY:
        case TCP_CORK:
        case TCP_QUICKACK:
        case TCP_KEEPIDLE:
        case TCP_KEEPINTVL:
        case TCP_KEEPCNT:
        case TCP_USER_TIMEOUT:
        case TCP_MAXSEG:
            return true;
        default:
            return false;
        }
    }
    return false;
}

// The option's value as one int64 (SO_LINGER: on << 32 | seconds), or an errno.
int option_value(int level, int name, const void* value, socklen_t len, int64_t* out) {
    if (level == SOL_SOCKET && name == SO_LINGER) {
        if (value == nullptr || len < static_cast<socklen_t>(sizeof(linger))) {
            return EINVAL;
        }
        linger l;
        std::memcpy(&l, value, sizeof l);
        *out = host::TcpHostSocket::encode_linger(l.l_onoff != 0, l.l_linger);
        return 0;
    }
    if (value == nullptr || len < static_cast<socklen_t>(sizeof(int))) {
        return EINVAL;
    }
    int v;
    std::memcpy(&v, value, sizeof v);
    *out = v;
    return 0;
}

// A candidate TCP socket remembers what the stack socket must get.
void remember_for_replay(FdEntry& e, int level, int name, int64_t value) {
    std::lock_guard<std::mutex> guard(fd_table().lock());
    for (uint8_t i = 0; i < e.replay_count; ++i) {
        if (e.replay[i].level == level && e.replay[i].name == name) {
            e.replay[i].value = value;
            return;
        }
    }
    if (e.replay_count < FdEntry::max_replay_options) {
        e.replay[e.replay_count++] = FdEntry::ReplayOption{level, name, value};
    }
}

int tcp_setsockopt(int fd, FdEntry& e, int level, int name, const void* value, socklen_t len) {
    if (tcp_stack_option(level, name)) {
        int64_t v = 0;
        if (int err = option_value(level, name, value, len, &v); err != 0) {
            return set_errno(err);
        }
        Request request;
        request.op = Op::SetSockOpt;
        request.level = level;
        request.name = name;
        request.value = v;
        Reply reply;
        return socket_call(fd, request, reply);
    }
    const bool is_int = value != nullptr && len >= static_cast<socklen_t>(sizeof(int));
    int v = 0;
    if (is_int) {
        std::memcpy(&v, value, sizeof v);
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_RCVTIMEO:
        case SO_SNDTIMEO:
        case SO_RCVTIMEO_NEW:
        case SO_SNDTIMEO_NEW:
        case SO_RCVLOWAT:
            return real.setsockopt(fd, level, name, value, len);  // the app end's own waits
        default:
            if (is_int) {
                store_local_option(e, level, name, v);
            }
            return 0;  // SO_PRIORITY, SO_MARK, SO_OOBINLINE...: kept
        }
    }
    if (level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
        // TCP_DEFER_ACCEPT, TCP_FASTOPEN, TCP_NOTSENT_LOWAT, TCP_CONGESTION,
        // IP_TOS, IP_BIND_ADDRESS_NO_PORT (the engine picks the port at
        // connect anyway)...: accepted and kept, not applied.
        if (is_int) {
            store_local_option(e, level, name, v);
        }
        return 0;
    }
    return set_errno(ENOPROTOOPT);
}

int tcp_getsockopt(int fd, FdEntry& e, int level, int name, void* value, socklen_t* len) {
    if (value == nullptr || len == nullptr) {
        return set_errno(EFAULT);
    }
    if (level == IPPROTO_TCP && name == TCP_INFO) {
        Request request;
        request.op = Op::TcpInfo;
        Reply reply;
        std::string text;
        if (int err = call_host(request, fd, reply, nullptr, &text); err != 0) {
            return set_errno(err);
        }
        if (reply.error != 0) {
            return set_errno(reply.error);
        }
        const size_t n = std::min<size_t>(text.size(), static_cast<size_t>(std::max<socklen_t>(*len, 0)));
        std::memcpy(value, text.data(), n);
        *len = static_cast<socklen_t>(n);
        return 0;
    }
    const bool ask_host = tcp_stack_option(level, name) ||
                          (level == SOL_SOCKET && (name == SO_ERROR || name == SO_ACCEPTCONN));
    if (ask_host) {
        if (name == SO_LINGER && level == SOL_SOCKET) {
            if (*len < static_cast<socklen_t>(sizeof(linger))) {
                return set_errno(EINVAL);
            }
        } else if (*len < static_cast<socklen_t>(sizeof(int))) {
            return set_errno(EINVAL);
        }
        Request request;
        request.op = Op::GetSockOpt;
        request.level = level;
        request.name = name;
        Reply reply;
        if (socket_call(fd, request, reply) < 0) {
            return -1;
        }
        if (level == SOL_SOCKET && name == SO_LINGER) {
            linger l{};
            l.l_onoff = (reply.value >> 32) != 0 ? 1 : 0;
            l.l_linger = static_cast<int>(reply.value & 0xffffffff);
            std::memcpy(value, &l, sizeof l);
            *len = sizeof l;
            return 0;
        }
        if (level == SOL_SOCKET && name == SO_ACCEPTCONN) {
            e.listening = reply.value != 0 ? 1 : 0;
        }
        return write_int_option(static_cast<int>(reply.value), value, len);
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_TYPE:
            return write_int_option(SOCK_STREAM, value, len);
        case SO_DOMAIN:
            return write_int_option(e.domain, value, len);
        case SO_PROTOCOL:
            return write_int_option(IPPROTO_TCP, value, len);
        case SO_RCVTIMEO:
        case SO_SNDTIMEO:
        case SO_RCVTIMEO_NEW:
        case SO_SNDTIMEO_NEW:
        case SO_RCVLOWAT:
            return real.getsockopt(fd, level, name, value, len);
        default:
            break;
        }
    }
    if (level == SOL_SOCKET || level == IPPROTO_TCP || level == IPPROTO_IP || level == IPPROTO_IPV6) {
        int v = default_local_option(level, name);
        local_option(e, level, name, &v);
        return write_int_option(v, value, len);
    }
    return set_errno(ENOPROTOOPT);
}

FdEntry* tcp_entry(int fd) {
    FdEntry* e = ustack_entry(fd);
    return e != nullptr && e->type == SOCK_STREAM ? e : nullptr;
}

// ------------------------------------------------------------ the calls

int shim_socket(int domain, int type, int protocol) {
    // Before the socket exists: a fork from another thread in between
    // must count as one this socket may have been shared through.
    const uint32_t generation = fork_generation();
    if (domain == AF_INET && (type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) == SOCK_STREAM &&
        (protocol == 0 || protocol == IPPROTO_TCP) && config().enabled) {
        if (host::Host* h = caller_host(); h != nullptr) {
            if (const int fd = pair_backed_socket(*h, type, generation); fd >= 0) {
                return fd;
            }
        }
    }
    int fd = real.socket(domain, type, protocol);
    if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
        // What an inproc host holds for later must not cost the program
        // an fd it could have had.
        if (host::Host* h = caller_host(); h != nullptr && h->release_reserved_fds()) {
            fd = real.socket(domain, type, protocol);
        }
    }
    if (fd < 0 || !config().enabled) {
        return fd;
    }
    const int base_type = type & ~(SOCK_NONBLOCK | SOCK_CLOEXEC);
    const bool inet = domain == AF_INET || domain == AF_INET6;
    const bool udp = base_type == SOCK_DGRAM && (protocol == 0 || protocol == IPPROTO_UDP);
    const bool tcp = base_type == SOCK_STREAM && (protocol == 0 || protocol == IPPROTO_TCP);
    const bool candidate = inet && (udp || tcp);
    fd_table().set(fd, candidate ? FdKind::Candidate : FdKind::Kernel, domain, base_type);
    if (FdEntry* e = fd_table().get(fd, false); candidate && e != nullptr) {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        e->created_nonblock = (type & SOCK_NONBLOCK) != 0 ? 1 : 0;
        e->created_cloexec = (type & SOCK_CLOEXEC) != 0 ? 1 : 0;
        e->fork_generation = generation;
        e->creation_flags_hold = 1;
    }
    return fd;
}

// Something may have changed a candidate's flags or SOL_SOCKET options:
// the swap reads them back from the kernel socket.
void forget_creation_flags(int fd) {
    FdEntry* e = fd_table().get(fd, false);
    if (e != nullptr && e->get_kind() == FdKind::Candidate) {
        std::lock_guard<std::mutex> guard(fd_table().lock());
        e->creation_flags_hold = 0;
    }
}

// A candidate about to be bound, connected or listened on by the kernel.
void note_kernel_side_use(FdEntry& e) {
    std::lock_guard<std::mutex> guard(fd_table().lock());
    e.kernel_side_used = 1;
}

int shim_bind(int fd, const sockaddr* addr, socklen_t len) {
    FdEntry* e = socket_entry(fd);
    if (e == nullptr) {
        return real.bind(fd, addr, len);
    }
    const FdKind kind = e->get_kind();
    if (kind == FdKind::Candidate) {
        Address a;
        // Native IPv6 addresses (and v6-only wildcards) belong to the
        // kernel's interfaces: bound there, such a socket never talks to
        // ustack's peers (nginx's `listen [::]` is v6-only by default).
        if (parse_address(addr, len, a) != 0 || a.unspec || a.v6_native ||
            (e->domain == AF_INET && addr->sa_family != AF_INET) || !ustack_bind_address(a.addr) ||
            (a.v6_any && v6only(fd, *e)) || !can_move(*e)) {
            if (settle_pair(fd) < 0) {
                return -1;
            }
            note_kernel_side_use(*e);
            const int rc = real.bind(fd, addr, len);
            if (rc == 0) {
                fd_table().set(fd, FdKind::Kernel, e->domain, e->type);
            }
            return rc;
        }
        return swap_to_ustack(fd, *e, SocketAction::Bind, a);
    }
    if (kind != FdKind::Ustack) {
        return real.bind(fd, addr, len);
    }
    Address a;
    if (int err = parse_address(addr, len, a); err != 0) {
        return set_errno(err);
    }
    if (e->domain == AF_INET && addr->sa_family != AF_INET) {
        return set_errno(EAFNOSUPPORT);
    }
    if (a.v6_native) {
        return set_errno(EADDRNOTAVAIL);
    }
    Request request;
    request.op = Op::Bind;
    request.addr = htonl(a.addr);
    request.port = htons(a.port);
    Reply reply;
    return socket_call(fd, request, reply);
}

int shim_connect(int fd, const sockaddr* addr, socklen_t len) {
    FdEntry* e = socket_entry(fd);
    if (e == nullptr) {
        return real.connect(fd, addr, len);
    }
    const FdKind kind = e->get_kind();
    if (kind == FdKind::Candidate) {
        Address a;
        const int parsed = parse_address(addr, len, a);
        if (parsed == 0 && a.v6_native && !a.v6_loopback && !v6only(fd, *e)) {
            return refuse_native_v6(ENETUNREACH);  // AF_INET6 only: never pair-backed
        }
        if (parsed != 0 || a.unspec || a.v6_native || a.v6_any ||
            (e->domain == AF_INET && addr->sa_family != AF_INET) || !ustack_destination(a.addr) || !can_move(*e)) {
            if (settle_pair(fd) < 0) {
                return -1;
            }
            note_kernel_side_use(*e);
            const int rc = real.connect(fd, addr, len);
            if (rc == 0 || errno == EINPROGRESS) {
                fd_table().set(fd, FdKind::Kernel, e->domain, e->type);
            }
            return rc;
        }
        int64_t value = 0;
        uint32_t reply_flags = 0;
        if (swap_to_ustack(fd, *e, SocketAction::Connect, a, 0, &value, &reply_flags) < 0) {
            return -1;
        }
        return e->type == SOCK_STREAM ? finish_tcp_connect(fd, value, reply_flags) : 0;
    }
    if (kind != FdKind::Ustack) {
        return real.connect(fd, addr, len);
    }
    Address a;
    if (int err = parse_address(addr, len, a); err != 0) {
        return set_errno(err);
    }
    if (e->type == SOCK_STREAM) {
        settle_connect_completion(fd, *e, a);
    }
    Request request;
    request.op = Op::Connect;
    if (a.unspec) {
        request.family_unspec = 1;
    } else {
        if (e->domain == AF_INET && addr->sa_family != AF_INET) {
            return set_errno(EAFNOSUPPORT);
        }
        if (a.v6_native && !a.v6_loopback) {
            return refuse_native_v6(ENETUNREACH);
        }
        if (a.v6_native || a.v6_any || !ustack_destination(a.addr)) {
            return set_errno(ENETUNREACH);
        }
        request.addr = htonl(a.addr);
        request.port = htons(a.port);
    }
    Reply reply;
    if (socket_call(fd, request, reply) < 0) {
        return -1;
    }
    e->connected = a.unspec ? 0 : 1;
    return e->type == SOCK_STREAM ? finish_tcp_connect(fd, reply.value, reply.flags) : 0;
}

int shim_listen(int fd, int backlog) {
    FdEntry* e = socket_entry(fd);
    if (is_ustack(e)) {
        if (e->type == SOCK_DGRAM) {
            return set_errno(EOPNOTSUPP);
        }
        Request request;
        request.op = Op::Listen;
        request.value = backlog;
        Reply reply;
        if (socket_call(fd, request, reply) < 0) {
            return -1;
        }
        e->listening = 1;
        return 0;
    }
    // An unbound TCP socket that listens listens on the wildcard with an
    // ephemeral port (inet_autobind): ustack's, unless it is v6-only.
    if (e != nullptr && e->get_kind() == FdKind::Candidate && e->type == SOCK_STREAM && !v6only(fd, *e) &&
        can_move(*e)) {
        return swap_to_ustack(fd, *e, SocketAction::Listen, Address{}, backlog);
    }
    if (e != nullptr && e->get_kind() == FdKind::Candidate) {
        if (settle_pair(fd) < 0) {
            return -1;
        }
        note_kernel_side_use(*e);
        const int rc = real.listen(fd, backlog);
        if (rc == 0) {
            fd_table().set(fd, FdKind::Kernel, e->domain, e->type);  // listening on the kernel's side now
        }
        return rc;
    }
    return real.listen(fd, backlog);
}

int shim_accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    FdEntry* e = socket_entry(fd);
    if (is_ustack(e)) {
        if (e->type != SOCK_STREAM) {
            return set_errno(EOPNOTSUPP);
        }
        return tcp_accept(fd, *e, addr, len, flags);
    }
    return real.accept4(fd, addr, len, flags);
}

int shim_getsockname(int fd, sockaddr* addr, socklen_t* len) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    FdEntry* e = socket_entry(fd);
    if (!is_ustack(e)) {
        return real.getsockname(fd, addr, len);
    }
    if (addr == nullptr || len == nullptr) {
        return set_errno(EFAULT);
    }
    Request request;
    request.op = Op::GetSockName;
    Reply reply;
    if (socket_call(fd, request, reply) < 0) {
        return -1;
    }
    fill_address(e->domain, reply.addr, reply.port, addr, len);
    return 0;
}

int shim_getpeername(int fd, sockaddr* addr, socklen_t* len) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    FdEntry* e = socket_entry(fd);
    if (!is_ustack(e)) {
        return real.getpeername(fd, addr, len);
    }
    if (addr == nullptr || len == nullptr) {
        return set_errno(EFAULT);
    }
    Request request;
    request.op = Op::GetPeerName;
    Reply reply;
    if (socket_call(fd, request, reply) < 0) {
        if (errno == ENOTCONN) {
            e->connected = 0;
        }
        return -1;
    }
    e->connected = 1;
    fill_address(e->domain, reply.addr, reply.port, addr, len);
    return 0;
}

int shim_setsockopt(int fd, int level, int name, const void* value, socklen_t len) {
    FdEntry* e = socket_entry(fd);
    if (pair_backed(e)) {
        if (auto handled = pair_setsockopt(fd, *e, level, name, value, len)) {
            return *handled;
        }
        if (materialize_pair(fd, *e) < 0) {
            return -1;
        }
    }
    if (!is_ustack(e)) {
        const int rc = real.setsockopt(fd, level, name, value, len);
        if (level == SOL_SOCKET) {
            forget_creation_flags(fd);
        }
        if (rc == 0 && e != nullptr && e->get_kind() == FdKind::Candidate && e->type == SOCK_STREAM &&
            tcp_stack_option(level, name) && name != SO_REUSEADDR && name != SO_REUSEPORT) {
            int64_t v = 0;
            if (option_value(level, name, value, len, &v) == 0) {
                remember_for_replay(*e, level, name, v);
            }
        }
        return rc;
    }
    if (e->type == SOCK_STREAM) {
        return tcp_setsockopt(fd, *e, level, name, value, len);
    }
    int v = 0;
    const bool is_int = value != nullptr && len >= static_cast<socklen_t>(sizeof(int));
    if (is_int) {
        std::memcpy(&v, value, sizeof v);
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_REUSEADDR:
        case SO_REUSEPORT:
        case SO_RCVBUF:
        case SO_RCVBUFFORCE: {
            if (!is_int) {
                return set_errno(EINVAL);
            }
            Request request;
            request.op = Op::SetSockOpt;
            request.level = level;
            request.name = name;
            request.value = v;
            Reply reply;
            return socket_call(fd, request, reply);
        }
        case SO_BROADCAST:
        case SO_PRIORITY:
        case SO_MARK:
        case SO_NO_CHECK:
        case SO_TIMESTAMP:
        case SO_TIMESTAMPNS:
        case SO_BINDTODEVICE:
            // Kept, not applied (the stack has no use for them yet).
            if (is_int) {
                store_local_option(*e, level, name, v);
            }
            return 0;
        default:
            // SO_SNDBUF, SO_RCVTIMEO, SO_SNDTIMEO, SO_LINGER, SO_KEEPALIVE...
            // act on the app end itself, where they mean the same thing.
            return real.setsockopt(fd, level, name, value, len);
        }
    }
    if (level == IPPROTO_IP || level == IPPROTO_IPV6 || level == IPPROTO_UDP) {
        // TOS, TTL, PMTU discovery, multicast options...: accepted and kept.
        // TODO: IP_PKTINFO/IP_RECVERR control messages are not produced.
        if (is_int) {
            store_local_option(*e, level, name, v);
        }
        return 0;
    }
    return set_errno(ENOPROTOOPT);
}

int shim_getsockopt(int fd, int level, int name, void* value, socklen_t* len) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    FdEntry* e = socket_entry(fd);
    if (!is_ustack(e)) {
        return real.getsockopt(fd, level, name, value, len);
    }
    if (e->type == SOCK_STREAM) {
        return tcp_getsockopt(fd, *e, level, name, value, len);
    }
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_TYPE:
            return write_int_option(e->type, value, len);
        case SO_DOMAIN:
            return write_int_option(e->domain, value, len);
        case SO_PROTOCOL:
            return write_int_option(e->type == SOCK_DGRAM ? IPPROTO_UDP : IPPROTO_TCP, value, len);
        case SO_ACCEPTCONN:
            return write_int_option(0, value, len);  // TODO(tcp): listeners
        case SO_ERROR:
            if (int err = take_channel_error(fd); err != 0) {
                return write_int_option(err, value, len);
            }
            [[fallthrough]];
        case SO_REUSEADDR:
        case SO_REUSEPORT:
        case SO_RCVBUF: {
            if (value == nullptr || len == nullptr || *len < static_cast<socklen_t>(sizeof(int))) {
                return set_errno(EINVAL);
            }
            Request request;
            request.op = Op::GetSockOpt;
            request.level = level;
            request.name = name;
            Reply reply;
            if (socket_call(fd, request, reply) < 0) {
                return -1;
            }
            return write_int_option(static_cast<int>(reply.value), value, len);
        }
        case SO_BROADCAST:
        case SO_PRIORITY:
        case SO_MARK:
        case SO_NO_CHECK:
        case SO_TIMESTAMP:
        case SO_TIMESTAMPNS: {
            int v = 0;
            local_option(*e, level, name, &v);
            return write_int_option(v, value, len);
        }
        default:
            return real.getsockopt(fd, level, name, value, len);
        }
    }
    if (level == IPPROTO_IP || level == IPPROTO_IPV6 || level == IPPROTO_UDP) {
        int v = default_local_option(level, name);
        local_option(*e, level, name, &v);
        return write_int_option(v, value, len);
    }
    return set_errno(ENOPROTOOPT);
}

int shim_shutdown(int fd, int how) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    FdEntry* e = socket_entry(fd);
    if (!is_ustack(e)) {
        return real.shutdown(fd, how);
    }
    if (how != SHUT_RD && how != SHUT_WR && how != SHUT_RDWR) {
        return set_errno(EINVAL);
    }
    if (e->type == SOCK_STREAM) {
        // The app end's own shutdown gives the app Linux's view (reads
        // return 0 after SHUT_RD, writes EPIPE after SHUT_WR); the host
        // reads the EOF after the last byte and sends the FIN then.
        // The host hears of it first: the EOF and hang-up that follow are
        // then a shutdown, not a close.
        Request request;
        request.op = Op::Shutdown;
        request.value = how;
        Reply reply;
        const int rc = socket_call(fd, request, reply);  // ENOTCONN when not connected
        const int err = errno;
        if (rc == 0 || err == ENOTCONN) {
            real.shutdown(fd, how);
            host_must_look();  // the EOF after the last byte is the host's to read
            if (InprocHost* p = inproc.load(); p != nullptr) {
                // A thread reading this socket on the host's loop sees the
                // EOF (from a forked child too: the eventfd is shared).
                p->host->wake_caller(!owned_here(p));
            }
        }
        errno = err;
        return rc;
    }
    // UDP: the app end's own shutdown gives Linux's results (recv returns
    // 0, send fails with EPIPE); the host keeps the socket until close.
    real.shutdown(fd, how);
    host_must_look();
    if (connected_state(fd, *e) != 1) {
        return set_errno(ENOTCONN);  // inet_shutdown: applied, but ENOTCONN
    }
    return 0;
}

int shim_close(int fd) {
    release_pair_if_backed(fd);
    const bool ustack_fd = is_ustack(fd_table().get(fd, false));
    fd_table().clear(fd);
    if (host::Host* h = ustack_fd ? caller_host() : nullptr; h != nullptr) {
        return h->caller_close(fd, [fd] { return real.close(fd); });
    }
    return real.close(fd);
}

int shim_close_range(unsigned int first, unsigned int last, int flags) {
    if ((flags & ~CLOSE_RANGE_UNSHARE) == 0 && first <= last) {  // else nothing is closed
        release_pairs_in_range(first, last);
    }
    const int rc = real.close_range != nullptr
                       ? real.close_range(first, last, flags)
                       : static_cast<int>(::syscall(SYS_close_range, first, last, flags));
    if (rc == 0) {
        host_must_look();  // hang-ups of app ends, outside any caller's turn
        const unsigned int top = std::min<unsigned int>(last, FdTable::max_fd);
        for (unsigned int fd = first; fd <= top; ++fd) {
            if ((flags & CLOSE_RANGE_CLOEXEC) != 0) {
                forget_creation_flags(static_cast<int>(fd));  // FD_CLOEXEC set behind socket()'s back
            } else {
                fd_table().clear(static_cast<int>(fd));
            }
        }
    }
    return rc;
}

void shim_closefrom(int lowfd) {
    release_pairs_in_range(static_cast<unsigned int>(std::max(lowfd, 0)), ~0u);
    if (real.closefrom != nullptr) {
        real.closefrom(lowfd);
    } else {
        ::syscall(SYS_close_range, static_cast<unsigned>(lowfd), ~0u, 0);
    }
    host_must_look();
    for (int fd = std::max(lowfd, 0); fd <= FdTable::max_fd; ++fd) {
        if (fd_table().get(fd, false) == nullptr) {
            fd |= FdTable::chunk_size - 1;  // skip a chunk never used
            continue;
        }
        fd_table().clear(fd);
    }
}

int shim_dup(int fd) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    const int rc = real.dup(fd);
    if (rc >= 0) {
        fd_table().copy(fd, rc);
    }
    return rc;
}

int shim_dup2(int oldfd, int newfd) {
    if (settle_pair(oldfd) < 0) {
        return -1;
    }
    release_pair_replaced(oldfd, newfd);
    const int rc = real.dup2(oldfd, newfd);
    if (rc >= 0 && oldfd != newfd) {
        host_must_look();  // newfd may have been an app end's last copy
        fd_table().copy(oldfd, rc);
    }
    return rc;
}

int shim_dup3(int oldfd, int newfd, int flags) {
    if (settle_pair(oldfd) < 0) {
        return -1;
    }
    if ((flags & ~O_CLOEXEC) == 0) {  // else EINVAL, newfd untouched
        release_pair_replaced(oldfd, newfd);
    }
    const int rc = real.dup3(oldfd, newfd, flags);
    if (rc >= 0) {
        host_must_look();  // newfd may have been an app end's last copy
        fd_table().copy(oldfd, rc);
    }
    return rc;
}

// A candidate about to send to `dest`: moves to ustack when the
// destination is ustack's. Returns the entry to use (nullptr: kernel path)
// or sets *error.
FdEntry* send_target(int fd, const sockaddr* dest, socklen_t dest_len, int* error) {
    *error = 0;
    FdEntry* e = socket_entry(fd);
    if (e == nullptr) {
        return nullptr;
    }
    const FdKind kind = e->get_kind();
    if (kind == FdKind::Ustack) {
        return e;
    }
    if (kind == FdKind::Candidate && e->type == SOCK_STREAM && dest != nullptr) {
        note_kernel_side_use(*e);  // MSG_FASTOPEN: the kernel connects it
    }
    if (kind != FdKind::Candidate || e->type != SOCK_DGRAM || dest == nullptr) {
        return nullptr;
    }
    Address a;
    if (parse_address(dest, dest_len, a) == 0 && a.v6_native && !a.v6_loopback && !v6only(fd, *e)) {
        *error = ENETUNREACH;
        refuse_native_v6(ENETUNREACH);
        return nullptr;
    }
    if (parse_address(dest, dest_len, a) != 0 || a.unspec || a.v6_native || a.v6_any ||
        (e->domain == AF_INET && dest->sa_family != AF_INET) || !ustack_destination(a.addr) ||
        (e->domain == AF_INET6 && v6only(fd, *e))) {
        fd_table().set(fd, FdKind::Kernel, e->domain, e->type);  // the kernel autobinds it now
        return nullptr;
    }
    if (swap_to_ustack(fd, *e, SocketAction::None, a) < 0) {
        *error = errno;
        return nullptr;
    }
    return e;
}

ssize_t shim_sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* addr, socklen_t alen) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    int error = 0;
    FdEntry* e = send_target(fd, addr, alen, &error);
    if (error != 0) {
        return set_errno(error);
    }
    if (e == nullptr) {
        return real.sendto(fd, buf, len, flags, addr, alen);
    }
    iovec v{const_cast<void*>(buf), len};
    if (e->type == SOCK_STREAM) {
        return tcp_send(fd, &v, 1, flags);  // the address is ignored, as tcp_sendmsg does
    }
    return udp_send(fd, *e, &v, 1, flags, addr, alen);
}

ssize_t shim_send(int fd, const void* buf, size_t len, int flags) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    FdEntry* e = ustack_entry(fd);
    if (e == nullptr) {
        return real.send(fd, buf, len, flags);
    }
    iovec v{const_cast<void*>(buf), len};
    if (e->type == SOCK_STREAM) {
        return tcp_send(fd, &v, 1, flags);
    }
    return udp_send(fd, *e, &v, 1, flags, nullptr, 0);
}

// Candidates passed to another process (SCM_RIGHTS): it may change
// their flags behind this process's back.
void forget_creation_flags_of_passed_fds(const msghdr& msg) {
    if (msg.msg_control == nullptr || msg.msg_controllen < sizeof(cmsghdr)) {
        return;
    }
    for (cmsghdr* c = CMSG_FIRSTHDR(const_cast<msghdr*>(&msg)); c != nullptr;
         c = CMSG_NXTHDR(const_cast<msghdr*>(&msg), c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) {
            continue;
        }
        const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int passed = -1;
            std::memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
            (void)settle_pair(passed);  // another process gets the kernel socket, not a pair it cannot adopt
            forget_creation_flags(passed);
        }
    }
}

ssize_t shim_sendmsg(int fd, const msghdr* msg, int flags) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (msg == nullptr) {
        return real.sendmsg(fd, msg, flags);
    }
    forget_creation_flags_of_passed_fds(*msg);
    int error = 0;
    FdEntry* e = send_target(fd, static_cast<const sockaddr*>(msg->msg_name), msg->msg_namelen, &error);
    if (error != 0) {
        return set_errno(error);
    }
    if (e == nullptr) {
        return real.sendmsg(fd, msg, flags);
    }
    if (e->type == SOCK_STREAM) {
        return tcp_send(fd, msg->msg_iov, msg->msg_iovlen, flags);
    }
    return udp_send(fd, *e, msg->msg_iov, msg->msg_iovlen, flags, static_cast<const sockaddr*>(msg->msg_name),
                    msg->msg_namelen);
}

int shim_sendmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (vec == nullptr || vlen == 0) {
        return real.sendmmsg(fd, vec, vlen, flags);
    }
    for (unsigned int i = 0; i < vlen; ++i) {
        forget_creation_flags_of_passed_fds(vec[i].msg_hdr);
    }
    int error = 0;
    FdEntry* e = send_target(fd, static_cast<const sockaddr*>(vec[0].msg_hdr.msg_name), vec[0].msg_hdr.msg_namelen,
                             &error);
    if (error != 0) {
        return set_errno(error);
    }
    if (e == nullptr) {
        return real.sendmmsg(fd, vec, vlen, flags);
    }
    unsigned int sent = 0;
    for (; sent < vlen; ++sent) {
        const msghdr& m = vec[sent].msg_hdr;
        const ssize_t n = e->type == SOCK_STREAM
                              ? tcp_send(fd, m.msg_iov, m.msg_iovlen, flags)
                              : udp_send(fd, *e, m.msg_iov, m.msg_iovlen, flags,
                                         static_cast<const sockaddr*>(m.msg_name), m.msg_namelen);
        if (n < 0) {
            if (sent == 0) {
                return -1;
            }
            break;
        }
        vec[sent].msg_len = static_cast<unsigned int>(n);
    }
    return static_cast<int>(sent);
}

FdEntry* udp_entry(int fd) {
    FdEntry* e = ustack_entry(fd);
    return e != nullptr && e->type == SOCK_DGRAM ? e : nullptr;
}

// recv/recvfrom/recvmsg on an fd the table does not know yet classify it
// (a socket call); read/readv do not (every file would pay for it).
FdEntry* udp_entry_classify(int fd) {
    FdEntry* e = socket_entry(fd);
    return is_ustack(e) && e->type == SOCK_DGRAM ? e : nullptr;
}

// A ustack TCP fd, classifying an unknown fd first (recv family).
FdEntry* tcp_entry_classify(int fd) {
    FdEntry* e = socket_entry(fd);
    return is_ustack(e) && e->type == SOCK_STREAM ? e : nullptr;
}

ssize_t shim_recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* addr, socklen_t* alen) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (tcp_entry_classify(fd) != nullptr) {
        iovec v{buf, len};
        if (alen != nullptr) {
            *alen = 0;  // a connected stream names no source (tcp_recvmsg)
        }
        return tcp_recv(fd, &v, 1, flags, nullptr);
    }
    FdEntry* e = udp_entry_classify(fd);
    if (e == nullptr) {
        return real.recvfrom(fd, buf, len, flags, addr, alen);
    }
    iovec v{buf, len};
    return udp_recv(fd, *e, &v, 1, flags, addr, alen, nullptr);
}

ssize_t shim_recv(int fd, void* buf, size_t len, int flags) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (tcp_entry_classify(fd) != nullptr) {
        iovec v{buf, len};
        return tcp_recv(fd, &v, 1, flags, nullptr);
    }
    FdEntry* e = udp_entry_classify(fd);
    if (e == nullptr) {
        return real.recv(fd, buf, len, flags);
    }
    iovec v{buf, len};
    return udp_recv(fd, *e, &v, 1, flags, nullptr, nullptr, nullptr);
}

ssize_t shim_recvmsg(int fd, msghdr* msg, int flags) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (msg != nullptr && tcp_entry_classify(fd) != nullptr) {
        int msg_flags = 0;
        const ssize_t n = tcp_recv(fd, msg->msg_iov, msg->msg_iovlen, flags, &msg_flags);
        if (n >= 0) {
            msg->msg_namelen = 0;
            msg->msg_controllen = 0;
            msg->msg_flags = msg_flags;
        }
        return n;
    }
    FdEntry* e = msg == nullptr ? nullptr : udp_entry_classify(fd);
    if (e == nullptr) {
        return real.recvmsg(fd, msg, flags);
    }
    int msg_flags = 0;
    socklen_t name_len = msg->msg_namelen;
    const ssize_t n = udp_recv(fd, *e, msg->msg_iov, msg->msg_iovlen, flags,
                               static_cast<sockaddr*>(msg->msg_name), msg->msg_name != nullptr ? &name_len : nullptr,
                               &msg_flags);
    if (n >= 0) {
        if (msg->msg_name != nullptr) {
            msg->msg_namelen = name_len;
        }
        msg->msg_controllen = 0;  // no control messages (IP_PKTINFO...) yet
        msg->msg_flags = msg_flags;
    }
    return n;
}

int shim_recvmmsg(int fd, mmsghdr* vec, unsigned int vlen, int flags, timespec* timeout) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    FdEntry* e = vec == nullptr ? nullptr : udp_entry_classify(fd);
    if (e == nullptr) {
        // A TCP app end read this way blocks outside any caller's turn.
        const OutsideLoopWait wait((flags & MSG_DONTWAIT) == 0 && ustack_entry(fd) != nullptr);
        return real.recvmmsg(fd, vec, vlen, flags, timeout);
    }
    unsigned int got = 0;
    for (; got < vlen; ++got) {
        // The first waits as the socket says; the rest only take what is there.
        int f = flags & ~MSG_WAITFORONE;
        if (got > 0 && (flags & MSG_WAITFORONE) != 0) {
            f |= MSG_DONTWAIT;
        }
        if (got > 0) {
            f |= MSG_DONTWAIT;
        }
        const ssize_t n = shim_recvmsg(fd, &vec[got].msg_hdr, f);
        if (n < 0) {
            if (got == 0) {
                return -1;
            }
            break;
        }
        vec[got].msg_len = static_cast<unsigned int>(n);
    }
    return static_cast<int>(got);
}

ssize_t shim_read(int fd, void* buf, size_t count) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (tcp_entry(fd) != nullptr) {
        iovec v{buf, count};
        return tcp_recv(fd, &v, 1, 0, nullptr);
    }
    FdEntry* e = udp_entry(fd);
    if (e == nullptr) {
        return real.read(fd, buf, count);
    }
    iovec v{buf, count};
    return udp_recv(fd, *e, &v, 1, 0, nullptr, nullptr, nullptr);
}

ssize_t shim_readv(int fd, const iovec* iov, int iovcnt) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (iovcnt >= 0 && tcp_entry(fd) != nullptr) {
        return tcp_recv(fd, iov, static_cast<size_t>(iovcnt), 0, nullptr);
    }
    FdEntry* e = udp_entry(fd);
    if (e == nullptr || iovcnt < 0) {
        return real.readv(fd, iov, iovcnt);
    }
    return udp_recv(fd, *e, iov, static_cast<size_t>(iovcnt), 0, nullptr, nullptr, nullptr);
}

ssize_t shim_write(int fd, const void* buf, size_t count) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (tcp_entry(fd) != nullptr) {
        iovec v{const_cast<void*>(buf), count};
        return tcp_send(fd, &v, 1, 0);
    }
    FdEntry* e = udp_entry(fd);
    if (e == nullptr) {
        return real.write(fd, buf, count);
    }
    iovec v{const_cast<void*>(buf), count};
    return udp_send(fd, *e, &v, 1, 0, nullptr, 0);
}

ssize_t shim_writev(int fd, const iovec* iov, int iovcnt) {
    if (settle_pair(fd) < 0) {  // a fresh socket answers as the kernel's
        return -1;
    }
    if (iovcnt >= 0 && tcp_entry(fd) != nullptr) {
        return tcp_send(fd, iov, static_cast<size_t>(iovcnt), 0);
    }
    FdEntry* e = udp_entry(fd);
    if (e == nullptr || iovcnt < 0) {
        return real.writev(fd, iov, iovcnt);
    }
    return udp_send(fd, *e, iov, static_cast<size_t>(iovcnt), 0, nullptr, 0);
}

ssize_t shim___read_chk(int fd, void* buf, size_t count, size_t buflen) {
    if (count > buflen) {
        return real.__read_chk(fd, buf, count, buflen);  // let libc report the overflow
    }
    return shim_read(fd, buf, count);
}

ssize_t shim___recv_chk(int fd, void* buf, size_t len, size_t buflen, int flags) {
    if (len > buflen) {
        return real.__recv_chk(fd, buf, len, buflen, flags);
    }
    return shim_recv(fd, buf, len, flags);
}

ssize_t shim___recvfrom_chk(int fd, void* buf, size_t len, size_t buflen, int flags, sockaddr* addr,
                            socklen_t* alen) {
    if (len > buflen) {
        return real.__recvfrom_chk(fd, buf, len, buflen, flags, addr, alen);
    }
    return shim_recvfrom(fd, buf, len, flags, addr, alen);
}

int shim_accept(int fd, sockaddr* addr, socklen_t* len) { return shim_accept4(fd, addr, len, 0); }

// A pair-backed socket watched by epoll before it connects (nginx's
// upstream connections): the entry keeps the registrations
// (FdEntry::epoll_watches), which an adoption keeps with the file and a
// materialize makes again on the kernel socket. One set too many: the
// kernel socket first, as every fresh socket was before pair-backed ones.
// A kernel candidate (daemon mode, a materialized pair) keeps them the same
// way: the swap to ustack takes them off the kernel socket and makes them
// again on the app end (swap_to_ustack).
int shim_epoll_ctl(int epfd, int op, int fd, epoll_event* event) {
    FdEntry* e = fd_table().get(fd, false);
    if (e == nullptr || e->get_kind() != FdKind::Candidate) {
        return real.epoll_ctl(epfd, op, fd, event);
    }
    if (op == EPOLL_CTL_ADD && pair_backed(e)) {
        bool room = false;
        {
            std::lock_guard<std::mutex> guard(fd_table().lock());
            for (const FdEntry::EpollWatch& w : e->epoll_watches) {
                room = room || w.epfd < 0;
            }
        }
        // A third set: the kernel socket now, and this registration is
        // one the entry cannot hold (epoll_untracked, below).
        if (!room && settle_pair(fd) < 0) {
            return -1;
        }
    }
    const int rc = real.epoll_ctl(epfd, op, fd, event);
    if (rc != 0) {
        return rc;
    }
    std::lock_guard<std::mutex> guard(fd_table().lock());
    FdEntry::EpollWatch* found = nullptr;
    FdEntry::EpollWatch* free_slot = nullptr;
    for (FdEntry::EpollWatch& w : e->epoll_watches) {
        if (w.epfd == epfd) {
            found = &w;
        } else if (w.epfd < 0 && free_slot == nullptr) {
            free_slot = &w;
        }
    }
    if (op == EPOLL_CTL_DEL) {
        if (found != nullptr) {
            *found = FdEntry::EpollWatch{};
        }
    } else if (event != nullptr) {
        FdEntry::EpollWatch* slot = found != nullptr ? found : free_slot;
        if (slot != nullptr) {
            *slot = FdEntry::EpollWatch{epfd, event->events, event->data.u64};
        } else {
            e->epoll_untracked = 1;
        }
    }
    return rc;
}

int shim_fcntl(bool is64, int fd, int cmd, void* arg) {
    auto fn = is64 && real.fcntl64 != nullptr ? real.fcntl64 : real.fcntl;
    // The file's own flags are the app end's as they would be the kernel
    // socket's; a copy, an owner, a lease... are the kernel socket's.
    if (cmd != F_GETFL && cmd != F_SETFL && cmd != F_GETFD && cmd != F_SETFD && settle_pair(fd) < 0) {
        return -1;
    }
    if (cmd == F_SETFL || cmd == F_SETFD) {
        forget_creation_flags(fd);
    }
    const int rc = fn(fd, cmd, arg);
    if (rc >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) {
        fd_table().copy(fd, rc);
    }
    return rc;
}

int shim_ioctl(int fd, unsigned long request, void* arg) {
    if (request == FIONREAD) {
        if (FdEntry* e = udp_entry(fd); e != nullptr && arg != nullptr) {
            const int size = udp_first_datagram_size(fd);
            std::memcpy(arg, &size, sizeof size);
            return 0;
        }
    }
    if (request != FIONBIO && settle_pair(fd) < 0) {
        return -1;
    }
    // FIONBIO and the rest act on the app end as on any fd.
    forget_creation_flags(fd);
    return real.ioctl(fd, request, arg);
}

// ------------------------------------------------------------ process lifetime

// The inproc host as it was when fork() began (the handlers of one fork
// run in the forking thread, one after the other).
InprocHost* forking_host = nullptr;

void before_fork() {
    count_fork();
    forking_host = inproc.load();
    if (forking_host != nullptr && owned_here(forking_host)) {
        forking_host->host->before_fork();
    } else {
        forking_host = nullptr;
    }
}

void after_fork_in_parent() {
    if (forking_host != nullptr) {
        forking_host->host->after_fork(false);
    }
}

void after_fork_in_child() {
    orphan_pairs_in_child();
    if (inproc.load() != nullptr) {
        inproc_host_elsewhere.store(true);
    }
    if (forking_host != nullptr) {
        forking_host->host->after_fork(true);
    }
}

__attribute__((constructor)) void shim_init() {
    ShimScope scope;
    ensure_resolved();
    ensure_config();
    // After a fork both processes hold every candidate: either may change
    // its flags, so neither may trust what socket() made them. And a
    // child must not keep the inproc host's spare socketpairs: a pair the
    // parent hands out later would have an app end in the child.
    ::pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

__attribute__((destructor)) void shim_fini() {
    ShimScope scope;
    // Inproc: what the program sent last still leaves before it exits.
    InprocHost* p = inproc.load();
    if (p != nullptr && owned_here(p) && p->thread.joinable()) {
        p->host->stop_and_drain();
        p->thread.join();
    }
}

}  // namespace

void resolve_real_functions() {
#define USTACK_RESOLVE(ret, name, params, args) \
    real.name = reinterpret_cast<ret(*) params>(::dlsym(RTLD_NEXT, #name));
    USTACK_INTERCEPTED(USTACK_RESOLVE)
#undef USTACK_RESOLVE
    real.fcntl = reinterpret_cast<int (*)(int, int, ...)>(::dlsym(RTLD_NEXT, "fcntl"));
    real.fcntl64 = reinterpret_cast<int (*)(int, int, ...)>(::dlsym(RTLD_NEXT, "fcntl64"));
    real.ioctl = reinterpret_cast<int (*)(int, unsigned long, ...)>(::dlsym(RTLD_NEXT, "ioctl"));
    resolved.store(true, std::memory_order_release);
}

// Entry of every wrapper: whether the shim handles this call (initialised,
// enabled, not re-entered).
bool shim_active() {
    ensure_resolved();
    if (in_shim != 0) {
        return false;
    }
    ShimScope scope;
    ensure_config();
    return config().enabled;
}

}  // namespace ustack::shim

// ------------------------------------------------------------ exported wrappers
//
// Defined under their libc names through asm labels, so that the glibc
// declarations (with their various exception specifications) do not clash.

#define USTACK_WRAPPER(ret, name, params, args)                                           \
    extern "C" __attribute__((visibility("default"))) ret ustack_wrap_##name params      \
        __asm__(#name);                                                                   \
    extern "C" ret ustack_wrap_##name params {                                            \
        using namespace ustack::shim;                                                     \
        if (!shim_active()) {                                                             \
            return real.name args;                                                        \
        }                                                                                 \
        ShimScope scope;                                                                  \
        try {                                                                             \
            return shim_##name args;                                                      \
        } catch (...) {                                                                   \
            errno = ENOMEM;                                                               \
            return (ret)-1;                                                               \
        }                                                                                 \
    }

namespace ustack::shim {
bool shim_active();
}

// closefrom returns void: its own wrapper.
#define USTACK_WRAPPER_VOID(name, params, args)                                           \
    extern "C" __attribute__((visibility("default"))) void ustack_wrap_##name params     \
        __asm__(#name);                                                                   \
    extern "C" void ustack_wrap_##name params {                                           \
        using namespace ustack::shim;                                                     \
        if (!shim_active()) {                                                             \
            if (real.name != nullptr) {                                                   \
                real.name args;                                                           \
            }                                                                             \
            return;                                                                       \
        }                                                                                 \
        ShimScope scope;                                                                  \
        try {                                                                             \
            shim_##name args;                                                             \
        } catch (...) {                                                                   \
        }                                                                                 \
    }

#define USTACK_WRAPPER_DISPATCH(ret, name, params, args) USTACK_WRAPPER_##name(ret, name, params, args)
#define USTACK_WRAPPER_socket USTACK_WRAPPER
#define USTACK_WRAPPER_bind USTACK_WRAPPER
#define USTACK_WRAPPER_listen USTACK_WRAPPER
#define USTACK_WRAPPER_accept USTACK_WRAPPER
#define USTACK_WRAPPER_accept4 USTACK_WRAPPER
#define USTACK_WRAPPER_connect USTACK_WRAPPER
#define USTACK_WRAPPER_getsockname USTACK_WRAPPER
#define USTACK_WRAPPER_getpeername USTACK_WRAPPER
#define USTACK_WRAPPER_setsockopt USTACK_WRAPPER
#define USTACK_WRAPPER_getsockopt USTACK_WRAPPER
#define USTACK_WRAPPER_shutdown USTACK_WRAPPER
#define USTACK_WRAPPER_close USTACK_WRAPPER
#define USTACK_WRAPPER_close_range USTACK_WRAPPER
#define USTACK_WRAPPER_closefrom(ret, name, params, args) USTACK_WRAPPER_VOID(name, params, args)
#define USTACK_WRAPPER_dup USTACK_WRAPPER
#define USTACK_WRAPPER_dup2 USTACK_WRAPPER
#define USTACK_WRAPPER_dup3 USTACK_WRAPPER
#define USTACK_WRAPPER_send USTACK_WRAPPER
#define USTACK_WRAPPER_sendto USTACK_WRAPPER
#define USTACK_WRAPPER_sendmsg USTACK_WRAPPER
#define USTACK_WRAPPER_sendmmsg USTACK_WRAPPER
#define USTACK_WRAPPER_recv USTACK_WRAPPER
#define USTACK_WRAPPER_recvfrom USTACK_WRAPPER
#define USTACK_WRAPPER_recvmsg USTACK_WRAPPER
#define USTACK_WRAPPER_recvmmsg USTACK_WRAPPER
#define USTACK_WRAPPER_read USTACK_WRAPPER
#define USTACK_WRAPPER_epoll_ctl USTACK_WRAPPER
#define USTACK_WRAPPER_readv USTACK_WRAPPER
#define USTACK_WRAPPER_write USTACK_WRAPPER
#define USTACK_WRAPPER_writev USTACK_WRAPPER
#define USTACK_WRAPPER___read_chk USTACK_WRAPPER
#define USTACK_WRAPPER___recv_chk USTACK_WRAPPER
#define USTACK_WRAPPER___recvfrom_chk USTACK_WRAPPER

// The program's waits (USTACK_INTERCEPTED_WAITS): no ShimScope around the
// real call, so that a signal handler running during the wait still has
// the shim.
namespace ustack::shim {
inline bool blocks_for(const timespec* ts) { return ts == nullptr || ts->tv_sec != 0 || ts->tv_nsec != 0; }
inline bool blocks_for(const timeval* tv) { return tv == nullptr || tv->tv_sec != 0 || tv->tv_usec != 0; }

// tcp_poll reports POLLOUT whenever it reports POLLHUP (a socket shut for
// sending, or never connected). A ustack TCP socket's app end can show
// POLLHUP without POLLOUT for an instant: when a connect fails the host
// releases its end, and unix_release_sock wakes the poller before it frees
// the filler that kept the app end from polling writable
// (TcpHostSocket::start_connecting, fail_connect). A poll on another CPU
// in that window saw POLLERR|POLLHUP alone (daemon mode, under load: 12
// of 900 nonblock-refused runs). select needs nothing (POLLERR is in its
// writable set); epoll's events carry no fd to look up.
inline int with_pollout_on_hangup(int ready, pollfd* fds, nfds_t nfds) {
    if (ready <= 0) {
        return ready;
    }
    for (nfds_t i = 0; i < nfds; ++i) {
        pollfd& p = fds[i];
        if ((p.revents & POLLHUP) == 0 || (p.revents & POLLOUT) != 0 || (p.events & (POLLOUT | POLLWRNORM)) == 0) {
            continue;
        }
        const FdEntry* e = fd_table().get(p.fd, false);
        if (e != nullptr && e->kind.load(std::memory_order_acquire) == static_cast<uint8_t>(FdKind::Ustack) &&
            e->type == SOCK_STREAM && e->listening != 1) {
            p.revents = static_cast<short>(p.revents | (p.events & (POLLOUT | POLLWRNORM)));
        }
    }
    return ready;
}
}  // namespace ustack::shim

// `result`: what the wrapper returns, given the real call's wait_result.
#define USTACK_WAIT_WRAPPER(ret, name, params, args, blocks, result)                      \
    extern "C" __attribute__((visibility("default"))) ret ustack_wrap_##name params      \
        __asm__(#name);                                                                   \
    extern "C" ret ustack_wrap_##name params {                                            \
        using namespace ustack::shim;                                                     \
        ensure_resolved();                                                                \
        if (real.name == nullptr) {                                                       \
            errno = ENOSYS;                                                               \
            return -1;                                                                    \
        }                                                                                 \
        if (in_shim != 0) {                                                               \
            return real.name args;                                                        \
        }                                                                                 \
        if (!(blocks)) {                                                                  \
            const ret wait_result = real.name args;                                       \
            return result;                                                                \
        }                                                                                 \
        const OutsideLoopWait wait;                                                       \
        const ret wait_result = real.name args;                                           \
        return result;                                                                    \
    }
#define USTACK_POLL_RESULT with_pollout_on_hangup(wait_result, fds, nfds)
#define USTACK_WRAPPER_poll(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, timeout != 0, USTACK_POLL_RESULT)
#define USTACK_WRAPPER___poll_chk(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, timeout != 0, USTACK_POLL_RESULT)
#define USTACK_WRAPPER_ppoll(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, blocks_for(ts), USTACK_POLL_RESULT)
#define USTACK_WRAPPER___ppoll_chk(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, blocks_for(ts), USTACK_POLL_RESULT)
#define USTACK_WRAPPER_select(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, blocks_for(tv), wait_result)
#define USTACK_WRAPPER_pselect(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, blocks_for(ts), wait_result)
#define USTACK_WRAPPER_epoll_wait(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, timeout != 0, wait_result)
#define USTACK_WRAPPER_epoll_pwait(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, timeout != 0, wait_result)
#define USTACK_WRAPPER_epoll_pwait2(ret, name, params, args) \
    USTACK_WAIT_WRAPPER(ret, name, params, args, blocks_for(ts), wait_result)

USTACK_INTERCEPTED(USTACK_WRAPPER_DISPATCH)

// The variadic ones: the optional argument is a pointer or an int; read as
// a pointer-sized value it is passed on unchanged (as glibc itself does).
#define USTACK_VARIADIC_WRAPPER(name, request_type, real_call, impl)                     \
    extern "C" __attribute__((visibility("default"))) int ustack_wrap_##name(            \
        int fd, request_type request, ...) __asm__(#name);                                \
    extern "C" int ustack_wrap_##name(int fd, request_type request, ...) {                \
        using namespace ustack::shim;                                                     \
        va_list ap;                                                                       \
        va_start(ap, request);                                                            \
        void* arg = va_arg(ap, void*);                                                    \
        va_end(ap);                                                                       \
        if (!shim_active()) {                                                             \
            return real_call;                                                             \
        }                                                                                 \
        ShimScope scope;                                                                  \
        try {                                                                             \
            return impl;                                                                  \
        } catch (...) {                                                                   \
            errno = ENOMEM;                                                               \
            return -1;                                                                    \
        }                                                                                 \
    }

USTACK_VARIADIC_WRAPPER(fcntl, int, real.fcntl(fd, request, arg), shim_fcntl(false, fd, request, arg))
USTACK_VARIADIC_WRAPPER(fcntl64, int, (real.fcntl64 != nullptr ? real.fcntl64 : real.fcntl)(fd, request, arg),
                        shim_fcntl(true, fd, request, arg))
USTACK_VARIADIC_WRAPPER(ioctl, unsigned long, real.ioctl(fd, request, arg), shim_ioctl(fd, request, arg))
