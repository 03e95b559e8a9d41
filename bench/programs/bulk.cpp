// bulk: bytes in one direction over one or several parallel streams,
// against the peer's bulk service.
//
//   bench_bulk --addr A.B.C.D [--port 5003] --direction up|down [--bytes N]
//              [--streams 1] [--time-limit 60]
//
// up: the client sends, and the clock stops when the peer has confirmed
// receiving every byte (its answer after our shutdown), so nothing still
// sitting in buffers is counted. down: the peer sends, the clock stops at
// EOF. A stream that hits the time limit stops early and the rate counts
// the bytes that did arrive (capped=1 says so).
//
// RESULT gbit_per_s=… bytes=… seconds=… capped=0|1
#include <signal.h>

#include <atomic>
#include <thread>
#include <vector>

#include "bench/programs/bench_util.h"

namespace {

using namespace bench;

struct Stream {
    uint64_t bytes_done = 0;
    bool capped = false;
    std::string error;
};

void run_stream(const sockaddr_in& peer, bool up, uint64_t bytes, int64_t deadline, Stream& out) {
    const int fd = connect_to(peer, false);
    if (fd < 0) {
        out.error = std::string("connect: ") + std::strerror(errno);
        return;
    }
    uint8_t header[9];
    header[0] = up ? 'U' : 'D';
    std::memcpy(header + 1, &bytes, sizeof bytes);
    if (!write_all(fd, header, sizeof header)) {
        out.error = std::string("header: ") + std::strerror(errno);
        ::close(fd);
        return;
    }
    std::vector<char> buf(256 * 1024, 'b');
    uint64_t done = 0;
    if (up) {
        uint64_t left = bytes;
        while (left > 0) {
            if (now_ns() > deadline) {
                out.capped = true;
                break;
            }
            const size_t chunk = left < buf.size() ? static_cast<size_t>(left) : buf.size();
            if (!write_all(fd, buf.data(), chunk)) {
                out.error = std::string("write: ") + std::strerror(errno);
                ::close(fd);
                return;
            }
            left -= chunk;
        }
        ::shutdown(fd, SHUT_WR);
        if (!read_all(fd, &done, sizeof done)) {
            out.error = std::string("reading the peer's count: ") + std::strerror(errno);
        }
    } else {
        for (;;) {
            const ssize_t n = ::read(fd, buf.data(), buf.size());
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                out.error = std::string("read: ") + std::strerror(errno);
                break;
            }
            if (n == 0) {
                break;
            }
            done += static_cast<uint64_t>(n);
            if (now_ns() > deadline) {
                out.capped = done < bytes;
                break;
            }
        }
        if (!out.capped && out.error.empty() && done != bytes) {
            out.error = "EOF after " + std::to_string(done) + " of " + std::to_string(bytes) + " bytes";
        }
    }
    out.bytes_done = done;
    ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
    const char* text =
        "bench_bulk --addr A.B.C.D [--port 5003] --direction up|down [--bytes N] [--streams 1] [--time-limit 60]";
    const Args args(argc, argv, 1, text);
    ::signal(SIGPIPE, SIG_IGN);
    const sockaddr_in peer = address(args.str("addr"), static_cast<uint16_t>(args.num("port", 5003)));
    const std::string direction = args.str("direction");
    if (direction != "up" && direction != "down") {
        usage(text);
    }
    const auto bytes = static_cast<uint64_t>(args.num("bytes", int64_t{1} << 30));
    const auto streams = static_cast<size_t>(args.num("streams", 1));
    const double limit = args.real("time-limit", 60);
    if (streams < 1 || streams > 64 || bytes < streams) {
        usage(text);
    }
    std::vector<Stream> results(streams);
    std::vector<std::thread> threads;
    const int64_t start = now_ns();
    const int64_t deadline = start + static_cast<int64_t>(limit * 1e9);
    for (size_t i = 0; i < streams; ++i) {
        threads.emplace_back(run_stream, std::cref(peer), direction == "up", bytes / streams, deadline,
                             std::ref(results[i]));
    }
    for (auto& t : threads) {
        t.join();
    }
    const double seconds = static_cast<double>(now_ns() - start) / 1e9;
    uint64_t total = 0;
    bool capped = false;
    for (const Stream& s : results) {
        if (!s.error.empty()) {
            std::fprintf(stderr, "bulk %s: %s\n", direction.c_str(), s.error.c_str());
            return 1;
        }
        total += s.bytes_done;
        capped = capped || s.capped;
    }
    std::printf("RESULT gbit_per_s=%.3f bytes=%llu seconds=%.3f capped=%d\n",
                static_cast<double>(total) * 8 / seconds / 1e9, static_cast<unsigned long long>(total), seconds,
                capped ? 1 : 0);
    return 0;
}
