// The conformance program: plain socket-API code (no ustack code linked in)
// that runs one scenario of ../shared/SEMANTICS.md and prints a transcript,
// one line per call with its result ("ok" or the errno's name). The
// conformance test (tests/shim/conformance_test.cpp) runs each scenario
// twice — natively in a namespace joined by veth to the kernel peer, and
// under ustack-run over a TAP to the same kind of peer — and requires the
// two transcripts to be identical: the kernel is the oracle.
//
//   shim_prog_conformance peer PEER_ADDR SELF_ADDR
//       the kernel-side peer (run natively, never under ustack): listens on
//       PEER_ADDR:9000 (control: "connect PORT\n" makes the peer connect to
//       SELF_ADDR:PORT and answer "ok\n" or "err ENAME\n"; "connect-read
//       PORT\n" answers the same, then reads that connection until EOF or
//       an error and answers "read -> 0\n" or "read -> ENAME\n"), :9001 (holds
//       each connection until EOF or reset, then closes) and :9002 (closes
//       each connection at once). Prints "ready" once listening.
//   shim_prog_conformance SCENARIO PEER_ADDR SELF_ADDR [LO-HI]
//       runs a scenario; LO-HI is the ephemeral range the runner set.
//
// The transcript prints only what is comparable between the two runs:
// explicit ports and addresses, errno names, poll events; ephemeral ports
// only as "in range" and parity. Port 9009 on the peer is closed (RST).
// Every blocking call has a timeout, and alarm() bounds the whole run.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string g_peer;
std::string g_self;
int g_low = 32768;
int g_high = 60999;

constexpr uint16_t control_port = 9000;
constexpr uint16_t hold_port = 9001;
constexpr uint16_t closer_port = 9002;
constexpr uint16_t closed_port = 9009;

// ------------------------------------------------------------ transcript

std::string errno_name(int e) {
    const char* name = ::strerrorname_np(e);
    return name != nullptr ? name : "errno" + std::to_string(e);
}

// "ok" for rc >= 0, else the errno's name.
std::string result(int rc) { return rc >= 0 ? "ok" : errno_name(errno); }

void say(const std::string& text) {
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
}

// Prints "what -> ok|ENAME" and passes rc through (errno preserved).
int step(const std::string& what, int rc) {
    const int saved = errno;
    say(what + " -> " + result(rc));
    errno = saved;
    return rc;
}

// Something the scenario needs that is not under test failed: the
// transcript says so and the run stops (the runner shows it).
[[noreturn]] void setup_failed(const std::string& what) {
    say("SETUP FAILED: " + what + " (" + errno_name(errno) + ")");
    std::exit(3);
}

// ------------------------------------------------------------ socket helpers

sockaddr_in address(const std::string& ip, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) {
        setup_failed("bad address " + ip);
    }
    return a;
}

std::string to_string(const sockaddr_in& a) {
    char ip[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
    return std::string(ip) + ":" + std::to_string(ntohs(a.sin_port));
}

int tcp_socket() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        setup_failed("socket(SOCK_STREAM)");
    }
    return fd;
}

int udp_socket() {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        setup_failed("socket(SOCK_DGRAM)");
    }
    return fd;
}

int bind_to(int fd, const std::string& ip, uint16_t port) {
    const sockaddr_in a = address(ip, port);
    return ::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
}

int connect_to(int fd, const std::string& ip, uint16_t port) {
    const sockaddr_in a = address(ip, port);
    return ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a);
}

int set_flag(int fd, int level, int name, int value = 1) {
    return ::setsockopt(fd, level, name, &value, sizeof value);
}

void must_set_flag(int fd, int level, int name, const char* what) {
    if (set_flag(fd, level, name) < 0) {
        setup_failed(std::string("setsockopt ") + what);
    }
}

// A TCP socket with the given flags set before anything else.
int tcp_with(bool reuse_addr, bool reuse_port = false) {
    const int fd = tcp_socket();
    if (reuse_addr) {
        must_set_flag(fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
    }
    if (reuse_port) {
        must_set_flag(fd, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT");
    }
    return fd;
}

void timeouts(int fd, int seconds) {
    const timeval tv{seconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

sockaddr_in local_of(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) < 0) {
        setup_failed("getsockname");
    }
    return a;
}

uint16_t local_port(int fd) { return ntohs(local_of(fd).sin_port); }

// An ephemeral port as the transcript shows it: where it lies, its parity.
std::string describe_ephemeral(uint16_t port) {
    const bool in_range = port >= g_low && port <= g_high;
    return std::string(in_range ? "in range" : "OUT OF RANGE") + ", " + (port % 2 == 0 ? "even" : "odd");
}

std::string poll_names(short revents) {
    std::string names;
    const std::pair<short, const char*> bits[] = {{POLLIN, "POLLIN"},   {POLLPRI, "POLLPRI"},
                                                  {POLLOUT, "POLLOUT"}, {POLLERR, "POLLERR"},
                                                  {POLLHUP, "POLLHUP"}, {POLLNVAL, "POLLNVAL"}};
    for (const auto& [bit, name] : bits) {
        if ((revents & bit) != 0) {
            names += names.empty() ? name : std::string("|") + name;
        }
    }
    return names.empty() ? "none" : names;
}

std::string so_error(int fd) {
    int value = -1;
    socklen_t len = sizeof value;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &value, &len) < 0) {
        return "getsockopt " + errno_name(errno);
    }
    return value == 0 ? "0" : errno_name(value);
}

// The active close that ends in TIME_WAIT on our side: FIN first, then the
// peer's FIN read as EOF (the :9001 peer closes on EOF), then close().
// Returns what the read saw: "eof", or the error.
std::string active_close(int fd) {
    timeouts(fd, 5);
    if (::shutdown(fd, SHUT_WR) < 0) {
        const std::string what = "shutdown " + errno_name(errno);
        ::close(fd);
        return what;
    }
    char buffer[256];
    for (;;) {
        const ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n == 0) {
            ::close(fd);
            return "eof";
        }
        if (n < 0 && errno != EINTR) {
            const std::string what = "read " + errno_name(errno);
            ::close(fd);
            return what;
        }
    }
}

// A connection from SELF to the peer's hold port, closed actively so that
// it sits in TIME_WAIT here; prints its steps.
void connection_into_time_wait(const std::string& name, int fd) {
    step(name + " connect PEER:9001", connect_to(fd, g_peer, hold_port));
    say(name + " active close -> " + active_close(fd));
}

// bind() right after a close(): Linux frees the port inside close(); a host
// may see the close a moment later, so a refusal is retried for up to a
// second (the transcript shows only the final result). Used only where the
// port must be free, so a port never freed still shows as EADDRINUSE.
int bind_after_close(int fd, const std::string& ip, uint16_t port) {
    int rc = -1;
    for (int i = 0; i < 100; ++i) {
        rc = bind_to(fd, ip, port);
        if (rc == 0 || errno != EADDRINUSE) {
            break;
        }
        ::usleep(10000);
    }
    return rc;
}

// ------------------------------------------------------------ the peer's control connection

class Control {
public:
    Control() {
        fd_ = tcp_socket();
        timeouts(fd_, 10);
        if (connect_to(fd_, g_peer, control_port) < 0) {
            setup_failed("connect to the peer's control port 9000");
        }
    }
    ~Control() { ::close(fd_); }
    Control(const Control&) = delete;
    Control& operator=(const Control&) = delete;

    // Asks the peer to connect to SELF:port; returns "ok" or "err ENAME".
    std::string peer_connects(uint16_t port) { return ask("connect " + std::to_string(port)); }

    // Sends one request line; returns the first line of the answer.
    std::string ask(const std::string& request) {
        const std::string line = request + "\n";
        if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
            setup_failed("write to the control connection");
        }
        return read_line();
    }

    // The next line the peer answers (a request's later lines).
    std::string read_line() {
        std::string reply;
        char c = 0;
        while (reply.size() < 100) {
            const ssize_t n = ::read(fd_, &c, 1);
            if (n <= 0) {
                setup_failed("read from the control connection");
            }
            if (c == '\n') {
                break;
            }
            reply += c;
        }
        return reply;
    }

private:
    int fd_ = -1;
};

// accept() with a deadline; prints the step and the peer's address.
int accept_one(const std::string& name, int listener) {
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 5000) != 1) {
        say(name + " accept -> no connection within 5 s");
        return -1;
    }
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    const int fd = ::accept(listener, reinterpret_cast<sockaddr*>(&peer), &len);
    if (fd < 0) {
        step(name + " accept", fd);
        return -1;
    }
    char ip[INET_ADDRSTRLEN] = "?";
    ::inet_ntop(AF_INET, &peer.sin_addr, ip, sizeof ip);
    say(name + " accept -> ok, peer " + (std::string(ip) == g_peer ? "PEER" : std::string(ip)));
    return fd;
}

// ------------------------------------------------------------ scenarios

// How the peer's connection ends when the program closes it after
// accept() (FIN: the peer reads EOF), and when the program closes the
// listener with it still queued, never accepted (inet_csk_listen_stop:
// RST, the peer reads ECONNRESET).
void listener_close() {
    Control control;
    say("# accepted, then closed");
    const int l = tcp_socket();
    step("l bind SELF:5800", bind_to(l, g_self, 5800));
    step("l listen", ::listen(l, 8));
    say("peer connects to SELF:5800 -> " + control.ask("connect-read 5800"));
    const int a = accept_one("a", l);
    step("a close", ::close(a));
    say("peer " + control.read_line());
    step("l close", ::close(l));

    say("# queued, never accepted; the listener closes");
    const int q = tcp_socket();
    step("q bind SELF:5801", bind_to(q, g_self, 5801));
    step("q listen", ::listen(q, 8));
    say("peer connects to SELF:5801 -> " + control.ask("connect-read 5801"));
    pollfd p{q, POLLIN, 0};
    say(std::string("q poll -> ") + (::poll(&p, 1, 5000) == 1 && (p.revents & POLLIN) != 0 ? "POLLIN" : "nothing"));
    step("q close", ::close(q));
    say("peer " + control.read_line());

    say("# the closed connection holds its port in TIME_WAIT; the reset one left none");
    const int m = tcp_socket();
    step("m bind SELF:5800 (a in TIME_WAIT)", bind_to(m, g_self, 5800));
    step("m bind SELF:5801 (the reset connection's port)", bind_to(m, g_self, 5801));
    ::close(m);
}

// The TCP bind-conflict families of SEMANTICS.md.
void bind_tcp() {
    const std::string& self = g_self;
    say("# two plain sockets");
    const int a = tcp_socket();
    step("a bind SELF:5000", bind_to(a, self, 5000));
    const int b = tcp_socket();
    step("b bind SELF:5000", bind_to(b, self, 5000));
    step("b bind 0.0.0.0:5000", bind_to(b, "0.0.0.0", 5000));
    step("b bind SELF:5001", bind_to(b, self, 5001));
    step("b bind SELF:5002 (already bound)", bind_to(b, self, 5002));
    say("b getsockname -> " + std::string(to_string(local_of(b)) == self + ":5001" ? "SELF:5001" : "other"));

    say("# wildcard owner, specific newcomer");
    const int c = tcp_socket();
    step("c bind 0.0.0.0:5003", bind_to(c, "0.0.0.0", 5003));
    const int d = tcp_socket();
    step("d bind SELF:5003", bind_to(d, self, 5003));

    say("# both SO_REUSEADDR: bind shares, the second listen() conflicts");
    const int e = tcp_with(true);
    step("e(reuseaddr) bind SELF:5010", bind_to(e, self, 5010));
    const int f = tcp_with(true);
    step("f(reuseaddr) bind SELF:5010", bind_to(f, self, 5010));
    step("e listen", ::listen(e, 16));
    step("f listen", ::listen(f, 16));
    const int g = tcp_with(true);
    step("g(reuseaddr) bind SELF:5010 (e listening)", bind_to(g, self, 5010));
    step("g(reuseaddr) bind 0.0.0.0:5010 (e listening)", bind_to(g, "0.0.0.0", 5010));

    say("# SO_REUSEADDR on the newcomer only");
    const int h = tcp_socket();
    step("h bind SELF:5011", bind_to(h, self, 5011));
    const int i = tcp_with(true);
    step("i(reuseaddr) bind SELF:5011", bind_to(i, self, 5011));

    say("# an option set after bind() counts at the next check");
    const int j = tcp_socket();
    step("j bind SELF:5012", bind_to(j, self, 5012));
    step("j setsockopt SO_REUSEADDR", set_flag(j, SOL_SOCKET, SO_REUSEADDR));
    const int k = tcp_with(true);
    step("k(reuseaddr) bind SELF:5012", bind_to(k, self, 5012));

    say("# SO_REUSEPORT group");
    const int l = tcp_with(false, true);
    step("l(reuseport) bind SELF:5020", bind_to(l, self, 5020));
    const int m = tcp_with(false, true);
    step("m(reuseport) bind SELF:5020", bind_to(m, self, 5020));
    step("l listen", ::listen(l, 16));
    step("m listen", ::listen(m, 16));
    const int n = tcp_socket();
    step("n bind SELF:5020", bind_to(n, self, 5020));
    const int o = tcp_with(true);
    step("o(reuseaddr) bind SELF:5020", bind_to(o, self, 5020));
    const int o2 = tcp_with(false, true);
    step("o2(reuseport) bind 0.0.0.0:5020", bind_to(o2, "0.0.0.0", 5020));

    say("# SO_REUSEADDR owner, SO_REUSEPORT newcomer");
    const int p = tcp_with(true);
    step("p(reuseaddr) bind SELF:5021", bind_to(p, self, 5021));
    const int q = tcp_with(false, true);
    step("q(reuseport) bind SELF:5021", bind_to(q, self, 5021));

    say("# closing the owner frees the port");
    ::close(a);
    const int a2 = tcp_socket();
    step("a2 bind SELF:5000 (a closed)", bind_after_close(a2, self, 5000));

    say("# bind() errors in Linux's order");
    const int r = tcp_socket();
    sockaddr_in short_address = address(self, 5030);
    step("r bind with addrlen 8", ::bind(r, reinterpret_cast<sockaddr*>(&short_address), 8));
    sockaddr_in bad_family = address(self, 5030);
    bad_family.sin_family = AF_UNIX;
    step("r bind sin_family AF_UNIX", ::bind(r, reinterpret_cast<sockaddr*>(&bad_family), sizeof bad_family));
    step("r bind 10.77.0.99:5030 (not local)", bind_to(r, "10.77.0.99", 5030));
    step("r bind SELF:80 (as root)", bind_to(r, self, 80));

    say("# automatic ports");
    const int s = tcp_socket();
    step("s listen (unbound)", ::listen(s, 16));
    say("s port " + describe_ephemeral(local_port(s)));
    const int t = tcp_socket();
    step("t bind SELF:0", bind_to(t, self, 0));
    say("t port " + describe_ephemeral(local_port(t)));

    say("# TCP and UDP ports are separate");
    const int u = udp_socket();
    step("u(udp) bind SELF:5010", bind_to(u, self, 5010));
}

// The UDP bind-conflict families.
void bind_udp() {
    const std::string& self = g_self;
    const int a = udp_socket();
    step("a bind SELF:6000", bind_to(a, self, 6000));
    const int b = udp_socket();
    step("b bind SELF:6000", bind_to(b, self, 6000));
    step("b bind 0.0.0.0:6000", bind_to(b, "0.0.0.0", 6000));

    const int c = udp_socket();
    must_set_flag(c, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
    step("c(reuseaddr) bind SELF:6001", bind_to(c, self, 6001));
    const int d = udp_socket();
    must_set_flag(d, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
    step("d(reuseaddr) bind SELF:6001", bind_to(d, self, 6001));
    const int d2 = udp_socket();
    must_set_flag(d2, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
    step("d2(reuseaddr) bind 0.0.0.0:6001", bind_to(d2, "0.0.0.0", 6001));

    const int e = udp_socket();
    must_set_flag(e, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
    step("e(reuseaddr) bind SELF:6002", bind_to(e, self, 6002));
    const int f = udp_socket();
    must_set_flag(f, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT");
    step("f(reuseport) bind SELF:6002", bind_to(f, self, 6002));

    const int g = udp_socket();
    must_set_flag(g, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT");
    step("g(reuseport) bind SELF:6003", bind_to(g, self, 6003));
    const int h = udp_socket();
    must_set_flag(h, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT");
    step("h(reuseport) bind SELF:6003", bind_to(h, self, 6003));

    const int i = udp_socket();
    step("i bind SELF:6004", bind_to(i, self, 6004));
    const int j = udp_socket();
    must_set_flag(j, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
    step("j(reuseaddr) bind SELF:6004", bind_to(j, self, 6004));

    const int k = udp_socket();
    step("k connect PEER:9001 (autobind)", connect_to(k, g_peer, hold_port));
    say("k port " + std::string(local_port(k) >= g_low && local_port(k) <= g_high ? "in range" : "OUT OF RANGE"));
}

// TIME_WAIT after an active close blocks a plain bind; SO_REUSEADDR gets
// through only if the old socket had it too (TIME_WAIT keeps its flags).
void time_wait_bind() {
    const std::string& self = g_self;
    say("# old socket without SO_REUSEADDR");
    const int a = tcp_socket();
    step("a bind SELF:5100", bind_to(a, self, 5100));
    connection_into_time_wait("a", a);
    const int b = tcp_socket();
    step("b bind SELF:5100 (a in TIME_WAIT)", bind_to(b, self, 5100));
    step("b setsockopt SO_REUSEADDR", set_flag(b, SOL_SOCKET, SO_REUSEADDR));
    step("b(reuseaddr) bind SELF:5100", bind_to(b, self, 5100));

    say("# old socket with SO_REUSEADDR");
    const int c = tcp_with(true);
    step("c(reuseaddr) bind SELF:5101", bind_to(c, self, 5101));
    connection_into_time_wait("c", c);
    const int d = tcp_socket();
    step("d bind SELF:5101 (c in TIME_WAIT)", bind_to(d, self, 5101));
    step("d setsockopt SO_REUSEADDR", set_flag(d, SOL_SOCKET, SO_REUSEADDR));
    step("d(reuseaddr) bind SELF:5101", bind_to(d, self, 5101));
    step("d listen", ::listen(d, 16));

    say("# an ephemeral connect's TIME_WAIT");
    const int e = tcp_socket();
    step("e connect PEER:9001 (unbound)", connect_to(e, g_peer, hold_port));
    const uint16_t port = local_port(e);
    say("e port " + describe_ephemeral(port));
    say("e active close -> " + active_close(e));
    const int f = tcp_socket();
    step("f bind SELF:<e's port>", bind_to(f, self, port));
    step("f setsockopt SO_REUSEADDR", set_flag(f, SOL_SOCKET, SO_REUSEADDR));
    step("f(reuseaddr) bind SELF:<e's port>", bind_to(f, self, port));

    say("# passive close leaves no TIME_WAIT here");
    const int g = tcp_socket();
    step("g bind SELF:5102", bind_to(g, self, 5102));
    step("g connect PEER:9002 (peer closes first)", connect_to(g, g_peer, closer_port));
    timeouts(g, 5);
    char byte = 0;
    step("g read (EOF is ok)", static_cast<int>(::read(g, &byte, 1)));
    ::close(g);
    const int h = tcp_socket();
    step("h bind SELF:5102 (g closed after the peer)", bind_after_close(h, self, 5102));
}

// A server whose connection is in TIME_WAIT restarts: the new listener's
// bind succeeds only with SO_REUSEADDR on both the old and the new socket.
void server_restart() {
    const std::string& self = g_self;
    Control control;
    for (const bool old_reuse : {false, true}) {
        const uint16_t port = old_reuse ? 5201 : 5200;
        const std::string p = "SELF:" + std::to_string(port);
        say(std::string("# old listener ") + (old_reuse ? "with" : "without") + " SO_REUSEADDR");
        const int l = tcp_with(old_reuse);
        step("l bind " + p, bind_to(l, self, port));
        step("l listen", ::listen(l, 16));
        say("peer connects to " + p + " -> " + control.peer_connects(port));
        const int c = accept_one("l", l);
        if (c >= 0) {
            say("accepted active close -> " + active_close(c));
        }
        ::close(l);
        const int n = tcp_socket();
        step("new bind " + p + " (connection in TIME_WAIT)", bind_to(n, self, port));
        step("new setsockopt SO_REUSEADDR", set_flag(n, SOL_SOCKET, SO_REUSEADDR));
        const int rc = old_reuse ? bind_after_close(n, self, port) : bind_to(n, self, port);
        step("new(reuseaddr) bind " + p, rc);
        if (rc == 0) {
            step("new listen", ::listen(n, 16));
            say("peer connects to " + p + " -> " + control.peer_connects(port));
            const int c2 = accept_one("new", n);
            if (c2 >= 0) {
                say("accepted active close -> " + active_close(c2));
            }
        }
        ::close(n);
    }
}

// SO_LINGER {1, 0}: close() resets and leaves no TIME_WAIT.
void linger_zero() {
    const std::string& self = g_self;
    const int a = tcp_socket();
    step("a bind SELF:5300", bind_to(a, self, 5300));
    step("a connect PEER:9001", connect_to(a, g_peer, hold_port));
    const linger zero{1, 0};
    step("a setsockopt SO_LINGER {1, 0}", ::setsockopt(a, SOL_SOCKET, SO_LINGER, &zero, sizeof zero));
    linger back{};
    socklen_t len = sizeof back;
    step("a getsockopt SO_LINGER", ::getsockopt(a, SOL_SOCKET, SO_LINGER, &back, &len));
    say("a SO_LINGER reads {" + std::to_string(back.l_onoff) + ", " + std::to_string(back.l_linger) + "}");
    step("a write 5 bytes", static_cast<int>(::write(a, "hello", 5)));
    ::close(a);
    const int b = tcp_socket();
    step("b bind SELF:5300 (a reset, no TIME_WAIT)", bind_after_close(b, self, 5300));

    say("# the same with a graceful close");
    const int c = tcp_socket();
    step("c bind SELF:5301", bind_to(c, self, 5301));
    connection_into_time_wait("c", c);
    const int d = tcp_socket();
    step("d bind SELF:5301 (c in TIME_WAIT)", bind_to(d, self, 5301));

    say("# linger 0 on an accepted connection");
    Control control;
    const int l = tcp_socket();
    step("l bind SELF:5302", bind_to(l, self, 5302));
    step("l listen", ::listen(l, 16));
    say("peer connects to SELF:5302 -> " + control.peer_connects(5302));
    const int s = accept_one("l", l);
    if (s >= 0) {
        step("accepted setsockopt SO_LINGER {1, 0}", ::setsockopt(s, SOL_SOCKET, SO_LINGER, &zero, sizeof zero));
        ::close(s);
    }
    ::close(l);
    const int e = tcp_socket();
    step("e bind SELF:5302 (listener closed, accepted reset)", bind_after_close(e, self, 5302));
}

// Non-blocking connect: EINPROGRESS, then POLLOUT and SO_ERROR tell.
void nonblocking_connect() {
    say("# success");
    const int a = tcp_socket();
    step("a set O_NONBLOCK", ::fcntl(a, F_SETFL, ::fcntl(a, F_GETFL) | O_NONBLOCK));
    step("a connect PEER:9001", connect_to(a, g_peer, hold_port));
    pollfd pa{a, POLLIN | POLLOUT, 0};
    const int na = ::poll(&pa, 1, 5000);
    say("a poll -> " + std::to_string(na) + " " + poll_names(pa.revents));
    say("a SO_ERROR -> " + so_error(a));
    step("a connect again", connect_to(a, g_peer, hold_port));
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    step("a getpeername", ::getpeername(a, reinterpret_cast<sockaddr*>(&peer), &len));
    say("a peer " + std::string(to_string(peer) == g_peer + ":9001" ? "PEER:9001" : to_string(peer)));
    say("a port " + describe_ephemeral(local_port(a)));

    say("# refusal");
    const int b = tcp_socket();
    step("b set O_NONBLOCK", ::fcntl(b, F_SETFL, ::fcntl(b, F_GETFL) | O_NONBLOCK));
    step("b connect PEER:9009 (closed port)", connect_to(b, g_peer, closed_port));
    pollfd pb{b, POLLIN | POLLOUT, 0};
    const int nb = ::poll(&pb, 1, 5000);
    say("b poll -> " + std::to_string(nb) + " " + poll_names(pb.revents));
    say("b SO_ERROR -> " + so_error(b));
    say("b SO_ERROR again -> " + so_error(b));

    say("# blocking");
    const int c = tcp_socket();
    timeouts(c, 5);
    step("c connect PEER:9009 (closed port)", connect_to(c, g_peer, closed_port));
    const int d = tcp_socket();
    timeouts(d, 5);
    step("d connect PEER:9001", connect_to(d, g_peer, hold_port));
    step("d connect again", connect_to(d, g_peer, hold_port));
}

// Connects to the peer until the ephemeral range (100 ports) runs out.
void ephemeral_exhaustion() {
    std::set<uint16_t> ports;
    bool all_in_range = true;
    int count = 0;
    for (; count < 1000; ++count) {
        const int fd = tcp_socket();
        timeouts(fd, 5);
        if (connect_to(fd, g_peer, hold_port) < 0) {
            step("connect #" + std::to_string(count + 1) + " PEER:9001", -1);
            break;
        }
        const uint16_t port = local_port(fd);
        all_in_range = all_in_range && port >= g_low && port <= g_high;
        ports.insert(port);
    }
    say(std::to_string(count) + " connections, " + std::to_string(ports.size()) + " distinct ports, " +
        (all_in_range ? "all in range" : "SOME OUT OF RANGE"));
    const int d = tcp_socket();
    timeouts(d, 5);
    step("connect PEER:9002 (another 4-tuple shares a port)", connect_to(d, g_peer, closer_port));
    const int b = tcp_socket();
    step("bind SELF:0 (every port has an owner)", bind_to(b, g_self, 0));
    const int l = tcp_socket();
    step("listen (unbound)", ::listen(l, 16));
    const int u = udp_socket();
    step("udp connect PEER:9001 (UDP ports are separate)", connect_to(u, g_peer, hold_port));
}

// Every port of a small range in TIME_WAIT toward PEER:9001; a new connect
// there takes one over only with tcp_tw_reuse (set by the runner) once
// tcp_tw_reuse_delay (1 s) has passed.
void tw_reuse() {
    const int range = g_high - g_low + 1;
    int in_time_wait = 0;
    for (int i = 0; i < range; ++i) {
        const int fd = tcp_socket();
        timeouts(fd, 5);
        if (connect_to(fd, g_peer, hold_port) < 0) {
            step("connect #" + std::to_string(i + 1), -1);
            ::close(fd);
            break;
        }
        if (active_close(fd) == "eof") {
            ++in_time_wait;
        }
    }
    say(std::to_string(in_time_wait) + " of " + std::to_string(range) + " connections closed into TIME_WAIT");
    ::usleep(2200 * 1000);  // past tcp_tw_reuse_delay (Linux counts whole seconds on some paths)
    const int a = tcp_socket();
    timeouts(a, 5);
    step("connect PEER:9001 (every port in TIME_WAIT to it)", connect_to(a, g_peer, hold_port));
    const int b = tcp_socket();
    timeouts(b, 5);
    step("connect PEER:9002", connect_to(b, g_peer, closer_port));
}

// The bound-socket quirk (tcp_twsk_unique with twp == NULL): a socket bound
// with SO_REUSEADDR that connects to the 4-tuple of a TIME_WAIT entry with
// timestamps takes it over whatever tcp_tw_reuse says (the runner sets 0).
void tw_quirk() {
    const std::string& self = g_self;
    const int a = tcp_with(true);
    step("a(reuseaddr) bind SELF:5400", bind_to(a, self, 5400));
    step("a connect PEER:9001", connect_to(a, g_peer, hold_port));
    const int b = tcp_with(true);
    step("b(reuseaddr) bind SELF:5400", bind_to(b, self, 5400));
    timeouts(b, 5);
    step("b connect PEER:9001 (a's 4-tuple, established)", connect_to(b, g_peer, hold_port));
    say("a active close -> " + active_close(a));
    const int c = tcp_with(true);
    step("c(reuseaddr) bind SELF:5400", bind_to(c, self, 5400));
    timeouts(c, 5);
    step("c connect PEER:9001 (a's 4-tuple, TIME_WAIT)", connect_to(c, g_peer, hold_port));
    step("c write", static_cast<int>(::write(c, "x", 1)));

    say("# without SO_REUSEADDR on the old socket");
    const int d = tcp_socket();
    step("d bind SELF:5401", bind_to(d, self, 5401));
    connection_into_time_wait("d", d);
    const int e = tcp_with(true);
    step("e(reuseaddr) bind SELF:5401", bind_to(e, self, 5401));
}

// A server killed with SIGKILL and restarted at once: the killed process's
// connection goes to TIME_WAIT, and the restart binds only with
// SO_REUSEADDR on both lives.
void sigkill_restart() {
    const std::string& self = g_self;
    for (const bool old_reuse : {false, true}) {
        const uint16_t port = old_reuse ? 5501 : 5500;
        const std::string p = "SELF:" + std::to_string(port);
        say(std::string("# killed server ") + (old_reuse ? "with" : "without") + " SO_REUSEADDR");
        int ready[2];
        if (::pipe(ready) < 0) {
            setup_failed("pipe");
        }
        const pid_t child = ::fork();
        if (child < 0) {
            setup_failed("fork");
        }
        if (child == 0) {
            // The server: its lines go to the transcript too.
            ::close(ready[0]);
            Control control;
            const int l = tcp_with(old_reuse);
            step("server bind " + p, bind_to(l, self, port));
            step("server listen", ::listen(l, 16));
            say("peer connects to " + p + " -> " + control.peer_connects(port));
            const int c = accept_one("server", l);
            (void)c;
            if (::write(ready[1], "r", 1) != 1) {
                ::_exit(1);
            }
            for (;;) {
                ::pause();
            }
        }
        ::close(ready[1]);
        pollfd pr{ready[0], POLLIN, 0};
        char byte = 0;
        if (::poll(&pr, 1, 15000) != 1 || ::read(ready[0], &byte, 1) != 1) {
            ::kill(child, SIGKILL);
            ::waitpid(child, nullptr, 0);
            setup_failed("the server child never accepted");
        }
        ::close(ready[0]);
        ::kill(child, SIGKILL);
        int status = 0;
        ::waitpid(child, &status, 0);
        say(std::string("server killed by ") + (WIFSIGNALED(status) ? strsignal(WTERMSIG(status)) : "?"));
        // The killed process's sockets are closed by the kernel (or the
        // host): FIN to the peer, the peer's FIN back, TIME_WAIT here.
        ::usleep(300 * 1000);
        const int n = tcp_socket();
        step("restart bind " + p, bind_to(n, self, port));
        step("restart setsockopt SO_REUSEADDR", set_flag(n, SOL_SOCKET, SO_REUSEADDR));
        const int rc = old_reuse ? bind_after_close(n, self, port) : bind_to(n, self, port);
        step("restart(reuseaddr) bind " + p, rc);
        if (rc == 0) {
            step("restart listen", ::listen(n, 16));
        }
        ::close(n);
    }
}

// ------------------------------------------------------------ the kernel-side peer

// Holds a connection until EOF or reset, then closes it.
void hold(int fd) {
    char buffer[4096];
    while (::read(fd, buffer, sizeof buffer) > 0) {
    }
    ::close(fd);
}

void control_session(int fd) {
    std::string line;
    char c = 0;
    while (::read(fd, &c, 1) == 1) {
        if (c != '\n') {
            line += c;
            continue;
        }
        std::string reply = "err EINVAL";
        unsigned port = 0;
        if (std::sscanf(line.c_str(), "connect-read %u", &port) == 1) {
            // How the connection ends, seen from here: EOF (a FIN) or the
            // error of a reset.
            const int s = ::socket(AF_INET, SOCK_STREAM, 0);
            timeouts(s, 5);
            if (connect_to(s, g_self, static_cast<uint16_t>(port)) == 0) {
                reply = "ok\n";
                if (::write(fd, reply.data(), reply.size()) < 0) {
                    ::close(s);
                    break;
                }
                char buffer[512];
                ssize_t n = 0;
                while ((n = ::read(s, buffer, sizeof buffer)) > 0) {
                }
                reply = n == 0 ? "read -> 0" : "read -> " + errno_name(errno);
            } else {
                reply = "err " + errno_name(errno);
            }
            ::close(s);
        } else if (std::sscanf(line.c_str(), "connect %u", &port) == 1) {
            const int s = ::socket(AF_INET, SOCK_STREAM, 0);
            timeouts(s, 5);
            if (connect_to(s, g_self, static_cast<uint16_t>(port)) == 0) {
                reply = "ok";
                std::thread(hold, s).detach();
            } else {
                reply = "err " + errno_name(errno);
                ::close(s);
            }
        }
        reply += "\n";
        if (::write(fd, reply.data(), reply.size()) < 0) {
            break;
        }
        line.clear();
    }
    ::close(fd);
}

int peer_listener(uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    set_flag(fd, SOL_SOCKET, SO_REUSEADDR);
    if (fd < 0 || bind_to(fd, g_peer, port) < 0 || ::listen(fd, 1024) < 0) {
        std::fprintf(stderr, "peer: cannot listen on %s:%u: %s\n", g_peer.c_str(), port, std::strerror(errno));
        std::exit(1);
    }
    return fd;
}

[[noreturn]] void run_peer() {
    const int control = peer_listener(control_port);
    const int holder = peer_listener(hold_port);
    const int closer = peer_listener(closer_port);
    say("ready");
    pollfd fds[3] = {{control, POLLIN, 0}, {holder, POLLIN, 0}, {closer, POLLIN, 0}};
    for (;;) {
        if (::poll(fds, 3, -1) < 0) {
            continue;
        }
        for (pollfd& p : fds) {
            if ((p.revents & POLLIN) == 0) {
                continue;
            }
            const int fd = ::accept(p.fd, nullptr, nullptr);
            if (fd < 0) {
                continue;
            }
            if (p.fd == control) {
                std::thread(control_session, fd).detach();
            } else if (p.fd == holder) {
                std::thread(hold, fd).detach();
            } else {
                ::close(fd);
            }
        }
    }
}

// Reads and writes on TCP sockets that never connected: a bound one, a
// listener, and a bound one reached through a dup after the original
// connected (the socket is connected; only one fd said so).
void unconnected_io() {
    char c = 'x';
    say("# bound, never connected");
    const int a = tcp_socket();
    step("a bind SELF:5600", bind_to(a, g_self, 5600));
    step("a send", static_cast<int>(::send(a, &c, 1, MSG_NOSIGNAL)));
    step("a write (SIGPIPE ignored)", static_cast<int>(::write(a, &c, 1)));
    step("a recv MSG_DONTWAIT", static_cast<int>(::recv(a, &c, 1, MSG_DONTWAIT)));
    step("a read (blocking)", static_cast<int>(::read(a, &c, 1)));

    say("# listening");
    const int l = tcp_socket();
    step("l bind SELF:5601", bind_to(l, g_self, 5601));
    step("l listen", ::listen(l, 4));
    step("l send", static_cast<int>(::send(l, &c, 1, MSG_NOSIGNAL)));
    step("l read (blocking)", static_cast<int>(::read(l, &c, 1)));

    say("# bound, then connected through a dup");
    const int b = tcp_socket();
    step("b bind SELF:5602", bind_to(b, g_self, 5602));
    const int twin = ::dup(b);
    step("twin connect PEER:hold", connect_to(twin, g_peer, hold_port));
    step("b send (connected through twin)", static_cast<int>(::send(b, &c, 1, MSG_NOSIGNAL)));
    step("b recv MSG_DONTWAIT (nothing sent to it)", static_cast<int>(::recv(b, &c, 1, MSG_DONTWAIT)));
    for (const int fd : {a, l, b, twin}) {
        ::close(fd);
    }
}

std::string int_option(int fd, int level, int name) {
    int value = -1;
    socklen_t len = sizeof value;
    if (::getsockopt(fd, level, name, &value, &len) < 0) {
        return errno_name(errno);
    }
    return std::to_string(value);
}

// What a TCP socket answers between socket() and its connect, bind or
// listen. Under an inproc host such a socket is a spare socketpair's app
// end until one of those adopts it, or until a call that only the kernel
// socket answers makes it one (shim.cpp, pair-backed candidates): every
// line must read as the kernel's.
void fresh_socket() {
    say("# a connection first: an inproc host runs from here on, with spare pairs");
    const int w = tcp_socket();
    timeouts(w, 5);
    step("w connect PEER:9001", connect_to(w, g_peer, hold_port));
    ::close(w);
    ::usleep(100000);

    say("# the lowest free fd");
    const int probe = ::dup(0);
    ::close(probe);
    const int a = tcp_socket();
    say(std::string("a is the lowest free fd -> ") + (a == probe ? "yes" : "no"));
    say("# before any connect");
    char c = 'x';
    step("a send", static_cast<int>(::send(a, &c, 1, MSG_NOSIGNAL)));
    step("a recv MSG_DONTWAIT", static_cast<int>(::recv(a, &c, 1, MSG_DONTWAIT)));
    step("a shutdown SHUT_WR", ::shutdown(a, SHUT_WR));
    step("a accept", ::accept(a, nullptr, nullptr));
    sockaddr_in name{};
    socklen_t len = sizeof name;
    step("a getsockname", ::getsockname(a, reinterpret_cast<sockaddr*>(&name), &len));
    say("a local " + to_string(name));
    len = sizeof name;
    step("a getpeername", ::getpeername(a, reinterpret_cast<sockaddr*>(&name), &len));
    say("a SO_TYPE -> " + int_option(a, SOL_SOCKET, SO_TYPE));
    say("a SO_ERROR -> " + so_error(a));
    step("a close", ::close(a));

    say("# options set before connect, read back before and after");
    const int b = tcp_socket();
    step("b TCP_NODELAY 1", set_flag(b, IPPROTO_TCP, TCP_NODELAY));
    step("b SO_REUSEADDR 1", set_flag(b, SOL_SOCKET, SO_REUSEADDR));
    step("b TCP_NODELAY short", ::setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &c, 1));
    say("b TCP_NODELAY -> " + int_option(b, IPPROTO_TCP, TCP_NODELAY));
    say("b SO_REUSEADDR -> " + int_option(b, SOL_SOCKET, SO_REUSEADDR));
    timeouts(b, 5);
    step("b connect PEER:9001", connect_to(b, g_peer, hold_port));
    say("b TCP_NODELAY after connect -> " + int_option(b, IPPROTO_TCP, TCP_NODELAY));
    say("b SO_REUSEADDR after connect -> " + int_option(b, SOL_SOCKET, SO_REUSEADDR));

    const int d = tcp_socket();
    step("d TCP_NODELAY 1", set_flag(d, IPPROTO_TCP, TCP_NODELAY));
    timeouts(d, 5);
    step("d connect PEER:9001", connect_to(d, g_peer, hold_port));
    say("d TCP_NODELAY after connect -> " + int_option(d, IPPROTO_TCP, TCP_NODELAY));
    timeval short_wait{0, 200000};
    step("d SO_RCVTIMEO 200 ms", ::setsockopt(d, SOL_SOCKET, SO_RCVTIMEO, &short_wait, sizeof short_wait));
    step("d recv (the peer sends nothing)", static_cast<int>(::recv(d, &c, 1, 0)));

    const int e = tcp_socket();
    timeval wait_e{0, 200000};
    step("e SO_RCVTIMEO 200 ms before connect", ::setsockopt(e, SOL_SOCKET, SO_RCVTIMEO, &wait_e, sizeof wait_e));
    step("e connect PEER:9001", connect_to(e, g_peer, hold_port));
    step("e recv (the peer sends nothing)", static_cast<int>(::recv(e, &c, 1, 0)));

    say("# flags before connect");
    const int f = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    say(std::string("f O_NONBLOCK -> ") + ((::fcntl(f, F_GETFL) & O_NONBLOCK) != 0 ? "set" : "clear"));
    say(std::string("f FD_CLOEXEC -> ") + ((::fcntl(f, F_GETFD) & FD_CLOEXEC) != 0 ? "set" : "clear"));
    step("f connect PEER:9001", connect_to(f, g_peer, hold_port));
    pollfd pf{f, POLLOUT, 0};
    const int polled = ::poll(&pf, 1, 5000);
    say("f poll -> " + std::to_string(polled) + " " + poll_names(pf.revents));
    say("f SO_ERROR -> " + so_error(f));
    const int g = tcp_socket();
    int on = 1;
    step("g FIONBIO", ::ioctl(g, FIONBIO, &on));
    step("g connect PEER:9001", connect_to(g, g_peer, hold_port));

    say("# a failed bind leaves the socket as it was");
    const int h = tcp_socket();
    step("h bind SELF:5700", bind_to(h, g_self, 5700));
    const int i = tcp_socket();
    step("i bind SELF:5700 (h has it)", bind_to(i, g_self, 5700));
    timeouts(i, 5);
    step("i connect PEER:9001", connect_to(i, g_peer, hold_port));
    step("i send", static_cast<int>(::send(i, &c, 1, MSG_NOSIGNAL)));
    step("i shutdown SHUT_WR", ::shutdown(i, SHUT_WR));
    const int got = static_cast<int>(::recv(i, &c, 1, 0));
    step("i recv (the peer closes on EOF) = " + std::to_string(got), got);
    const int l = tcp_socket();
    step("l bind SELF:5701", bind_to(l, g_self, 5701));
    step("l listen", ::listen(l, 4));
    step("l bind again SELF:5702", bind_to(l, g_self, 5702));

    say("# what only the kernel socket answers, then connect");
    const int j = tcp_socket();
    step("j SO_KEEPALIVE 1", set_flag(j, SOL_SOCKET, SO_KEEPALIVE));
    timeouts(j, 5);
    step("j connect PEER:9001", connect_to(j, g_peer, hold_port));
    say("j SO_KEEPALIVE -> " + int_option(j, SOL_SOCKET, SO_KEEPALIVE));
    const int k = tcp_socket();
    const int k2 = ::dup(k);
    timeouts(k2, 5);
    step("k2 (a dup of k) connect PEER:9001", connect_to(k2, g_peer, hold_port));
    step("k send (connected through k2)", static_cast<int>(::send(k, &c, 1, MSG_NOSIGNAL)));
    const int m = tcp_socket();
    step("m connect 127.0.0.1:9 (the kernel's loopback, closed)", connect_to(m, "127.0.0.1", 9));
    const int n = tcp_socket();
    step("n dup2 over j", ::dup2(n, j));
    step("j (now n) send", static_cast<int>(::send(j, &c, 1, MSG_NOSIGNAL)));

    say("# watched by epoll before connecting to the kernel's loopback (nginx's upstreams)");
    const int lo = tcp_socket();
    step("lo bind 127.0.0.1:0", bind_to(lo, "127.0.0.1", 0));
    step("lo listen", ::listen(lo, 4));
    const uint16_t lo_port = local_port(lo);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    const int p = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    epoll_event ev{};
    ev.events = EPOLLOUT;
    ev.data.u64 = 77;
    step("p epoll_ctl ADD EPOLLOUT", ::epoll_ctl(ep, EPOLL_CTL_ADD, p, &ev));
    ev.events = EPOLLOUT | EPOLLIN;
    step("p epoll_ctl MOD EPOLLOUT|EPOLLIN", ::epoll_ctl(ep, EPOLL_CTL_MOD, p, &ev));
    step("p connect 127.0.0.1:LO", connect_to(p, "127.0.0.1", lo_port));
    epoll_event seen[2] = {};
    const int ready = ::epoll_wait(ep, seen, 2, 3000);
    say("p epoll_wait -> " + std::to_string(ready) + (ready == 1 && seen[0].data.u64 == 77 ? " (its data)" : "") +
        " " + poll_names(static_cast<short>(ready == 1 ? seen[0].events & (EPOLLOUT | EPOLLIN | EPOLLERR | EPOLLHUP) : 0)));
    say("p SO_ERROR -> " + so_error(p));
    ::close(ep);
    for (const int fd : {b, d, e, f, g, h, i, l, j, k, k2, m, n, lo, p}) {
        ::close(fd);
    }
}

struct Scenario {
    const char* name;
    void (*run)();
};

constexpr Scenario scenarios[] = {
    {"bind-tcp", bind_tcp},
    {"bind-udp", bind_udp},
    {"time-wait-bind", time_wait_bind},
    {"server-restart", server_restart},
    {"linger-zero", linger_zero},
    {"nonblocking-connect", nonblocking_connect},
    {"ephemeral-exhaustion", ephemeral_exhaustion},
    {"tw-reuse", tw_reuse},
    {"tw-quirk", tw_quirk},
    {"sigkill-restart", sigkill_restart},
    {"unconnected-io", unconnected_io},
    {"fresh-socket", fresh_socket},
    {"listener-close", listener_close},
};

}  // namespace

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s peer|SCENARIO PEER_ADDR SELF_ADDR [LO-HI]\n", argv[0]);
        return 2;
    }
    const std::string scenario = argv[1];
    g_peer = argv[2];
    g_self = argv[3];
    if (argc > 4 && std::sscanf(argv[4], "%d-%d", &g_low, &g_high) != 2) {
        std::fprintf(stderr, "bad range %s (want LO-HI)\n", argv[4]);
        return 2;
    }
    ::signal(SIGPIPE, SIG_IGN);
    if (scenario == "peer") {
        run_peer();
    }
    for (const Scenario& s : scenarios) {
        if (scenario == s.name) {
            ::alarm(60);  // nothing in a scenario may hang
            say("== " + scenario);
            s.run();
            say("== end");
            return 0;
        }
    }
    std::fprintf(stderr, "unknown scenario %s\n", scenario.c_str());
    return 2;
}
