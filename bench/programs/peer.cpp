// The kernel-side peer of every workload: one process in the peer
// namespace serving all of them, so the kernel stack and the ustack runs
// talk to the very same server.
//
//   bench_peer [--echo-port 5001] [--crr-port 5002] [--bulk-port 5003] [--hold-port 5004]
//
//   echo  (rr)    a thread per connection echoes whatever arrives;
//   crr           sequential: read 1 byte, write it back, close (the server
//                 closes first, so the client's ports do not pile up in
//                 TIME_WAIT and crr measures connection setup, not churn);
//   bulk          a thread per connection; the client sends 'U' or 'D' and a
//                 64-bit byte count: 'U' reads to EOF and answers the count
//                 received, 'D' sends that many bytes and closes;
//   hold (churn, scale)  one epoll loop that accepts and holds connections
//                 until the client closes them.
//
// Runs until killed.
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>

#include <thread>
#include <vector>

#include "bench/programs/bench_util.h"

namespace {

using namespace bench;

void echo_connection(int fd) {
    set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)");
    std::vector<char> buf(65536);
    for (;;) {
        const ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n <= 0 || !write_all(fd, buf.data(), static_cast<size_t>(n))) {
            break;
        }
    }
    ::close(fd);
}

void serve_echo(int listener) {
    for (;;) {
        const int fd = ::accept(listener, nullptr, nullptr);
        if (fd >= 0) {
            std::thread(echo_connection, fd).detach();
        }
    }
}

void serve_crr(int listener) {
    for (;;) {
        const int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) {
            continue;
        }
        // A client that never sends must not stall the service for good.
        timeval timeout{5, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)");
        char byte = 0;
        if (::read(fd, &byte, 1) == 1) {
            (void)::write(fd, &byte, 1);
        }
        ::close(fd);
    }
}

void bulk_connection(int fd) {
    uint8_t header[9];
    if (!read_all(fd, header, sizeof header)) {
        ::close(fd);
        return;
    }
    uint64_t count = 0;
    std::memcpy(&count, header + 1, sizeof count);
    std::vector<char> buf(256 * 1024, 'x');
    if (header[0] == 'U') {
        uint64_t received = 0;
        for (;;) {
            const ssize_t n = ::read(fd, buf.data(), buf.size());
            if (n <= 0) {
                break;
            }
            received += static_cast<uint64_t>(n);
        }
        (void)write_all(fd, &received, sizeof received);
    } else {
        while (count > 0) {
            const size_t chunk = count < buf.size() ? static_cast<size_t>(count) : buf.size();
            if (!write_all(fd, buf.data(), chunk)) {
                break;  // the client stopped early (time limit)
            }
            count -= chunk;
        }
    }
    ::close(fd);
}

void serve_bulk(int listener) {
    for (;;) {
        const int fd = ::accept(listener, nullptr, nullptr);
        if (fd >= 0) {
            std::thread(bulk_connection, fd).detach();
        }
    }
}

void serve_hold(int listener) {
    // Non-blocking, so the accept loop below ends when the queue is empty.
    if (::fcntl(listener, F_SETFL, ::fcntl(listener, F_GETFL) | O_NONBLOCK) != 0) {
        die("fcntl(O_NONBLOCK)");
    }
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) {
        die("epoll_create1");
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listener;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, listener, &ev) != 0) {
        die("epoll_ctl");
    }
    std::vector<epoll_event> events(256);
    char scratch[4096];
    for (;;) {
        const int n = ::epoll_wait(ep, events.data(), static_cast<int>(events.size()), -1);
        for (int i = 0; i < n; ++i) {
            const int fd = events[static_cast<size_t>(i)].data.fd;
            if (fd == listener) {
                for (;;) {
                    const int c = ::accept4(listener, nullptr, nullptr, SOCK_NONBLOCK);
                    if (c < 0) {
                        break;
                    }
                    epoll_event cev{};
                    cev.events = EPOLLIN | EPOLLRDHUP;
                    cev.data.fd = c;
                    ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            const ssize_t r = ::read(fd, scratch, sizeof scratch);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                ::close(fd);  // also leaves the epoll set
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    const char* text = "bench_peer [--echo-port P] [--crr-port P] [--bulk-port P] [--hold-port P]";
    const Args args(argc, argv, 1, text);
    ::signal(SIGPIPE, SIG_IGN);
    raise_fd_limit(1 << 17);
    // Listen on every port before announcing readiness.
    const int echo = listen_on(static_cast<uint16_t>(args.num("echo-port", 5001)));
    const int crr = listen_on(static_cast<uint16_t>(args.num("crr-port", 5002)));
    const int bulk = listen_on(static_cast<uint16_t>(args.num("bulk-port", 5003)));
    const int hold = listen_on(static_cast<uint16_t>(args.num("hold-port", 5004)), 65535);
    std::printf("READY\n");
    std::fflush(stdout);
    std::thread(serve_echo, echo).detach();
    std::thread(serve_crr, crr).detach();
    std::thread(serve_bulk, bulk).detach();
    serve_hold(hold);
}
