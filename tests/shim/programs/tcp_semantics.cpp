// A plain socket-API program (no ustack code): the TCP shim tests run it
// under ustack-run, with the Linux kernel as the peer. The kernel side is
// this same program, re-executed with a clean environment (no LD_PRELOAD,
// no USTACK_*), so every scenario is self-contained:
//
//   shim_prog_tcp_semantics SCENARIO KERNEL_ADDR STACK_ADDR PORT
//
// Prints "PASS SCENARIO" and exits 0, or prints what went wrong and exits 1.
// Every wait has a timeout (poll, SO_RCVTIMEO, alarm).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

std::string g_kernel;
std::string g_stack;
uint16_t g_port = 0;
std::string g_self;
std::string g_scenario;

[[noreturn]] void fail(const std::string& what) {
    std::printf("FAIL %s: %s (errno %d: %s)\n", g_scenario.c_str(), what.c_str(), errno, std::strerror(errno));
    std::fflush(stdout);
    std::_Exit(1);
}

#define CHECK(cond, what) \
    do {                  \
        if (!(cond)) {    \
            fail(what);   \
        }                 \
    } while (0)

sockaddr_in address(const std::string& ip, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    return a;
}

int tcp_socket() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    return fd;
}

void set_int(int fd, int level, int name, int value) {
    CHECK(::setsockopt(fd, level, name, &value, sizeof value) == 0, "setsockopt " + std::to_string(name));
}

int get_int(int fd, int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    CHECK(::getsockopt(fd, level, name, &value, &len) == 0, "getsockopt " + std::to_string(name));
    return value;
}

void set_timeouts(int fd, int seconds) {
    timeval tv{seconds, 0};
    CHECK(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO");
    CHECK(::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) == 0, "SO_SNDTIMEO");
}

int connect_to(const std::string& ip, uint16_t port) {
    const int fd = tcp_socket();
    set_timeouts(fd, 10);
    sockaddr_in a = address(ip, port);
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect " + ip + ":" + std::to_string(port));
    return fd;
}

int listen_on(const std::string& ip, uint16_t port, int domain = AF_INET) {
    const int fd = ::socket(domain, SOCK_STREAM, 0);
    CHECK(fd >= 0, "socket");
    set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (domain == AF_INET6) {
        set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 0);
        sockaddr_in6 a{};
        a.sin6_family = AF_INET6;
        a.sin6_port = htons(port);
        a.sin6_addr = in6addr_any;
        CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind [::]");
    } else {
        sockaddr_in a = address(ip, port);
        CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind " + ip);
    }
    CHECK(::listen(fd, 16) == 0, "listen");
    return fd;
}

int accept_one(int listener, int seconds = 10) {
    pollfd p{listener, POLLIN, 0};
    CHECK(::poll(&p, 1, seconds * 1000) == 1, "no connection to accept");
    const int fd = ::accept(listener, nullptr, nullptr);
    CHECK(fd >= 0, "accept");
    set_timeouts(fd, 10);
    return fd;
}

void write_all(int fd, const void* data, size_t len) {
    const char* p = static_cast<const char*>(data);
    while (len > 0) {
        const ssize_t n = ::send(fd, p, len, MSG_NOSIGNAL);
        CHECK(n > 0, "send");
        p += n;
        len -= static_cast<size_t>(n);
    }
}

std::string read_exact(int fd, size_t len) {
    std::string out;
    char buf[65536];
    while (out.size() < len) {
        const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, len - out.size()), 0);
        CHECK(n > 0, "recv (got " + std::to_string(out.size()) + " of " + std::to_string(len) + ")");
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

std::string read_to_eof(int fd) {
    std::string out;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        CHECK(n >= 0, "recv to EOF");
        if (n == 0) {
            return out;
        }
        out.append(buf, static_cast<size_t>(n));
    }
}

std::string pattern(size_t len, unsigned seed) {
    std::string s(len, '\0');
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; ++i) {
        x = x * 1103515245u + 12345u;
        s[i] = static_cast<char>(x >> 24);
    }
    return s;
}

// ------------------------------------------------------------ the kernel peer

// Runs `role` of this program as a plain kernel process (clean
// environment). Returns its pid once it reported ready on a pipe.
pid_t kernel_peer(const std::string& role, const std::string& arg = "") {
    int ready[2];
    CHECK(::pipe(ready) == 0, "pipe");
    const pid_t pid = ::fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        ::close(ready[0]);
        ::dup2(ready[1], 3);
        std::vector<std::string> env_strings;
        for (char** e = environ; *e != nullptr; ++e) {
            const std::string v = *e;
            if (v.rfind("LD_PRELOAD=", 0) != 0 && v.rfind("USTACK_", 0) != 0) {
                env_strings.push_back(v);
            }
        }
        std::vector<char*> env;
        for (auto& v : env_strings) {
            env.push_back(v.data());
        }
        env.push_back(nullptr);
        const std::string port = std::to_string(g_port);
        std::vector<std::string> args = {g_self, "peer:" + role, g_kernel, g_stack, port, arg};
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        ::execve(g_self.c_str(), argv.data(), env.data());
        std::_Exit(127);
    }
    ::close(ready[1]);
    char c = 0;
    pollfd p{ready[0], POLLIN, 0};
    CHECK(::poll(&p, 1, 10000) == 1 && ::read(ready[0], &c, 1) == 1, "kernel peer " + role + " not ready");
    ::close(ready[0]);
    return pid;
}

// The peer's verdict: its exit status (0 = it saw what it expected).
void expect_peer_ok(pid_t pid, const std::string& what) {
    int status = 0;
    for (int i = 0; i < 1000; ++i) {
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "kernel peer: " + what + " (status " + std::to_string(status) + ")");
            return;
        }
        ::usleep(10000);
    }
    ::kill(pid, SIGKILL);
    fail("kernel peer did not finish: " + what);
}

// fd 3 is the ready pipe when kernel_peer() started us (not when a test
// runs the peer directly).
void signal_ready() {
    struct stat st {};
    if (::fstat(3, &st) == 0 && S_ISFIFO(st.st_mode)) {
        ::signal(SIGPIPE, SIG_IGN);
        (void)!::write(3, "r", 1);
        ::close(3);
    }
}

[[noreturn]] void peer_exit(bool ok, const std::string& why) {
    if (!ok) {
        std::fprintf(stderr, "kernel peer %s: %s (errno %d: %s)\n", g_scenario.c_str(), why.c_str(), errno,
                     std::strerror(errno));
    }
    std::_Exit(ok ? 0 : 1);
}

// Kernel roles (argv[1] = "peer:ROLE").
[[noreturn]] void run_peer(const std::string& role, const std::string& arg) {
    alarm(30);
    if (role == "echo") {
        // Echoes every connection (one at a time) until EOF, then closes.
        const int l = listen_on(g_kernel, g_port);
        signal_ready();
        const int c = accept_one(l, 20);
        char buf[65536];
        for (;;) {
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n <= 0) {
                peer_exit(n == 0, "echo recv");
            }
            write_all(c, buf, static_cast<size_t>(n));
        }
    }
    if (role == "silent-listener") {
        // Accepts later: SYN-ACK comes from the kernel's backlog at once.
        const int l = listen_on(g_kernel, g_port);
        signal_ready();
        const int c = accept_one(l, 20);
        const std::string got = read_to_eof(c);
        peer_exit(got == "after-connect", "silent-listener got '" + got + "'");
    }
    if (role == "client") {
        // Connects to the ustack server, sends ping, expects pong, then EOF.
        signal_ready();
        ::usleep(100000);
        const int c = connect_to(g_stack, g_port);
        write_all(c, "ping", 4);
        const std::string got = read_exact(c, 4);
        const std::string rest = read_to_eof(c);
        peer_exit(got == "pong" && rest.empty(), "client got '" + got + "' then '" + rest + "'");
    }
    if (role == "clients") {
        // `arg` connections one after the other, each expecting "served".
        signal_ready();
        const int count = std::atoi(arg.c_str());
        for (int i = 0; i < count; ++i) {
            int c = -1;
            for (int attempt = 0; attempt < 100 && c < 0; ++attempt) {
                c = tcp_socket();
                sockaddr_in a = address(g_stack, g_port);
                if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                    ::close(c);
                    c = -1;
                    ::usleep(50000);
                }
            }
            if (c < 0) {
                peer_exit(false, "connect to the ustack server");
            }
            set_timeouts(c, 10);
            const std::string got = read_to_eof(c);
            if (got.rfind("served", 0) != 0) {
                peer_exit(false, "connection " + std::to_string(i) + " got '" + got + "'");
            }
            ::close(c);
        }
        peer_exit(true, "");
    }
    if (role == "burst") {
        // `arg` connections opened one after the other and left queued;
        // then each must end with "x" and an orderly EOF. A reset is a
        // connection the server's host took for one nobody accepted.
        signal_ready();
        const int count = std::atoi(arg.c_str());
        std::vector<int> conns;
        for (int i = 0; i < count; ++i) {
            const int c = tcp_socket();
            sockaddr_in a = address(g_stack, g_port);
            if (::connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                peer_exit(false, "connect #" + std::to_string(i));
            }
            set_timeouts(c, 10);
            conns.push_back(c);
        }
        int bad = 0;
        for (const int c : conns) {
            std::string got;
            char buf[16];
            ssize_t n = 0;
            while ((n = ::recv(c, buf, sizeof buf, 0)) > 0) {
                got.append(buf, static_cast<size_t>(n));
            }
            bad += n != 0 || got != "x" ? 1 : 0;
            ::close(c);
        }
        peer_exit(bad == 0, std::to_string(bad) + " of " + arg + " connections did not end with 'x' and EOF");
    }
    if (role == "reset") {
        // Accepts, sends "bye", then resets (SO_LINGER 0).
        const int l = listen_on(g_kernel, g_port);
        signal_ready();
        const int c = accept_one(l, 20);
        write_all(c, "bye", 3);
        ::usleep(200000);
        linger lg{1, 0};
        ::setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        ::close(c);
        peer_exit(true, "");
    }
    if (role == "expect-reset" || role == "expect-fin") {
        // Accepts, optionally sends `arg` bytes, then waits for the end of
        // the connection and checks how it ended.
        const int l = listen_on(g_kernel, g_port);
        signal_ready();
        const int c = accept_one(l, 20);
        const size_t send_bytes = arg.empty() ? 0 : static_cast<size_t>(std::atoi(arg.c_str()));
        if (send_bytes > 0) {
            const std::string data = pattern(send_bytes, 3);
            write_all(c, data.data(), data.size());
        }
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(c, buf, sizeof buf, 0);
            if (n > 0) {
                continue;
            }
            if (role == "expect-reset") {
                peer_exit(n < 0 && errno == ECONNRESET, "expected ECONNRESET, got " + std::to_string(n));
            }
            peer_exit(n == 0, "expected EOF (FIN), got " + std::to_string(n));
        }
    }
    if (role == "echoes") {
        // `arg` connections at once, each echoed by a child of its own
        // until EOF.
        const int l = listen_on(g_kernel, g_port);
        signal_ready();
        const int count = std::atoi(arg.c_str());
        std::vector<pid_t> children;
        for (int i = 0; i < count; ++i) {
            const int c = accept_one(l, 20);
            const pid_t child = ::fork();
            if (child == 0) {
                char buf[4096];
                for (;;) {
                    const ssize_t n = ::recv(c, buf, sizeof buf, 0);
                    if (n <= 0) {
                        std::_Exit(n == 0 ? 0 : 1);
                    }
                    write_all(c, buf, static_cast<size_t>(n));
                }
            }
            ::close(c);
            children.push_back(child);
        }
        bool ok = true;
        for (const pid_t child : children) {
            int status = 0;
            ok = ::waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0 && ok;
        }
        peer_exit(ok, "an echo connection did not end with EOF");
    }
    if (role == "delayed-echo") {
        // `arg` connections at once, each in a child of its own: every
        // chunk is echoed 300 ms after it arrived, until EOF.
        const int l = listen_on(g_kernel, g_port);
        signal_ready();
        const int count = std::atoi(arg.c_str());
        std::vector<pid_t> children;
        for (int i = 0; i < count; ++i) {
            const int c = accept_one(l, 20);
            const pid_t child = ::fork();
            if (child == 0) {
                char buf[4096];
                for (;;) {
                    const ssize_t n = ::recv(c, buf, sizeof buf, 0);
                    if (n <= 0) {
                        std::_Exit(n == 0 ? 0 : 1);
                    }
                    ::usleep(300000);
                    write_all(c, buf, static_cast<size_t>(n));
                }
            }
            ::close(c);
            children.push_back(child);
        }
        bool ok = true;
        for (const pid_t child : children) {
            int status = 0;
            ok = ::waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0 && ok;
        }
        peer_exit(ok, "a delayed-echo connection did not end with EOF");
    }
    if (role == "trickle") {
        // Sends pattern(`arg`, 5) in 1 000-byte pieces, one per 500 µs,
        // then its FIN: the reader is mostly blocked when a piece comes.
        // Whatever the other side sends is read and dropped, to its EOF.
        const int l = listen_on(g_kernel, g_port);
        signal_ready();
        const int c = accept_one(l, 20);
        set_int(c, IPPROTO_TCP, TCP_NODELAY, 1);
        const std::string data = pattern(static_cast<size_t>(std::atoi(arg.c_str())), 5);
        char sink[4096];
        for (size_t at = 0; at < data.size(); at += 1000) {
            write_all(c, data.data() + at, std::min<size_t>(1000, data.size() - at));
            while (::recv(c, sink, sizeof sink, MSG_DONTWAIT) > 0) {
            }
            ::usleep(500);
        }
        ::shutdown(c, SHUT_WR);
        (void)read_to_eof(c);
        ::close(c);
        peer_exit(true, "");
    }
    if (role == "count-to-fin") {
        // Counts the bytes of one connection up to its FIN: `arg` expected.
        const int l = listen_on(g_kernel, g_port);
        signal_ready();
        const int c = accept_one(l, 20);
        const std::string got = read_to_eof(c);
        peer_exit(got == pattern(static_cast<size_t>(std::atoi(arg.c_str())), 9),
                  "got " + std::to_string(got.size()) + " bytes");
    }
    peer_exit(false, "unknown peer role " + role);
}

// ------------------------------------------------------------ scenarios (under ustack)

// Data both ways through a kernel echo server: 2 MB, written and read
// concurrently with poll (backpressure in both directions), then
// shutdown(SHUT_WR) → the peer's EOF → its close → our EOF.
void client_echo() {
    const pid_t peer = kernel_peer("echo");
    const int fd = connect_to(g_kernel, g_port);
    sockaddr_in peer_addr{};
    socklen_t len = sizeof peer_addr;
    CHECK(::getpeername(fd, reinterpret_cast<sockaddr*>(&peer_addr), &len) == 0, "getpeername");
    CHECK(peer_addr.sin_port == htons(g_port), "getpeername port");
    // A blocking connect leaves the socket SS_CONNECTED: connect() again,
    // on the fd or a dup of it, is EISCONN at once (not inet_stream_connect's
    // "0 once", which is for non-blocking callers).
    const int copy = ::dup(fd);
    CHECK(::connect(copy, reinterpret_cast<sockaddr*>(&peer_addr), sizeof peer_addr) < 0 && errno == EISCONN,
          "connect again on a dup: EISCONN");
    ::close(copy);
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&peer_addr), sizeof peer_addr) < 0 && errno == EISCONN,
          "connect again: EISCONN");
    sockaddr_in local{};
    len = sizeof local;
    CHECK(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0, "getsockname");
    char local_ip[32];
    ::inet_ntop(AF_INET, &local.sin_addr, local_ip, sizeof local_ip);
    CHECK(g_stack == local_ip && local.sin_port != 0, std::string("getsockname: ") + local_ip);

    const std::string data = pattern(2 * 1024 * 1024, 1);
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
    size_t sent = 0;
    std::string got;
    bool shut = false;
    char buf[65536];
    while (got.size() < data.size()) {
        pollfd p{fd, static_cast<short>(POLLIN | (sent < data.size() ? POLLOUT : 0)), 0};
        CHECK(::poll(&p, 1, 10000) == 1, "poll: stalled at sent " + std::to_string(sent) + " got " +
                                             std::to_string(got.size()));
        if ((p.revents & POLLOUT) != 0 && sent < data.size()) {
            const ssize_t n = ::write(fd, data.data() + sent, std::min<size_t>(data.size() - sent, 100000));
            CHECK(n > 0 || errno == EAGAIN, "write");
            sent += n > 0 ? static_cast<size_t>(n) : 0;
        }
        if (sent == data.size() && !shut) {
            CHECK(::shutdown(fd, SHUT_WR) == 0, "shutdown(SHUT_WR)");
            shut = true;
        }
        if ((p.revents & POLLIN) != 0) {
            const ssize_t n = ::read(fd, buf, sizeof buf);
            CHECK(n > 0 || (n < 0 && errno == EAGAIN), "read (early EOF?)");
            if (n > 0) {
                got.append(buf, static_cast<size_t>(n));
            }
        }
    }
    CHECK(got == data, "echoed data differs");
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    CHECK(::read(fd, buf, sizeof buf) == 0, "EOF after the peer's FIN");
    ::close(fd);
    expect_peer_ok(peer, "echo server saw our EOF");
}

// A ustack listener: accept4 with flags and the peer's address.
void server_accept() {
    const int l = listen_on("0.0.0.0", g_port);
    CHECK(get_int(l, SOL_SOCKET, SO_ACCEPTCONN) == 1, "SO_ACCEPTCONN on the listener");
    int fl = ::fcntl(l, F_GETFL);
    ::fcntl(l, F_SETFL, fl | O_NONBLOCK);
    CHECK(::accept(l, nullptr, nullptr) < 0 && errno == EAGAIN, "accept with nothing queued: EAGAIN");
    ::fcntl(l, F_SETFL, fl);
    const pid_t peer = kernel_peer("client");
    pollfd p{l, POLLIN, 0};
    CHECK(::poll(&p, 1, 10000) == 1, "listener readable");
    sockaddr_in from{};
    socklen_t len = sizeof from;
    const int c = ::accept4(l, reinterpret_cast<sockaddr*>(&from), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    CHECK(c >= 0, "accept4");
    char ip[32];
    ::inet_ntop(AF_INET, &from.sin_addr, ip, sizeof ip);
    CHECK(len == sizeof from && from.sin_family == AF_INET && g_kernel == ip, std::string("peer address ") + ip);
    CHECK((::fcntl(c, F_GETFL) & O_NONBLOCK) != 0, "SOCK_NONBLOCK");
    CHECK((::fcntl(c, F_GETFD) & FD_CLOEXEC) != 0, "SOCK_CLOEXEC");
    CHECK(get_int(c, SOL_SOCKET, SO_ACCEPTCONN) == 0, "SO_ACCEPTCONN on the connection");
    CHECK(get_int(c, SOL_SOCKET, SO_TYPE) == SOCK_STREAM, "SO_TYPE");
    CHECK(get_int(c, SOL_SOCKET, SO_DOMAIN) == AF_INET, "SO_DOMAIN");
    ::fcntl(c, F_SETFL, ::fcntl(c, F_GETFL) & ~O_NONBLOCK);
    set_timeouts(c, 10);
    CHECK(read_exact(c, 4) == "ping", "ping");
    write_all(c, "pong", 4);
    ::close(c);
    expect_peer_ok(peer, "client got pong then EOF");
    CHECK(::accept4(l, nullptr, nullptr, 0x4000000) < 0 && errno == EINVAL, "accept4 with bad flags: EINVAL");
    ::close(l);
}

// Non-blocking connect to a closed port: EINPROGRESS, then POLLOUT, and
// SO_ERROR says ECONNREFUSED (taken once).
void nonblock_refused() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a = address(g_kernel, g_port);
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 && errno == EINPROGRESS, "EINPROGRESS");
    pollfd p{fd, POLLOUT, 0};
    CHECK(::poll(&p, 1, 10000) == 1 && (p.revents & POLLOUT) != 0, "POLLOUT after the refusal");
    CHECK(get_int(fd, SOL_SOCKET, SO_ERROR) == ECONNREFUSED, "SO_ERROR ECONNREFUSED");
    CHECK(get_int(fd, SOL_SOCKET, SO_ERROR) == 0, "SO_ERROR taken once");
    ::close(fd);
    // Blocking: connect itself fails.
    const int b = tcp_socket();
    CHECK(::connect(b, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 && errno == ECONNREFUSED,
          "blocking connect ECONNREFUSED");
    ::close(b);
}

// Non-blocking connect that succeeds; no POLLOUT before the handshake
// (checked against an address that never answers ARP: EHOSTUNREACH).
void nonblock_connect() {
    const pid_t peer = kernel_peer("silent-listener");
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in a = address(g_kernel, g_port);
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 && errno == EINPROGRESS, "EINPROGRESS");
    pollfd p{fd, POLLOUT, 0};
    CHECK(::poll(&p, 1, 10000) == 1 && (p.revents & POLLOUT) != 0, "POLLOUT once connected");
    CHECK(get_int(fd, SOL_SOCKET, SO_ERROR) == 0, "SO_ERROR 0");
    // inet_stream_connect: once more after the EINPROGRESS → 0, then EISCONN.
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect again: 0");
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) < 0 && errno == EISCONN, "EISCONN");
    CHECK(::send(fd, "after-connect", 13, 0) == 13, "send");
    ::close(fd);
    expect_peer_ok(peer, "the peer got our data and FIN");

    // Nobody at .77: ARP fails. No POLLOUT for the first 500 ms.
    std::string dead = g_kernel.substr(0, g_kernel.rfind('.')) + ".77";
    const int d = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    sockaddr_in da = address(dead, g_port);
    CHECK(::connect(d, reinterpret_cast<sockaddr*>(&da), sizeof da) < 0 && errno == EINPROGRESS, "EINPROGRESS (dead)");
    pollfd q{d, POLLOUT, 0};
    CHECK(::poll(&q, 1, 500) == 0, "no POLLOUT while the handshake runs");
    ::close(d);
}

// What a program sets on its socket before connect() moves it to ustack
// holds afterwards, whichever way it was set: ioctl(FIONBIO), fcntl
// F_SETFL / F_SETFD, socket()'s flags, an option set through a dup, and
// a flag set by a forked child on the socket both processes hold. The
// swap takes socket()'s flags as they were only while the shim has seen
// every route by which they could have changed; these are those routes.
void flags_before_swap() {
    const std::string dead = g_kernel.substr(0, g_kernel.rfind('.')) + ".77";  // never answers ARP
    const sockaddr_in nobody = address(dead, g_port);
    const sockaddr_in closed = address(g_kernel, g_port);  // nothing listens: refused
    auto connect_to_addr = [](int fd, const sockaddr_in& a) {
        return ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
    };

    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    int on = 1;
    CHECK(::ioctl(s, FIONBIO, &on) == 0, "FIONBIO");
    CHECK(connect_to_addr(s, nobody) < 0 && errno == EINPROGRESS, "FIONBIO before connect: EINPROGRESS at once");
    ::close(s);

    s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::fcntl(s, F_SETFL, ::fcntl(s, F_GETFL) & ~O_NONBLOCK);
    CHECK(connect_to_addr(s, closed) < 0 && errno == ECONNREFUSED,
          "SOCK_NONBLOCK cleared by F_SETFL: the blocking connect's ECONNREFUSED");
    ::close(s);

    s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(connect_to_addr(s, closed) < 0 && errno == EINPROGRESS, "SOCK_NONBLOCK: EINPROGRESS");
    ::close(s);

    s = ::socket(AF_INET, SOCK_STREAM, 0);
    const pid_t child = ::fork();
    if (child == 0) {
        int nonblocking = 1;
        ::_exit(::ioctl(s, FIONBIO, &nonblocking) == 0 ? 0 : 1);
    }
    int status = 0;
    CHECK(child > 0 && ::waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "a child sets FIONBIO");
    CHECK(connect_to_addr(s, nobody) < 0 && errno == EINPROGRESS, "FIONBIO from a forked child: EINPROGRESS");
    ::close(s);

    s = ::socket(AF_INET, SOCK_STREAM, 0);
    CHECK(::close_range(s, s, CLOSE_RANGE_CLOEXEC) == 0, "close_range(CLOSE_RANGE_CLOEXEC)");
    CHECK(connect_to_addr(s, closed) < 0 && errno == ECONNREFUSED, "refused (close_range CLOEXEC)");
    CHECK((::fcntl(s, F_GETFD) & FD_CLOEXEC) != 0, "FD_CLOEXEC from close_range kept");
    ::close(s);

    s = ::socket(AF_INET, SOCK_STREAM, 0);
    const int twin = ::fcntl(s, F_DUPFD_CLOEXEC, 0);
    CHECK(::fcntl(twin, F_SETFL, O_NONBLOCK) == 0, "O_NONBLOCK through an F_DUPFD copy");
    ::close(twin);
    CHECK(connect_to_addr(s, nobody) < 0 && errno == EINPROGRESS, "O_NONBLOCK set through a copy: EINPROGRESS");
    ::close(s);

    s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(connect_to_addr(s, closed) < 0 && errno == ECONNREFUSED, "refused (SOCK_CLOEXEC)");
    CHECK((::fcntl(s, F_GETFD) & FD_CLOEXEC) != 0, "SOCK_CLOEXEC kept");
    ::close(s);

    s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ::fcntl(s, F_SETFD, 0);
    CHECK(connect_to_addr(s, closed) < 0 && errno == ECONNREFUSED, "refused (FD_CLOEXEC cleared)");
    CHECK((::fcntl(s, F_GETFD) & FD_CLOEXEC) == 0, "F_SETFD 0 kept");
    ::close(s);

    // SO_SNDTIMEO bounds a blocking connect (EINPROGRESS when it runs
    // out): set on the socket itself, then through a dup that is closed
    // before the connect.
    for (const bool through_dup : {false, true}) {
        s = ::socket(AF_INET, SOCK_STREAM, 0);
        const int target = through_dup ? ::dup(s) : s;
        timeval timeout{0, 300000};
        CHECK(::setsockopt(target, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) == 0, "SO_SNDTIMEO");
        if (through_dup) {
            ::close(target);
        }
        timespec start{};
        ::clock_gettime(CLOCK_MONOTONIC, &start);
        CHECK(connect_to_addr(s, nobody) < 0 && errno == EINPROGRESS,
              std::string("SO_SNDTIMEO set ") + (through_dup ? "through a dup" : "on the socket") + ": EINPROGRESS");
        timespec end{};
        ::clock_gettime(CLOCK_MONOTONIC, &end);
        const long waited_ms = (end.tv_sec - start.tv_sec) * 1000 + (end.tv_nsec - start.tv_nsec) / 1000000;
        CHECK(waited_ms >= 250 && waited_ms < 2000, "connect waited " + std::to_string(waited_ms) + " ms, not ~300");
        ::close(s);
    }
}

// A counter of this program's inproc host (`ustackctl stats`); -1 in
// daemon mode.
long inproc_host_stat(const std::string& name) {
    const char* mode = std::getenv("USTACK_MODE");
    const char* dev = std::getenv("USTACK_DEV");
    if (mode == nullptr || std::string(mode) != "inproc" || dev == nullptr) {
        return -1;
    }
    const std::string command = g_self.substr(0, g_self.rfind('/')) + "/ustackctl --dev " + dev + " stats";
    FILE* out = ::popen(command.c_str(), "r");
    CHECK(out != nullptr, "popen ustackctl");
    long value = -1;
    char line[256];
    while (std::fgets(line, sizeof line, out) != nullptr) {
        const std::string text = line;
        if (text.rfind(name + " ", 0) == 0) {
            value = std::atol(text.c_str() + name.size() + 1);
        }
    }
    ::pclose(out);
    CHECK(value >= 0, "ustackctl stats has no " + name);
    return value;
}

// A connection made after fork() is the parent's alone: its close() sends
// the FIN at once, while a forked child (which holds every fd the parent
// had at the fork) still lives. An inproc host keeps socketpairs made
// ahead of time; a child must not keep their app ends.
void fork_then_connect() {
    pid_t peer = kernel_peer("echo");
    int fd = connect_to(g_kernel, g_port);
    write_all(fd, "x", 1);
    CHECK(read_exact(fd, 1) == "x", "echo before the fork");
    ::close(fd);
    expect_peer_ok(peer, "first connection");
    // Inproc: the connect above asked the host thread for spare pairs;
    // the one after the fork must take a spare made before it.
    for (int i = 0; i < 200 && inproc_host_stat("spare_pairs_made") == 0; ++i) {
        ::usleep(10000);
    }
    const long taken_before = inproc_host_stat("spare_pairs_taken");
    CHECK(taken_before < 0 || inproc_host_stat("spare_pairs_made") > 0, "the host thread made spare pairs");
    const pid_t sleeper = ::fork();
    if (sleeper == 0) {
        ::sleep(20);
        ::_exit(0);
    }
    CHECK(sleeper > 0, "fork");
    peer = kernel_peer("expect-fin");
    fd = connect_to(g_kernel, g_port);
    ::close(fd);
    CHECK(taken_before < 0 || inproc_host_stat("spare_pairs_taken") > taken_before,
          "the connect after the fork took a spare pair");
    int status = 0;
    bool finished = false;
    for (int i = 0; i < 200 && !finished; ++i) {
        finished = ::waitpid(peer, &status, WNOHANG) == peer;
        if (!finished) {
            ::usleep(10000);
        }
    }
    ::kill(sleeper, SIGKILL);
    ::waitpid(sleeper, nullptr, 0);
    if (!finished) {
        ::kill(peer, SIGKILL);
        ::waitpid(peer, nullptr, 0);
    }
    CHECK(finished && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the peer saw the FIN within 2 s while a forked child lived");
}

// A peer reset: the data before it, then ECONNRESET; then EPIPE, with
// SIGPIPE unless MSG_NOSIGNAL.
volatile sig_atomic_t g_sigpipes = 0;
void on_sigpipe(int) { g_sigpipes = g_sigpipes + 1; }

void peer_reset() {
    ::signal(SIGPIPE, on_sigpipe);
    const pid_t peer = kernel_peer("reset");
    const int fd = connect_to(g_kernel, g_port);
    CHECK(read_exact(fd, 3) == "bye", "data before the reset");
    expect_peer_ok(peer, "reset sent");
    char buf[16];
    pollfd p{fd, POLLIN, 0};
    CHECK(::poll(&p, 1, 5000) == 1, "readable after the reset");
    ::usleep(100000);
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    CHECK(n < 0 && errno == ECONNRESET, "recv after RST: ECONNRESET, got " + std::to_string(n));
    CHECK(::send(fd, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "send after reset: EPIPE");
    CHECK(g_sigpipes == 0, "no SIGPIPE with MSG_NOSIGNAL");
    CHECK(::write(fd, "x", 1) < 0 && errno == EPIPE, "write after reset: EPIPE");
    CHECK(g_sigpipes == 1, "SIGPIPE without MSG_NOSIGNAL");
    ::close(fd);
}

// shutdown(SHUT_WR) then send: EPIPE (+ SIGPIPE); shutdown on an
// unconnected socket: ENOTCONN.
void shutdown_epipe() {
    ::signal(SIGPIPE, on_sigpipe);
    const pid_t peer = kernel_peer("echo");
    const int fd = connect_to(g_kernel, g_port);
    write_all(fd, "abc", 3);
    CHECK(::shutdown(fd, SHUT_WR) == 0, "shutdown");
    CHECK(::send(fd, "x", 1, MSG_NOSIGNAL) < 0 && errno == EPIPE, "EPIPE after SHUT_WR");
    CHECK(g_sigpipes == 0, "MSG_NOSIGNAL honoured");
    CHECK(::send(fd, "x", 1, 0) < 0 && errno == EPIPE, "EPIPE again");
    CHECK(g_sigpipes == 1, "SIGPIPE");
    CHECK(read_to_eof(fd) == "abc", "echo then EOF");
    ::close(fd);
    expect_peer_ok(peer, "echo saw EOF");
    const int u = tcp_socket();
    sockaddr_in a = address(g_stack, static_cast<uint16_t>(g_port + 1));
    CHECK(::bind(u, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "bind");
    CHECK(::shutdown(u, SHUT_RDWR) < 0 && errno == ENOTCONN, "shutdown unconnected: ENOTCONN");
    ::close(u);
}

// Options reach the stack socket and read back as Linux reports them;
// TCP_INFO, FIONREAD, FIONBIO.
void options() {
    const pid_t peer = kernel_peer("echo");
    const int fd = tcp_socket();
    // Set before the swap (on the kernel socket), replayed at connect.
    set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
    set_int(fd, SOL_SOCKET, SO_RCVBUF, 65536);
    set_timeouts(fd, 10);
    sockaddr_in a = address(g_kernel, g_port);
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0, "connect");
    CHECK(get_int(fd, IPPROTO_TCP, TCP_NODELAY) == 1, "TCP_NODELAY replayed");
    CHECK(get_int(fd, SOL_SOCKET, SO_RCVBUF) == 131072, "SO_RCVBUF replayed (doubled)");
    set_int(fd, SOL_SOCKET, SO_SNDBUF, 100000);
    CHECK(get_int(fd, SOL_SOCKET, SO_SNDBUF) == 200000, "SO_SNDBUF doubled");
    set_int(fd, SOL_SOCKET, SO_KEEPALIVE, 1);
    CHECK(get_int(fd, SOL_SOCKET, SO_KEEPALIVE) == 1, "SO_KEEPALIVE");
    set_int(fd, IPPROTO_TCP, TCP_KEEPIDLE, 30);
    set_int(fd, IPPROTO_TCP, TCP_KEEPINTVL, 5);
    set_int(fd, IPPROTO_TCP, TCP_KEEPCNT, 4);
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPIDLE) == 30, "TCP_KEEPIDLE");
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPINTVL) == 5, "TCP_KEEPINTVL");
    CHECK(get_int(fd, IPPROTO_TCP, TCP_KEEPCNT) == 4, "TCP_KEEPCNT");
    int bad = 0;
    CHECK(::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &bad, sizeof bad) < 0 && errno == EINVAL, "TCP_KEEPIDLE 0");
    linger lg{1, 7};
    CHECK(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0, "SO_LINGER");
    linger back{};
    socklen_t len = sizeof back;
    CHECK(::getsockopt(fd, SOL_SOCKET, SO_LINGER, &back, &len) == 0 && back.l_onoff == 1 && back.l_linger == 7,
          "SO_LINGER back");
    lg = linger{0, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    CHECK(get_int(fd, SOL_SOCKET, SO_TYPE) == SOCK_STREAM && get_int(fd, SOL_SOCKET, SO_DOMAIN) == AF_INET &&
              get_int(fd, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_TCP,
          "SO_TYPE/SO_DOMAIN/SO_PROTOCOL");
    tcp_info info{};
    len = sizeof info;
    CHECK(::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0, "TCP_INFO");
    CHECK(info.tcpi_state == TCP_ESTABLISHED, "tcpi_state ESTABLISHED: " + std::to_string(info.tcpi_state));
    CHECK(info.tcpi_snd_mss > 500 && info.tcpi_snd_mss <= 1460, "tcpi_snd_mss " + std::to_string(info.tcpi_snd_mss));
    CHECK(info.tcpi_rto >= 200000, "tcpi_rto " + std::to_string(info.tcpi_rto));
    // FIONREAD: what the echo sent back.
    write_all(fd, "0123456789", 10);
    pollfd p{fd, POLLIN, 0};
    CHECK(::poll(&p, 1, 5000) == 1, "echo readable");
    int avail = 0;
    for (int i = 0; i < 100 && avail < 10; ++i) {
        CHECK(::ioctl(fd, FIONREAD, &avail) == 0, "FIONREAD");
        if (avail < 10) {
            ::usleep(10000);
        }
    }
    CHECK(avail == 10, "FIONREAD = " + std::to_string(avail));
    int on = 1;
    CHECK(::ioctl(fd, FIONBIO, &on) == 0 && (::fcntl(fd, F_GETFL) & O_NONBLOCK) != 0, "FIONBIO");
    char buf[32];
    CHECK(::recv(fd, buf, sizeof buf, 0) == 10, "read the echo");
    CHECK(::recv(fd, buf, sizeof buf, 0) < 0 && errno == EAGAIN, "EAGAIN when empty (non-blocking)");
    ::close(fd);
    expect_peer_ok(peer, "echo saw EOF");
}

// epoll on a ustack listener, a ustack connection and a pipe, level and
// edge triggered.
void epoll_mixed() {
    const int l = listen_on("0.0.0.0", g_port);
    int pipefd[2];
    CHECK(::pipe(pipefd) == 0, "pipe");
    const int ep = ::epoll_create1(0);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = l;
    CHECK(::epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev) == 0, "epoll add listener");
    ev.data.fd = pipefd[0];
    CHECK(::epoll_ctl(ep, EPOLL_CTL_ADD, pipefd[0], &ev) == 0, "epoll add pipe");
    const pid_t peer = kernel_peer("client");
    epoll_event out[4];
    CHECK(::epoll_wait(ep, out, 4, 10000) == 1 && out[0].data.fd == l, "listener ready via epoll");
    const int c = ::accept4(l, nullptr, nullptr, SOCK_NONBLOCK);
    CHECK(c >= 0, "accept4");
    ev.events = EPOLLIN | EPOLLET;
    ev.data.fd = c;
    CHECK(::epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) == 0, "epoll add connection (edge)");
    CHECK(::write(pipefd[1], "p", 1) == 1, "pipe write");
    bool saw_pipe = false;
    bool saw_conn = false;
    for (int round = 0; round < 100 && !(saw_pipe && saw_conn); ++round) {
        const int n = ::epoll_wait(ep, out, 4, 100);
        for (int i = 0; i < n; ++i) {
            if (out[i].data.fd == pipefd[0] && !saw_pipe) {
                saw_pipe = true;
                char x;
                CHECK(::read(pipefd[0], &x, 1) == 1, "pipe read");  // level-triggered: consumed
            }
            saw_conn |= out[i].data.fd == c;
        }
    }
    CHECK(saw_pipe && saw_conn, "both the pipe and the connection reported");
    // Edge-triggered: no new event until new data.
    int n = ::epoll_wait(ep, out, 4, 200);
    for (int i = 0; i < n; ++i) {
        CHECK(out[i].data.fd != c, "edge-triggered connection reported twice");
    }
    char buf[8];
    CHECK(::recv(c, buf, sizeof buf, 0) == 4 && std::memcmp(buf, "ping", 4) == 0, "ping");
    CHECK(::send(c, "pong", 4, 0) == 4, "pong");
    ::close(c);
    expect_peer_ok(peer, "client got pong");
    ::close(ep);
    ::close(l);
}

// Close with SO_LINGER {1, 0}: the peer sees a reset.
void linger_zero() {
    const pid_t peer = kernel_peer("expect-reset");
    const int fd = connect_to(g_kernel, g_port);
    write_all(fd, "data", 4);
    ::usleep(100000);
    linger lg{1, 0};
    CHECK(::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0, "SO_LINGER");
    ::close(fd);
    expect_peer_ok(peer, "the peer saw ECONNRESET");
}

// Close with received data never read: a reset (tcp_close); with
// everything read: a FIN.
void close_unread() {
    const pid_t peer = kernel_peer("expect-reset", "1000");
    const int fd = connect_to(g_kernel, g_port);
    pollfd p{fd, POLLIN, 0};
    CHECK(::poll(&p, 1, 5000) == 1, "data arrived");
    ::usleep(200000);
    ::close(fd);
    expect_peer_ok(peer, "the peer saw ECONNRESET");
    const pid_t peer2 = kernel_peer("expect-fin", "1000");
    const int fd2 = connect_to(g_kernel, g_port);
    CHECK(read_exact(fd2, 1000).size() == 1000, "read everything");
    ::close(fd2);
    expect_peer_ok(peer2, "the peer saw a FIN");
}

// fork: two children accept on the parent's listener (as nginx workers).
void fork_accept() {
    const int l = listen_on("0.0.0.0", g_port);
    pid_t workers[2];
    for (pid_t& w : workers) {
        w = ::fork();
        CHECK(w >= 0, "fork");
        if (w == 0) {
            alarm(20);
            const int c = accept_one(l, 15);
            const std::string reply = "served by " + std::to_string(::getpid());
            write_all(c, reply.data(), reply.size());
            ::close(c);
            std::_Exit(0);
        }
    }
    ::close(l);  // the workers hold it
    const pid_t peer = kernel_peer("clients", "2");
    for (pid_t w : workers) {
        int status = 0;
        CHECK(::waitpid(w, &status, 0) == w && WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker");
    }
    expect_peer_ok(peer, "both connections served");
}

// A daemonizing server: the parent exits, the child keeps the listener.
void daemonize() {
    const int l = listen_on("0.0.0.0", g_port);
    const pid_t child = ::fork();
    CHECK(child >= 0, "fork");
    if (child > 0) {
        std::printf("PASS %s (parent)\n", g_scenario.c_str());
        std::fflush(stdout);
        std::_Exit(0);  // the test waits for the port, then connects
    }
    ::setsid();
    alarm(20);
    const int c = accept_one(l, 15);
    write_all(c, "served by the daemon", 20);
    ::close(c);
    ::close(l);
    std::_Exit(0);
}

// A program killed by SIGKILL: the host ends its connection with a FIN.
void sigkill() {
    const pid_t peer = kernel_peer("expect-fin");
    const pid_t child = ::fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        const int fd = connect_to(g_kernel, g_port);
        write_all(fd, "x", 1);
        ::pause();
        std::_Exit(0);
    }
    ::usleep(500000);
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    expect_peer_ok(peer, "the peer saw a FIN after SIGKILL");
}

// exec keeps the listener: the new image accepts on it.
void exec_keeps() {
    const int l = listen_on("0.0.0.0", g_port);
    const std::string fd = std::to_string(l);
    const pid_t peer = kernel_peer("client");
    ::execl(g_self.c_str(), g_self.c_str(), "exec-child", g_kernel.c_str(), g_stack.c_str(),
            std::to_string(g_port).c_str(), fd.c_str(), static_cast<char*>(nullptr));
    fail("exec");
    (void)peer;
}

void exec_child(int l) {
    CHECK(get_int(l, SOL_SOCKET, SO_ACCEPTCONN) == 1, "inherited listener");
    const int c = accept_one(l, 10);
    CHECK(read_exact(c, 4) == "ping", "ping");
    write_all(c, "pong", 4);
    ::close(c);
    // The peer is our parent's child: it is not ours to wait for; give it
    // time to check.
    ::usleep(200000);
}

// AF_INET6 dual-stack listener: IPv4 peers with v4-mapped addresses;
// native IPv6 refused with ENETUNREACH.
void dual_stack() {
    const int l = listen_on("", g_port, AF_INET6);
    sockaddr_in6 me{};
    socklen_t len = sizeof me;
    CHECK(::getsockname(l, reinterpret_cast<sockaddr*>(&me), &len) == 0 && me.sin6_family == AF_INET6 &&
              ntohs(me.sin6_port) == g_port,
          "getsockname [::]");
    const pid_t peer = kernel_peer("client");
    sockaddr_in6 from{};
    len = sizeof from;
    pollfd p{l, POLLIN, 0};
    CHECK(::poll(&p, 1, 10000) == 1, "listener readable");
    const int c = ::accept(l, reinterpret_cast<sockaddr*>(&from), &len);
    CHECK(c >= 0, "accept");
    char ip[64];
    ::inet_ntop(AF_INET6, &from.sin6_addr, ip, sizeof ip);
    CHECK(from.sin6_family == AF_INET6 && std::string(ip) == "::ffff:" + g_kernel, std::string("peer ") + ip);
    CHECK(get_int(c, SOL_SOCKET, SO_DOMAIN) == AF_INET6, "SO_DOMAIN AF_INET6");
    set_timeouts(c, 10);
    CHECK(read_exact(c, 4) == "ping", "ping");
    write_all(c, "pong", 4);
    ::close(c);
    expect_peer_ok(peer, "client got pong");
    const int v6 = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 dst{};
    dst.sin6_family = AF_INET6;
    dst.sin6_port = htons(80);
    ::inet_pton(AF_INET6, "2001:db8::1", &dst.sin6_addr);
    CHECK(::connect(v6, reinterpret_cast<sockaddr*>(&dst), sizeof dst) < 0 && errno == ENETUNREACH,
          "native IPv6 connect: ENETUNREACH");
    ::close(v6);
    ::close(l);
}

// Connects to the kernel peer the test started (count-to-fin), retrying
// until it listens, and sends it the first `bytes` of the 300 000 it
// expects.
int connect_and_send_count(size_t bytes = 300000) {
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
        fd = tcp_socket();
        sockaddr_in a = address(g_kernel, g_port);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            CHECK(errno == ECONNREFUSED, "connect");
            ::close(fd);
            fd = -1;
            ::usleep(50000);
        }
    }
    CHECK(fd >= 0, "the kernel peer never listened");
    const std::string data = pattern(300000, 9);
    write_all(fd, data.data(), bytes);
    return fd;
}

// An atexit handler sends the rest and closes: it runs after the main
// thread's thread_local objects are gone (an inproc host's pass on this
// thread must not use them), and the peer still gets every byte and the FIN.
int g_atexit_fd = -1;
void send_rest_at_exit() {
    const std::string data = pattern(300000, 9);
    write_all(g_atexit_fd, data.data() + 200000, 100000);
    ::close(g_atexit_fd);
}

void atexit_send() {
    g_atexit_fd = connect_and_send_count(200000);
    char byte = 0;
    CHECK(::recv(g_atexit_fd, &byte, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN, "nothing to read yet");
    CHECK(std::atexit(send_rest_at_exit) == 0, "atexit");
    std::printf("PASS %s\n", g_scenario.c_str());
    std::fflush(stdout);
    std::exit(0);
}

// The program exits without closing its connection (the test runs the
// kernel peer): everything written arrives, then a FIN — in inproc mode
// the exiting program's host thread ends the connection.
void exit_without_close() {
    (void)connect_and_send_count();
    std::printf("PASS %s\n", g_scenario.c_str());
    std::fflush(stdout);
    std::exit(0);  // no close(): the exit does it
}

// How a blocking recv() ends: at SO_RCVTIMEO (EAGAIN), on a signal (EINTR
// without SA_RESTART, restarted with it when no timeout is set,
// sock_intr_errno), on another thread's shutdown(SHUT_RD) (0), or with
// data; and two threads blocked on two connections both get theirs. An
// inproc host has the waiting thread work its loop (Host::caller_wait):
// each of these must end that wait as Linux ends the sleep.
std::atomic<int> g_signals{0};
void count_signal(int) { g_signals.fetch_add(1); }

int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

void set_rcvtimeo_ms(int fd, int ms) {
    timeval tv{ms / 1000, (ms % 1000) * 1000};
    CHECK(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO");
}

// An inproc host's thread stays out of the loop after a call while the
// program keeps calling (Host::end_app_turn). A program that then waits
// where the shim cannot see it (a raw ppoll) still gets its bytes: the
// lookout timer brings the host thread back. One that waits in poll()
// brings it back itself, at once: the lookout never has to.
void lazy_host_return() {
    const pid_t peer = kernel_peer("delayed-echo", "1");
    const int fd = connect_to(g_kernel, g_port);
    write_all(fd, "a", 1);
    const int64_t start = now_ms();
    pollfd p{fd, POLLIN, 0};
    timespec limit{5, 0};
    const long ready = ::syscall(SYS_ppoll, &p, 1, &limit, nullptr, sizeof(uint64_t));
    const int64_t waited = now_ms() - start;
    CHECK(ready == 1, "a raw ppoll saw the echo");
    CHECK(waited < 1500, "the echo came after " + std::to_string(waited) + " ms, not ~300");
    CHECK(read_exact(fd, 1) == "a", "the first echo");
    const long before = inproc_host_stat("host_thread_lookout_returns");
    const long sends_before = inproc_host_stat("caller_sends");
    for (int i = 0; i < 5; ++i) {
        // The host thread took the last echo: once it is back asleep, the
        // write goes out on this thread (a turn), not through the pair.
        ::usleep(50000);
        write_all(fd, "b", 1);
        pollfd q{fd, POLLIN, 0};
        CHECK(::poll(&q, 1, 5000) == 1, "poll saw the echo");
        CHECK(read_exact(fd, 1) == "b", "an echo after poll");
    }
    const long after = inproc_host_stat("host_thread_lookout_returns");
    // Writes that went through the pair would bring the host thread back
    // themselves, and prove nothing about poll().
    CHECK(sends_before < 0 || inproc_host_stat("caller_sends") - sends_before >= 3,
          "the writes went out on this thread (caller_sends)");
    // A descheduling between a write and its poll (2 ms) may let the
    // lookout come first now and then; without poll() bringing the host
    // thread back, it would come back on the lookout every time.
    CHECK(before < 0 || after - before <= 2,
          "poll() brought the host thread back itself (lookout returns " + std::to_string(after - before) + " of 5)");
    CHECK(::shutdown(fd, SHUT_WR) == 0, "shutdown");
    CHECK(read_to_eof(fd).empty(), "EOF after the peer's close");
    ::close(fd);
    expect_peer_ok(peer, "the delayed echo saw our FIN");
}

void blocking_waits() {
    const pid_t peer = kernel_peer("delayed-echo", "3");
    const int a = connect_to(g_kernel, g_port);
    const int b = connect_to(g_kernel, g_port);
    const int c = connect_to(g_kernel, g_port);
    char buf[16];

    // SO_RCVTIMEO: EAGAIN after the timeout, not before.
    set_rcvtimeo_ms(a, 200);
    int64_t t0 = now_ms();
    CHECK(::recv(a, buf, sizeof buf, 0) < 0 && errno == EAGAIN, "recv past SO_RCVTIMEO: EAGAIN");
    const int64_t waited = now_ms() - t0;
    CHECK(waited >= 150 && waited < 3000, "SO_RCVTIMEO 200 ms waited " + std::to_string(waited) + " ms");

    // A signal without SA_RESTART: EINTR.
    set_rcvtimeo_ms(a, 0);
    struct sigaction action {};
    action.sa_handler = count_signal;
    sigemptyset(&action.sa_mask);
    CHECK(::sigaction(SIGUSR1, &action, nullptr) == 0, "sigaction");
    const pthread_t self = ::pthread_self();
    auto signal_later = [self](int ms) {
        return std::thread([self, ms] {
            std::this_thread::sleep_for(std::chrono::milliseconds(ms));
            ::pthread_kill(self, SIGUSR1);
        });
    };
    std::thread kill1 = signal_later(100);
    CHECK(::recv(a, buf, sizeof buf, 0) < 0 && errno == EINTR, "recv interrupted: EINTR");
    kill1.join();
    CHECK(g_signals.load() == 1, "the handler ran");

    // With SA_RESTART and no timeout the recv goes on and gets the echo
    // (sent back 300 ms after our byte; the signal comes at 100 ms).
    action.sa_flags = SA_RESTART;
    CHECK(::sigaction(SIGUSR1, &action, nullptr) == 0, "sigaction SA_RESTART");
    write_all(a, "r", 1);
    std::thread kill2 = signal_later(100);
    CHECK(::recv(a, buf, sizeof buf, 0) == 1 && buf[0] == 'r', "recv restarted after the signal");
    kill2.join();
    CHECK(g_signals.load() == 2, "the handler ran again");

    // Another thread's shutdown(SHUT_RD) ends a blocked recv with 0.
    std::thread shut([b] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        ::shutdown(b, SHUT_RD);
    });
    t0 = now_ms();
    CHECK(::recv(b, buf, sizeof buf, 0) == 0, "recv after another thread's shutdown(SHUT_RD): 0");
    shut.join();
    CHECK(now_ms() - t0 < 3000, "shutdown(SHUT_RD) ended the wait at once");

    // Two threads blocked on two connections: both get their echo.
    std::atomic<int> got{0};
    auto reader = [&got](int fd, char want) {
        char one = 0;
        if (::recv(fd, &one, 1, 0) == 1 && one == want) {
            got.fetch_add(1);
        }
    };
    std::thread ra(reader, a, 'x');
    std::thread rc(reader, c, 'y');
    std::this_thread::sleep_for(std::chrono::milliseconds(50));  // both asleep in recv
    write_all(c, "y", 1);
    write_all(a, "x", 1);
    ra.join();
    rc.join();
    CHECK(got.load() == 2, "two blocked readers: " + std::to_string(got.load()) + " of 2 got their data");
    ::close(a);
    ::close(b);
    ::close(c);
    expect_peer_ok(peer, "every connection ended with EOF");
}

// Bytes the app sends by a route the shim does not see (sendfile straight
// into the app end) and a write() right after them reach the peer in
// order. The write may go straight into the engine (an inproc host, idle
// connection): what waits in the pair must go first.
void write_order() {
    const size_t chunk = 100;
    const size_t rounds = 60;
    const std::string data = pattern(2 * chunk * rounds, 9);
    const pid_t peer = kernel_peer("count-to-fin", std::to_string(data.size()));
    const int fd = connect_to(g_kernel, g_port);
    char path[] = "/tmp/ustack-write-order-XXXXXX";
    const int file = ::mkstemp(path);
    CHECK(file >= 0, "mkstemp");
    ::unlink(path);
    CHECK(::write(file, data.data(), data.size()) == static_cast<ssize_t>(data.size()), "temp file");
    for (size_t i = 0; i < rounds; ++i) {
        off_t offset = static_cast<off_t>(2 * chunk * i);
        CHECK(::sendfile(fd, file, &offset, chunk) == static_cast<ssize_t>(chunk), "sendfile");
        write_all(fd, data.data() + 2 * chunk * i + chunk, chunk);
        ::usleep(2000);  // acknowledged meanwhile: the next write finds the connection idle
    }
    ::close(file);
    ::close(fd);
    expect_peer_ok(peer, "the peer got every byte in order");
}

// Blocking reads of every shape while the data trickles in: the bytes come
// out whole and in order. An inproc host copies the engine's next bytes
// straight into a blocked reader's buffer and the rest into the pair
// (TcpHostSocket::LentBuffer): buffers smaller and larger than a segment,
// readv over three pieces, recv(MSG_PEEK) (never lent), read().
void read_order() {
    const size_t total = 200000;
    const pid_t peer = kernel_peer("trickle", std::to_string(total));
    const int fd = connect_to(g_kernel, g_port);
    const std::string want = pattern(total, 5);
    // Another thread writes now and then on the same socket: on an inproc
    // host its sends run loop passes too (Host::caller_send), which take
    // the peer's pieces while this thread sleeps and put them into the
    // pair; they must come out before anything read later.
    std::atomic<bool> reading{true};
    std::thread writer([fd, &reading] {
        while (reading.load()) {
            (void)::send(fd, "w", 1, MSG_NOSIGNAL);
            std::this_thread::sleep_for(std::chrono::microseconds(700));
        }
    });
    std::string got;
    const size_t sizes[] = {1, 7, 100, 1460, 4096, 65536};
    char buf[65536];
    for (size_t round = 0;; ++round) {
        const size_t size = sizes[round % (sizeof sizes / sizeof sizes[0])];
        ssize_t n = 0;
        switch (round % 4) {
        case 0:
            n = ::recv(fd, buf, size, 0);
            break;
        case 1: {
            char a[3], b[5];
            iovec iov[3] = {{a, sizeof a}, {b, sizeof b}, {buf, size}};
            n = ::readv(fd, iov, 3);
            if (n > 0) {
                std::string joined(a, sizeof a);
                joined.append(b, sizeof b);
                joined.append(buf, size);
                std::memcpy(buf, joined.data(), static_cast<size_t>(n));
            }
            break;
        }
        case 2: {
            char peeked[16];
            const ssize_t p = ::recv(fd, peeked, sizeof peeked, MSG_PEEK);
            CHECK(p >= 0, "recv(MSG_PEEK)");
            n = ::recv(fd, buf, size, 0);
            CHECK(p == 0 || (n > 0 && std::memcmp(peeked, buf, std::min<size_t>(static_cast<size_t>(p), static_cast<size_t>(n))) == 0),
                  "a peek shows the bytes the next read returns");
            break;
        }
        default:
            n = ::read(fd, buf, size);
            break;
        }
        CHECK(n >= 0, "read at " + std::to_string(got.size()));
        if (n == 0) {
            break;
        }
        got.append(buf, static_cast<size_t>(n));
    }
    reading.store(false);
    writer.join();
    CHECK(got.size() == want.size(), "got " + std::to_string(got.size()) + " of " + std::to_string(want.size()) + " bytes");
    CHECK(got == want, "the bytes came out of order");
    // After the peer's FIN, closing one of two fds of the socket is not its
    // close: the other still writes (CLOSE_WAIT) and names the connection.
    const int copy = ::dup(fd);
    CHECK(copy >= 0, "dup");
    ::close(fd);
    sockaddr_in peer_addr{};
    socklen_t len = sizeof peer_addr;
    CHECK(::getpeername(copy, reinterpret_cast<sockaddr*>(&peer_addr), &len) == 0, "getpeername on the dup");
    CHECK(::send(copy, "x", 1, MSG_NOSIGNAL) == 1, "send on the dup after closing the other fd");
    ::close(copy);
    expect_peer_ok(peer, "trickle sent everything");
}

// A signal handler ends the program (exit) while the main thread is
// blocked in recv: it exits at once, and what it wrote still reaches the
// peer with the FIN (the test's kernel peer counts it, as for
// exit-without-close). An inproc host whose loop that thread was working
// takes it back (Host::supersede_stuck_caller), or the exit would wait on
// it forever.
void exit_on_signal(int) {
    static const char pass[] = "PASS exit-in-handler\n";
    (void)!::write(1, pass, sizeof pass - 1);
    std::exit(0);
}

void exit_in_handler() {
    const int fd = connect_and_send_count();
    struct sigaction action {};
    action.sa_handler = exit_on_signal;
    sigemptyset(&action.sa_mask);
    CHECK(::sigaction(SIGUSR1, &action, nullptr) == 0, "sigaction");
    const pthread_t self = ::pthread_self();
    std::thread([self] {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        ::pthread_kill(self, SIGUSR1);
    }).detach();
    char byte = 0;
    (void)::recv(fd, &byte, 1, 0);  // the peer never sends: only the signal ends this
    fail("recv returned before the signal's exit");
}

// A signal handler does blocking I/O on another ustack socket while the
// interrupted thread was waiting in recv (on an inproc host: working its
// loop). The handler's recv gets its data, then the interrupted recv gets
// its own.
int g_handler_fd = -1;
std::atomic<int> g_handler_got{0};
void recv_in_handler(int) {
    char byte = 0;
    const ssize_t n = ::recv(g_handler_fd, &byte, 1, 0);
    if (n == 1 && byte == 'h') {
        g_handler_got.store(1);
    } else {
        char why[96];
        const int len = std::snprintf(why, sizeof why, "handler recv: %zd byte %d errno %d\n", n, byte, errno);
        (void)!::write(2, why, static_cast<size_t>(len));
    }
}

void handler_io() {
    const pid_t peer = kernel_peer("delayed-echo", "2");
    const int main_fd = connect_to(g_kernel, g_port);
    set_rcvtimeo_ms(main_fd, 0);  // SA_RESTART restarts only a recv without a timeout
    g_handler_fd = connect_to(g_kernel, g_port);
    struct sigaction action {};
    action.sa_handler = recv_in_handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    CHECK(::sigaction(SIGUSR1, &action, nullptr) == 0, "sigaction");
    write_all(g_handler_fd, "h", 1);  // echoed 300 ms later
    write_all(main_fd, "m", 1);
    const pthread_t self = ::pthread_self();
    std::thread kill([self] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        ::pthread_kill(self, SIGUSR1);
    });
    char byte = 0;
    const int64_t t0 = now_ms();
    CHECK(::recv(main_fd, &byte, 1, 0) == 1 && byte == 'm', "the interrupted recv gets its echo");
    kill.join();
    CHECK(g_handler_got.load() == 1, "the handler's recv got its echo");
    CHECK(now_ms() - t0 < 5000, "no stall of the stack while the handler ran");
    ::close(main_fd);
    ::close(g_handler_fd);
    expect_peer_ok(peer, "both connections ended with EOF");
}

// A handler installed while another thread keeps working the loop. Until
// a program's first handler, an inproc host's turns hold no signals back
// (no handler can run in one); from the installation on they hold them
// again, and the installation waits for the turns that did not. The
// handler makes an echo round trip on a second connection: run inside a
// turn of the thread it interrupted (which holds the loop's lock), nothing
// would move that connection's bytes and it would wait out its limit.
int g_late_fd = -1;
std::atomic<int> g_late_handled{0};
std::atomic<int> g_late_failed{0};
void echo_in_handler(int) {
    const int saved = errno;
    char byte = 'h';
    pollfd p{g_late_fd, POLLIN, 0};
    if (::send(g_late_fd, &byte, 1, MSG_NOSIGNAL) == 1 && ::poll(&p, 1, 3000) == 1 &&
        ::recv(g_late_fd, &byte, 1, 0) == 1 && byte == 'h') {
        g_late_handled.fetch_add(1);
    } else {
        g_late_failed.fetch_add(1);
    }
    errno = saved;
}

void handler_installed_late() {
    const pid_t peer = kernel_peer("echoes", "2");
    const int fd = connect_to(g_kernel, g_port);
    g_late_fd = connect_to(g_kernel, g_port);
    std::atomic<bool> stop{false};
    std::atomic<int> rounds{0};
    std::atomic<bool> broken{false};
    std::thread worker([&] {
        // Echo rounds; a signal may interrupt either call (EINTR: SO_RCVTIMEO
        // and SO_SNDTIMEO are set, SA_RESTART does not restart them).
        while (!stop.load()) {
            ssize_t n;
            do {
                n = ::send(fd, "x", 1, MSG_NOSIGNAL);
            } while (n < 0 && errno == EINTR);
            char byte = 0;
            ssize_t m;
            do {
                m = ::recv(fd, &byte, 1, 0);
            } while (m < 0 && errno == EINTR);
            if (n != 1 || m != 1 || byte != 'x') {
                broken.store(true);
                return;
            }
            rounds.fetch_add(1);
        }
    });
    const int64_t t0 = now_ms();
    while (rounds.load() < 200 && !broken.load() && now_ms() - t0 < 10000) {
        ::usleep(1000);
    }
    struct sigaction action {};
    action.sa_handler = echo_in_handler;
    action.sa_flags = SA_RESTART;
    sigemptyset(&action.sa_mask);
    CHECK(::sigaction(SIGUSR1, &action, nullptr) == 0, "sigaction");
    for (int i = 0; i < 40 && !broken.load() && g_late_failed.load() == 0; ++i) {
        const int before = g_late_handled.load();
        ::pthread_kill(worker.native_handle(), SIGUSR1);
        const int64_t t1 = now_ms();
        while (g_late_handled.load() == before && g_late_failed.load() == 0 && now_ms() - t1 < 5000) {
            ::usleep(200);
        }
        ::usleep(static_cast<useconds_t>(100 * (i % 7)));  // land at different points of the rounds
    }
    const int after = rounds.load();
    const int64_t t2 = now_ms();
    while (rounds.load() < after + 100 && !broken.load() && now_ms() - t2 < 10000) {
        ::usleep(1000);
    }
    stop.store(true);
    worker.join();
    CHECK(!broken.load(), "every echo round got its byte back");
    CHECK(g_late_failed.load() == 0, "the handler's round trip never stalled");
    CHECK(g_late_handled.load() == 40, "the handler ran once per signal");
    CHECK(rounds.load() >= after + 100, "the rounds went on after the handler came");
    ::close(fd);
    ::close(g_late_fd);
    expect_peer_ok(peer, "both echo connections ended with EOF");
}

// A non-blocking socket added to epoll before it connects to a ustack
// destination (nginx's upstream connections). Under an inproc host the
// fresh socket is a pair-backed candidate: the connect adopts the very
// file epoll watches, so the connect's completion and the echo show up
// there. In daemon mode it is a kernel socket that the connect replaces
// with the app end: the shim moves the registration with it.
void epoll_before_connect() {
    const pid_t peer = kernel_peer("echo");
    // A first ustack socket starts the inproc host, whose thread then
    // makes the spare pairs fresh sockets take.
    const int starter = listen_on("0.0.0.0", static_cast<uint16_t>(g_port + 1));
    ::usleep(100000);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0, "socket");
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLET;
    ev.data.u64 = 4242;
    CHECK(::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl ADD before connect");
    sockaddr_in a = address(g_kernel, g_port);
    const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    CHECK(rc == 0 || errno == EINPROGRESS, "connect");
    epoll_event out[2];
    const int n = ::epoll_wait(ep, out, 2, 5000);
    CHECK(n == 1 && out[0].data.u64 == 4242 && (out[0].events & EPOLLOUT) != 0 &&
              (out[0].events & (EPOLLERR | EPOLLHUP)) == 0,
          "epoll reports the connect's completion (n=" + std::to_string(n) + ")");
    int err = -1;
    socklen_t len = sizeof err;
    CHECK(::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0, "SO_ERROR 0");
    CHECK(::send(fd, "e", 1, MSG_NOSIGNAL) == 1, "send");
    bool echoed = false;
    for (int round = 0; round < 50 && !echoed; ++round) {
        if (::epoll_wait(ep, out, 2, 100) == 1 && (out[0].events & EPOLLIN) != 0) {
            char byte = 0;
            echoed = ::recv(fd, &byte, 1, MSG_DONTWAIT) == 1 && byte == 'e';
        }
    }
    CHECK(echoed, "epoll reports the echo");
    ::close(fd);
    ::close(ep);
    ::close(starter);
    expect_peer_ok(peer, "the echo connection ended with EOF");

    // An epoll set closed with a fresh socket still in it: a new set that
    // takes its number must not inherit the registration when the socket
    // then moves to ustack (its connect is refused: nothing listens there).
    const int gone = ::epoll_create1(EPOLL_CLOEXEC);
    const int s2 = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(gone >= 0 && s2 >= 0, "epoll_create1, socket");
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.u64 = 777;
    CHECK(::epoll_ctl(gone, EPOLL_CTL_ADD, s2, &ev) == 0, "epoll_ctl ADD into the set about to close");
    ::close(gone);
    const int fresh = ::epoll_create1(EPOLL_CLOEXEC);
    CHECK(fresh == gone, "the new epoll set has the closed one's number");
    a = address(g_kernel, static_cast<uint16_t>(g_port + 7));
    const int rc2 = ::connect(s2, reinterpret_cast<sockaddr*>(&a), sizeof a);
    CHECK(rc2 == 0 || errno == EINPROGRESS || errno == ECONNREFUSED, "connect to a closed port");
    CHECK(::epoll_wait(fresh, out, 2, 300) == 0, "the new set reports nothing it was not given");
    ::close(s2);
    ::close(fresh);
}

// Hundreds of connections queued, then accepted in one burst: each
// accept answers the host with the connection's ticket on the listener's
// pair (AcceptLedger), more answers than the pair's buffer holds unread.
// Every connection the program accepted and closed must end with FIN.
void accept_burst() {
    const int count = 400;
    const int l = listen_on("0.0.0.0", g_port);
    CHECK(::listen(l, 1024) == 0, "listen with a backlog of 1024");
    const pid_t peer = kernel_peer("burst", std::to_string(count));
    ::sleep(2);  // every connection made and queued
    for (int i = 0; i < count; ++i) {
        const int c = accept_one(l, 10);
        CHECK(::send(c, "x", 1, MSG_NOSIGNAL) == 1, "send");
        ::close(c);
    }
    ::close(l);
    expect_peer_ok(peer, "every accepted connection ended with its byte and EOF");
}

struct Scenario {
    const char* name;
    void (*run)();
};

const Scenario scenarios[] = {
    {"client-echo", client_echo},       {"server-accept", server_accept}, {"nonblock-refused", nonblock_refused},
    {"nonblock-connect", nonblock_connect}, {"peer-reset", peer_reset}, {"shutdown-epipe", shutdown_epipe},
    {"options", options},               {"epoll-mixed", epoll_mixed},     {"linger-zero", linger_zero},
    {"close-unread", close_unread},     {"fork-accept", fork_accept},     {"daemonize", daemonize},
    {"sigkill", sigkill},               {"exec-keeps", exec_keeps},       {"dual-stack", dual_stack},
    {"exit-without-close", exit_without_close}, {"flags-before-swap", flags_before_swap},
    {"fork-then-connect", fork_then_connect}, {"lazy-host-return", lazy_host_return},
    {"blocking-waits", blocking_waits},  {"write-order", write_order},        {"read-order", read_order},
    {"exit-in-handler", exit_in_handler}, {"handler-io", handler_io},      {"atexit-send", atexit_send},
    {"handler-installed-late", handler_installed_late}, {"epoll-before-connect", epoll_before_connect},
    {"accept-burst", accept_burst},
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 5) {
        std::fprintf(stderr, "usage: %s SCENARIO KERNEL_ADDR STACK_ADDR PORT [ARG]\n", argv[0]);
        return 2;
    }
    char self[4096];
    const ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    g_self = std::string(self, n > 0 ? static_cast<size_t>(n) : 0);
    g_scenario = argv[1];
    g_kernel = argv[2];
    g_stack = argv[3];
    g_port = static_cast<uint16_t>(std::atoi(argv[4]));
    const std::string arg = argc > 5 ? argv[5] : "";
    if (g_scenario.rfind("peer:", 0) == 0) {
        run_peer(g_scenario.substr(5), arg);
    }
    alarm(40);
    if (g_scenario == "exec-child") {
        exec_child(std::atoi(arg.c_str()));
        std::printf("PASS exec-keeps\n");
        return 0;
    }
    for (const Scenario& s : scenarios) {
        if (g_scenario == s.name) {
            s.run();
            std::printf("PASS %s\n", s.name);
            std::fflush(stdout);
            return 0;
        }
    }
    std::fprintf(stderr, "unknown scenario %s\n", g_scenario.c_str());
    return 2;
}
