// A plain socket-API program (no ustack code): the shim tests run it under
// ustack-run, and the same scenarios hold against the Linux kernel.
//
//   shim_prog_udp_semantics SCENARIO KERNEL_ADDR STACK_ADDR [ARG]
//
// Prints "PASS SCENARIO" and exits 0, or prints what went wrong and exits 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

std::string g_kernel;
std::string g_stack;
const char* g_self = nullptr;

[[noreturn]] void fail(const std::string& what) {
    std::printf("FAIL %s (errno %d: %s)\n", what.c_str(), errno, std::strerror(errno));
    std::fflush(stdout);
    std::exit(1);
}

#define CHECK(cond, what)   \
    do {                    \
        if (!(cond)) {      \
            fail(what);     \
        }                   \
    } while (0)

sockaddr_in address(const std::string& ip, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
    return a;
}

int udp_socket() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(fd >= 0, "socket");
    return fd;
}

int bind_to(int fd, const std::string& ip, uint16_t port) {
    sockaddr_in a = address(ip, port);
    return ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
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

sockaddr_in local_of(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    CHECK(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0, "getsockname");
    CHECK(len == sizeof a && a.sin_family == AF_INET, "getsockname family/length");
    return a;
}

void receive_timeout(int fd, int seconds) {
    timeval tv{seconds, 0};
    CHECK(::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) == 0, "SO_RCVTIMEO");
}

// Linux: a second bind of the same port fails, on the wildcard and on the
// specific address alike.
void bind_conflict() {
    const int a = udp_socket();
    CHECK(bind_to(a, "0.0.0.0", 5000) == 0, "first bind 0.0.0.0:5000");
    const int b = udp_socket();
    errno = 0;
    CHECK(bind_to(b, "0.0.0.0", 5000) < 0 && errno == EADDRINUSE, "second bind 0.0.0.0:5000 must be EADDRINUSE");
    errno = 0;
    CHECK(bind_to(b, g_stack, 5000) < 0 && errno == EADDRINUSE, "bind STACK:5000 must be EADDRINUSE");
    // The refused socket is still usable.
    CHECK(bind_to(b, "0.0.0.0", 5001) == 0, "bind of the refused socket to another port");
    errno = 0;
    CHECK(bind_to(b, "0.0.0.0", 5002) < 0 && errno == EINVAL, "a second bind of a bound socket must be EINVAL");
    CHECK(get_int(a, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM, "SO_TYPE");
    CHECK(get_int(a, SOL_SOCKET, SO_DOMAIN) == AF_INET, "SO_DOMAIN");
    CHECK(get_int(a, SOL_SOCKET, SO_PROTOCOL) == IPPROTO_UDP, "SO_PROTOCOL");
    CHECK(ntohs(local_of(a).sin_port) == 5000, "getsockname port");
    // Closing the owner frees the port.
    ::close(a);
    const int c = udp_socket();
    bool bound = false;
    for (int i = 0; i < 100 && !bound; ++i) {  // the host sees the close asynchronously
        bound = bind_to(c, "0.0.0.0", 5000) == 0;
        if (!bound) {
            ::usleep(10000);
        }
    }
    CHECK(bound, "bind after the owner closed");
}

// Two SO_REUSEADDR sockets share a port; one without it cannot join.
void reuseaddr() {
    const int a = udp_socket();
    set_int(a, SOL_SOCKET, SO_REUSEADDR, 1);  // before the socket moves to ustack: replayed
    CHECK(bind_to(a, "0.0.0.0", 5100) == 0, "bind a");
    CHECK(get_int(a, SOL_SOCKET, SO_REUSEADDR) == 1, "SO_REUSEADDR reads back 1");
    const int b = udp_socket();
    set_int(b, SOL_SOCKET, SO_REUSEADDR, 1);
    CHECK(bind_to(b, "0.0.0.0", 5100) == 0, "bind b with SO_REUSEADDR on both");
    const int c = udp_socket();
    errno = 0;
    CHECK(bind_to(c, "0.0.0.0", 5100) < 0 && errno == EADDRINUSE, "bind c without SO_REUSEADDR: EADDRINUSE");
    // SO_REUSEPORT alone does not match SO_REUSEADDR.
    set_int(c, SOL_SOCKET, SO_REUSEPORT, 1);
    errno = 0;
    CHECK(bind_to(c, "0.0.0.0", 5100) < 0 && errno == EADDRINUSE, "SO_REUSEPORT vs SO_REUSEADDR: EADDRINUSE");
    // SO_RCVBUF: Linux doubles the value.
    set_int(a, SOL_SOCKET, SO_RCVBUF, 4096);
    CHECK(get_int(a, SOL_SOCKET, SO_RCVBUF) == 8192, "SO_RCVBUF 4096 reads back 8192");
}

// A connected UDP socket learns of the kernel's port unreachable.
void econnrefused() {
    const int fd = udp_socket();
    sockaddr_in peer = address(g_kernel, 9);
    CHECK(::connect(fd, reinterpret_cast<sockaddr*>(&peer), sizeof peer) == 0, "connect");
    CHECK(::send(fd, "x", 1, 0) == 1, "send");
    receive_timeout(fd, 5);
    char buf[16];
    errno = 0;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    CHECK(n < 0 && errno == ECONNREFUSED, "recv after port unreachable must be ECONNREFUSED");
    CHECK(get_int(fd, SOL_SOCKET, SO_ERROR) == 0, "SO_ERROR is taken by the recv");
    // Once more, this time read through SO_ERROR.
    CHECK(::send(fd, "y", 1, 0) == 1, "second send");
    int err = 0;
    for (int i = 0; i < 300 && err == 0; ++i) {
        err = get_int(fd, SOL_SOCKET, SO_ERROR);
        if (err == 0) {
            ::usleep(10000);
        }
    }
    CHECK(err == ECONNREFUSED, "SO_ERROR after the second port unreachable");
    sockaddr_in got{};
    socklen_t len = sizeof got;
    CHECK(::getpeername(fd, reinterpret_cast<sockaddr*>(&got), &len) == 0 && ntohs(got.sin_port) == 9,
          "getpeername");
}

// sendto on an unbound socket binds an ephemeral port, in range.
void autobind(int low, int high) {
    const int fd = udp_socket();
    sockaddr_in peer = address(g_kernel, 9);
    CHECK(::sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&peer), sizeof peer) == 1, "sendto");
    const sockaddr_in local = local_of(fd);
    const int port = ntohs(local.sin_port);
    CHECK(port >= low && port <= high,
          "autobound port " + std::to_string(port) + " outside " + std::to_string(low) + "-" + std::to_string(high));
    CHECK(local.sin_addr.s_addr == htonl(INADDR_ANY), "autobound address is the wildcard");
    errno = 0;
    sockaddr_in none{};
    socklen_t len = sizeof none;
    CHECK(::getpeername(fd, reinterpret_cast<sockaddr*>(&none), &len) < 0 && errno == ENOTCONN,
          "getpeername of an unconnected socket: ENOTCONN");
    // connect() autobinds too.
    const int c = udp_socket();
    CHECK(::connect(c, reinterpret_cast<sockaddr*>(&peer), sizeof peer) == 0, "connect");
    const int cport = ntohs(local_of(c).sin_port);
    CHECK(cport >= low && cport <= high, "connect's autobound port in range");
    errno = 0;
    CHECK(::send(fd, "x", 1, 0) < 0 && errno == EDESTADDRREQ, "send without a peer: EDESTADDRREQ");
    int queued = -1;
    CHECK(::ioctl(fd, FIONREAD, &queued) == 0 && queued == 0, "FIONREAD on an empty socket");
}

// Loopback stays with the kernel.
void loopback_is_kernel() {
    const int fd = udp_socket();
    CHECK(bind_to(fd, "127.0.0.1", 0) == 0, "bind 127.0.0.1");
    const sockaddr_in local = local_of(fd);
    CHECK(local.sin_addr.s_addr == htonl(INADDR_LOOPBACK), "bound to loopback");
    const int peer = udp_socket();
    sockaddr_in to = local;
    CHECK(::sendto(peer, "lo", 2, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == 2, "sendto loopback");
    char buf[8];
    receive_timeout(fd, 3);
    CHECK(::recv(fd, buf, sizeof buf, 0) == 2, "recv over loopback");
}

// The shim of an exec'd program recognises inherited ustack sockets.
void exec_keeps_sockets() {
    const int fd = udp_socket();
    CHECK(bind_to(fd, "0.0.0.0", 5300) == 0, "bind 5300");
    const pid_t child = ::fork();
    CHECK(child >= 0, "fork");
    if (child == 0) {
        const std::string fd_text = std::to_string(fd);
        ::execl(g_self, g_self, "exec-child", g_kernel.c_str(), g_stack.c_str(), fd_text.c_str(),
                static_cast<char*>(nullptr));
        std::_Exit(127);
    }
    int status = 0;
    CHECK(::waitpid(child, &status, 0) == child, "waitpid");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exec'd child failed");
}

void exec_child(int fd) {
    const sockaddr_in local = local_of(fd);
    CHECK(ntohs(local.sin_port) == 5300, "inherited socket's getsockname after exec");
    CHECK(get_int(fd, SOL_SOCKET, SO_TYPE) == SOCK_DGRAM, "inherited socket's SO_TYPE after exec");
    std::exit(0);
}

// With the host unreachable: a clear errno, no hang.
void unreachable() {
    const int fd = udp_socket();
    sockaddr_in peer = address(g_kernel, 9);
    errno = 0;
    const ssize_t n = ::sendto(fd, "x", 1, 0, reinterpret_cast<sockaddr*>(&peer), sizeof peer);
    CHECK(n < 0 && (errno == ENETDOWN || errno == ECONNREFUSED), "sendto without a host: ENETDOWN/ECONNREFUSED");
    errno = 0;
    CHECK(bind_to(udp_socket(), "0.0.0.0", 5400) < 0 && (errno == ENETDOWN || errno == ECONNREFUSED),
          "bind without a host");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s SCENARIO KERNEL_ADDR STACK_ADDR [ARG]\n", argv[0]);
        return 2;
    }
    g_self = argv[0];
    const std::string scenario = argv[1];
    g_kernel = argv[2];
    g_stack = argv[3];
    if (scenario == "bind-conflict") {
        bind_conflict();
    } else if (scenario == "reuseaddr") {
        reuseaddr();
    } else if (scenario == "econnrefused") {
        econnrefused();
    } else if (scenario == "autobind") {
        int low = 32768;
        int high = 60999;
        if (argc > 4) {
            std::sscanf(argv[4], "%d-%d", &low, &high);
        }
        autobind(low, high);
    } else if (scenario == "loopback") {
        loopback_is_kernel();
    } else if (scenario == "exec") {
        exec_keeps_sockets();
    } else if (scenario == "exec-child") {
        exec_child(argc > 4 ? std::atoi(argv[4]) : -1);
    } else if (scenario == "unreachable") {
        unreachable();
    } else {
        std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
        return 2;
    }
    std::printf("PASS %s\n", scenario.c_str());
    return 0;
}
