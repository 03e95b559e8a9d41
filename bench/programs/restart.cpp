// restart: how fast does a restarted server accept again while its port
// holds thousands of TIME_WAIT entries?
//
//   bench_restart server --port P --mode fill|once [--count N]
//   bench_restart driver --addr A.B.C.D --port P [--fill 10000] [--restarts 100]
//                 [--server-netns /run/netns/NAME] -- SERVER_COMMAND...
//
// server (the program under test): SO_REUSEADDR, bind, listen; "fill"
// accepts --count connections and closes each first (each leaves a
// TIME_WAIT entry on the server's port), "once" accepts one, prints
// "ACCEPTED <CLOCK_MONOTONIC ns>", closes it first and exits.
//
// driver (the kernel-side client, in the peer namespace): runs
// SERVER_COMMAND ... --mode fill --count N once and connects N times, then
// runs SERVER_COMMAND ... --mode once R times and measures, for each, the
// time from the execve() of the command (taken in the child just before
// it, after moving into --server-netns when given) to the accept() that
// returned the first connection. The client retries refused connects
// every 100 µs. Each client connection binds its own source port
// (20000+i for the fill, 40000+r for the restarts), so no SYN lands on one
// of the server's TIME_WAIT 4-tuples (which Linux answers with an ACK and
// a retransmitted SYN a second later: an artifact, not restart latency).
//
// RESULT p50_ms=… mean_ms=… min_ms=… max_ms=… restarts=… fill_conn_per_s=… seconds=…
#include <fcntl.h>
#include <sched.h>
#include <sys/wait.h>

#include <algorithm>
#include <string>
#include <vector>

#include "bench/programs/bench_util.h"

namespace {

using namespace bench;

int server(const Args& args) {
    const auto port = static_cast<uint16_t>(args.num("port", 6000));
    const std::string mode = args.str("mode");
    const int64_t count = mode == "fill" ? args.num("count", 10000) : 1;
    const int listener = listen_on(port, 1024);
    for (int64_t i = 0; i < count; ++i) {
        const int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) {
            die("accept");
        }
        if (mode == "once") {
            std::printf("ACCEPTED %lld\n", static_cast<long long>(now_ns()));
            std::fflush(stdout);
        }
        ::close(fd);  // the server closes first: TIME_WAIT is ours
    }
    ::close(listener);
    return 0;
}

// Connects from local port `source_port`, retrying refused attempts (no
// listener yet) every 100 µs for up to `limit_s`. Returns the fd.
int connect_retrying(const sockaddr_in& peer, uint16_t source_port, double limit_s) {
    const int64_t give_up = now_ns() + static_cast<int64_t>(limit_s * 1e9);
    for (;;) {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) {
            die("socket");
        }
        set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
        timeval timeout{5, 0};  // a lost SYN must not hang the run
        ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        const sockaddr_in local = address("0.0.0.0", source_port);
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0) {
            die("bind source port " + std::to_string(source_port));
        }
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) == 0) {
            return fd;
        }
        const int saved = errno;
        ::close(fd);
        if (saved != ECONNREFUSED || now_ns() > give_up) {
            errno = saved;
            die("connect from port " + std::to_string(source_port));
        }
        ::usleep(100);
    }
}

// Waits for the server's FIN, then closes.
void finish_client(int fd) {
    char buf[16];
    while (::read(fd, buf, sizeof buf) > 0) {
    }
    ::close(fd);
}

struct Child {
    pid_t pid = -1;
    int64_t exec_ns = 0;
    FILE* out = nullptr;
};

// Forks SERVER_COMMAND + extra; the child enters the server's namespace,
// reads the clock and execs; the parent learns that time through a pipe.
Child spawn_server(const std::vector<std::string>& command, const std::vector<std::string>& extra, int netns_fd) {
    int clock_pipe[2];
    int out_pipe[2];
    if (::pipe2(clock_pipe, O_CLOEXEC) != 0 || ::pipe2(out_pipe, O_CLOEXEC) != 0) {
        die("pipe2");
    }
    std::vector<std::string> all = command;
    all.insert(all.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : all) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
        die("fork");
    }
    if (pid == 0) {
        if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) {
            std::perror("setns");
            ::_exit(126);
        }
        ::dup2(out_pipe[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on the copy
        const int64_t t = now_ns();
        (void)::write(clock_pipe[1], &t, sizeof t);
        ::execvp(argv[0], argv.data());
        std::perror(argv[0]);
        ::_exit(127);
    }
    ::close(clock_pipe[1]);
    ::close(out_pipe[1]);
    Child child;
    child.pid = pid;
    if (!read_all(clock_pipe[0], &child.exec_ns, sizeof child.exec_ns)) {
        die("the server child died before exec");
    }
    ::close(clock_pipe[0]);
    child.out = ::fdopen(out_pipe[0], "r");
    return child;
}

void reap(Child& child, const char* what) {
    int status = 0;
    ::waitpid(child.pid, &status, 0);
    if (child.out != nullptr) {
        std::fclose(child.out);
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "%s: the server exited with status %d\n", what, status);
        std::exit(1);
    }
}

int driver(int argc, char** argv, int split) {
    const Args args(split, argv, 2,
                    "bench_restart driver --addr A --port P [--fill N] [--restarts R] [--server-netns PATH] -- CMD...");
    const sockaddr_in peer = address(args.str("addr"), static_cast<uint16_t>(args.num("port", 6000)));
    const int64_t fill = args.num("fill", 10000);
    const int64_t restarts = args.num("restarts", 100);
    const std::string netns = args.str("server-netns", "-");
    if (fill < 0 || fill > 20000 || restarts < 1 || restarts > 20000) {
        usage("--fill 0..20000, --restarts 1..20000 (each picks its own source port)");
    }
    int netns_fd = -1;
    if (netns != "-") {
        netns_fd = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
        if (netns_fd < 0) {
            die("open " + netns);
        }
    }
    const std::vector<std::string> command(argv + split + 1, argv + argc);
    const int64_t start = now_ns();

    Child filler = spawn_server(command, {"--mode", "fill", "--count", std::to_string(fill)}, netns_fd);
    const int64_t fill_start = now_ns();
    for (int64_t i = 0; i < fill; ++i) {
        finish_client(connect_retrying(peer, static_cast<uint16_t>(20000 + i), 20));
    }
    const double fill_rate = static_cast<double>(fill) * 1e9 / static_cast<double>(now_ns() - fill_start);
    reap(filler, "fill");

    std::vector<double> ms;
    for (int64_t r = 0; r < restarts; ++r) {
        Child child = spawn_server(command, {"--mode", "once"}, netns_fd);
        finish_client(connect_retrying(peer, static_cast<uint16_t>(40000 + r), 20));
        long long accepted = 0;
        if (std::fscanf(child.out, " ACCEPTED %lld", &accepted) != 1) {
            std::fprintf(stderr, "restart %lld: no ACCEPTED line from the server\n", static_cast<long long>(r));
            return 1;
        }
        ms.push_back(static_cast<double>(accepted - child.exec_ns) / 1e6);
        reap(child, "restart");
    }
    const double seconds = static_cast<double>(now_ns() - start) / 1e9;
    double total = 0;
    for (double v : ms) {
        total += v;
    }
    std::sort(ms.begin(), ms.end());
    std::printf("RESULT p50_ms=%.3f mean_ms=%.3f min_ms=%.3f max_ms=%.3f restarts=%zu fill_conn_per_s=%.1f seconds=%.1f\n",
                ms[ms.size() / 2], total / static_cast<double>(ms.size()), ms.front(), ms.back(), ms.size(), fill_rate,
                seconds);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "server") {
        return server(Args(argc, argv, 2, "bench_restart server --port P --mode fill|once [--count N]"));
    }
    if (mode == "driver") {
        for (int i = 2; i < argc; ++i) {
            if (std::strcmp(argv[i], "--") == 0 && i + 1 < argc) {
                return driver(argc, argv, i);
            }
        }
    }
    usage("bench_restart server --port P --mode fill|once [--count N]\n"
          "       bench_restart driver --addr A --port P [--fill N] [--restarts R] [--server-netns PATH] -- CMD...");
}
