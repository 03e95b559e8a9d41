// rr: one connection, 1-byte request/response ping-pong against the peer's
// echo service for a fixed time (the first 10 % is warm-up, not counted).
//
//   bench_rr --addr A.B.C.D [--port 5001] [--seconds 3]
//
// RESULT rtt_per_s=… p50_us=… p99_us=… count=…
#include <algorithm>
#include <vector>

#include "bench/programs/bench_util.h"

int main(int argc, char** argv) {
    using namespace bench;
    const Args args(argc, argv, 1, "bench_rr --addr A.B.C.D [--port 5001] [--seconds 3]");
    const sockaddr_in peer = address(args.str("addr"), static_cast<uint16_t>(args.num("port", 5001)));
    const double seconds = args.real("seconds", 3);
    const int fd = connect_to(peer, true);
    if (fd < 0) {
        die("connect to the echo service");
    }
    std::vector<int64_t> rtt_ns;
    rtt_ns.reserve(1 << 20);
    const int64_t start = now_ns();
    const int64_t measure_from = start + static_cast<int64_t>(seconds * 0.1e9);
    const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
    char byte = 'r';
    int64_t t = start;
    while (t < end) {
        const int64_t sent = t;
        if (!write_all(fd, &byte, 1) || !read_all(fd, &byte, 1)) {
            die("ping-pong");
        }
        t = now_ns();
        if (sent >= measure_from) {
            rtt_ns.push_back(t - sent);
        }
    }
    ::close(fd);
    if (rtt_ns.empty()) {
        std::fprintf(stderr, "no round trip completed\n");
        return 1;
    }
    int64_t total = 0;
    for (int64_t v : rtt_ns) {
        total += v;
    }
    std::sort(rtt_ns.begin(), rtt_ns.end());
    const auto pct = [&](double p) {
        return static_cast<double>(rtt_ns[static_cast<size_t>(p * static_cast<double>(rtt_ns.size() - 1))]) / 1e3;
    };
    std::printf("RESULT rtt_per_s=%.1f p50_us=%.2f p99_us=%.2f count=%zu\n",
                static_cast<double>(rtt_ns.size()) * 1e9 / static_cast<double>(total), pct(0.5), pct(0.99),
                rtt_ns.size());
    return 0;
}
