// churn: outgoing connections as fast as possible to the peer's hold
// service, each closed at once by us (so every local port passes through
// TIME_WAIT here), from whatever ephemeral range the stack is configured
// with (ip_local_port_range / --port-range).
//
//   bench_churn --addr A.B.C.D [--port 5004] [--seconds 30] [--stop-at-eaddrnotavail 0|1] [--graceful 0|1]
//
// With tcp_tw_reuse=1 the ports come back after the reuse delay; every
// EADDRNOTAVAIL is counted. With tcp_tw_reuse=0, --stop-at-eaddrnotavail 1
// ends the run at the first EADDRNOTAVAIL: first_eaddrnotavail_at is how
// many connections succeeded before it (the range size, on Linux).
//
// --graceful 1: shutdown(SHUT_WR), read the peer's FIN, then close, so that
// every port surely enters TIME_WAIT. A bare close() right after connect()
// races the peer: a fast client fills the peer's accept queue, and a
// connection the peer resets ends without TIME_WAIT, which frees its port
// early (the kernel then allows 1 002-1 027 connections from 1 000 ports).
// Resets are counted.
//
// RESULT conn_per_s=… conns=… eaddrnotavail=… first_eaddrnotavail_at=… other_errors=… resets=…
#include "bench/programs/bench_util.h"

int main(int argc, char** argv) {
    using namespace bench;
    const char* text =
        "bench_churn --addr A.B.C.D [--port 5004] [--seconds 30] [--stop-at-eaddrnotavail 0|1] [--graceful 0|1]";
    const Args args(argc, argv, 1, text);
    const sockaddr_in peer = address(args.str("addr"), static_cast<uint16_t>(args.num("port", 5004)));
    const double seconds = args.real("seconds", 30);
    const bool stop_at_failure = args.num("stop-at-eaddrnotavail", 0) != 0;
    const bool graceful = args.num("graceful", 0) != 0;
    int64_t resets = 0;
    int64_t conns = 0;
    int64_t eaddrnotavail = 0;
    int64_t first_failure_at = -1;
    int64_t other_errors = 0;
    const int64_t start = now_ns();
    const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
    int64_t t = start;
    while (t < end) {
        const int fd = connect_to(peer, false);
        if (fd >= 0) {
            if (graceful) {
                timeval timeout{5, 0};
                ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
                char byte;
                if (::shutdown(fd, SHUT_WR) != 0 || ::read(fd, &byte, 1) != 0) {
                    ++resets;  // no orderly FIN from the peer: no TIME_WAIT here
                }
            }
            ::close(fd);
            ++conns;
        } else if (errno == EADDRNOTAVAIL) {
            if (eaddrnotavail++ == 0) {
                first_failure_at = conns;
            }
            if (stop_at_failure) {
                t = now_ns();
                break;
            }
        } else if (++other_errors == 1) {
            std::fprintf(stderr, "churn: connect failed after %lld connections: %s\n",
                         static_cast<long long>(conns), std::strerror(errno));
        }
        t = now_ns();
    }
    std::printf(
        "RESULT conn_per_s=%.1f conns=%lld eaddrnotavail=%lld first_eaddrnotavail_at=%lld other_errors=%lld "
        "resets=%lld\n",
                static_cast<double>(conns) * 1e9 / static_cast<double>(t - start), static_cast<long long>(conns),
                static_cast<long long>(eaddrnotavail), static_cast<long long>(first_failure_at),
                static_cast<long long>(other_errors), static_cast<long long>(resets));
    return other_errors > 0 ? 1 : 0;
}
