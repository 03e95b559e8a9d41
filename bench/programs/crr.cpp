// crr: connect, 1-byte request/response, close — sequentially, for a fixed
// time, against the peer's crr service (which closes first).
//
//   bench_crr --addr A.B.C.D [--port 5002] [--seconds 3]
//
// RESULT conn_per_s=… count=… errors=…
#include "bench/programs/bench_util.h"

int main(int argc, char** argv) {
    using namespace bench;
    const Args args(argc, argv, 1, "bench_crr --addr A.B.C.D [--port 5002] [--seconds 3]");
    const sockaddr_in peer = address(args.str("addr"), static_cast<uint16_t>(args.num("port", 5002)));
    const double seconds = args.real("seconds", 3);
    int64_t count = 0;
    int64_t errors = 0;
    const int64_t start = now_ns();
    const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
    int64_t t = start;
    while (t < end) {
        const int fd = connect_to(peer, true);
        bool ok = fd >= 0;
        if (ok) {
            char byte = 'c';
            char eof = 0;
            // The request, its answer, then the server's FIN.
            ok = write_all(fd, &byte, 1) && read_all(fd, &byte, 1) && ::read(fd, &eof, 1) == 0;
            ::close(fd);
        }
        if (ok) {
            ++count;
        } else if (++errors == 1) {
            std::fprintf(stderr, "crr: first failure after %lld connections: %s\n", static_cast<long long>(count),
                         std::strerror(errno));
        }
        t = now_ns();
    }
    std::printf("RESULT conn_per_s=%.1f count=%lld errors=%lld\n",
                static_cast<double>(count) * 1e9 / static_cast<double>(t - start), static_cast<long long>(count),
                static_cast<long long>(errors));
    return errors > count ? 1 : 0;
}
