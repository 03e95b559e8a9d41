// scale: many concurrent idle connections to the peer's hold service, held
// while the harness measures the memory they cost.
//
//   bench_idle --addr A.B.C.D [--port 5004] [--count 10000]
//
// Talks to the harness over stdin/stdout: prints "BASELINE" once the
// stack is warmed up (one connection made and closed), waits for a line,
// opens --count connections, prints "HOLDING n", waits for a line, exits.
//
// RESULT held=… connect_per_s=…
#include <string>
#include <vector>

#include "bench/programs/bench_util.h"

namespace {

void wait_for_line() {
    char line[64];
    if (std::fgets(line, sizeof line, stdin) == nullptr) {
        std::fprintf(stderr, "idle: the harness went away\n");
        std::exit(1);
    }
}

}  // namespace

int main(int argc, char** argv) {
    using namespace bench;
    const Args args(argc, argv, 1, "bench_idle --addr A.B.C.D [--port 5004] [--count 10000]");
    const sockaddr_in peer = address(args.str("addr"), static_cast<uint16_t>(args.num("port", 5004)));
    const auto count = static_cast<size_t>(args.num("count", 10000));
    // One fd per connection (a ustack socket's app-visible end is an fd too).
    const rlim_t limit = raise_fd_limit(static_cast<rlim_t>(count + 256));
    if (limit < count + 16) {
        std::fprintf(stderr, "idle: RLIMIT_NOFILE is %llu, too low for %zu connections\n",
                     static_cast<unsigned long long>(limit), count);
        return 1;
    }
    std::vector<int> fds;
    fds.reserve(count);
    const int warm = connect_to(peer, false);
    if (warm < 0) {
        die("warm-up connect");
    }
    ::close(warm);
    std::printf("BASELINE\n");
    std::fflush(stdout);
    wait_for_line();
    const int64_t start = now_ns();
    for (size_t i = 0; i < count; ++i) {
        const int fd = connect_to(peer, false);
        if (fd < 0) {
            die("connect number " + std::to_string(i + 1));
        }
        fds.push_back(fd);
    }
    const double seconds = static_cast<double>(now_ns() - start) / 1e9;
    std::printf("HOLDING %zu\n", fds.size());
    std::fflush(stdout);
    wait_for_line();
    for (int fd : fds) {
        ::close(fd);
    }
    std::printf("RESULT held=%zu connect_per_s=%.1f\n", fds.size(), static_cast<double>(count) / seconds);
    return 0;
}
