#pragma once
// Shared helpers of the benchmark workload programs (bench/programs/*.cpp).
// The programs use the plain socket API only — no ustack code — so the same
// binary runs natively on the kernel and unchanged under ustack-run.
//
// Every program prints its measurements as one line
//   RESULT key=value key=value ...
// which bench/run.py parses; anything else on stdout/stderr is commentary.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

namespace bench {

[[noreturn]] inline void die(const std::string& what) {
    std::fprintf(stderr, "%s: %s (errno %d)\n", what.c_str(), std::strerror(errno), errno);
    std::fflush(stdout);
    std::exit(1);
}

[[noreturn]] inline void usage(const char* text) {
    std::fprintf(stderr, "usage: %s\n", text);
    std::exit(2);
}

inline int64_t now_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

// "--name value" pairs after the mode word; a flag missing its value, or
// an unknown flag, is refused naming it.
class Args {
public:
    Args(int argc, char** argv, int first, const char* usage_text) : usage_(usage_text) {
        for (int i = first; i < argc; ++i) {
            const std::string key = argv[i];
            if (key.rfind("--", 0) != 0 || i + 1 >= argc) {
                std::fprintf(stderr, "bad argument '%s'\n", key.c_str());
                usage(usage_);
            }
            values_[key.substr(2)] = argv[++i];
        }
    }
    std::string str(const std::string& key, const std::string& fallback = "") const {
        auto it = values_.find(key);
        if (it != values_.end()) {
            return it->second;
        }
        if (fallback.empty()) {
            std::fprintf(stderr, "--%s is required\n", key.c_str());
            usage(usage_);
        }
        return fallback;
    }
    int64_t num(const std::string& key, int64_t fallback) const {
        const std::string v = str(key, std::to_string(fallback));
        char* end = nullptr;
        const long long n = std::strtoll(v.c_str(), &end, 10);
        if (end == v.c_str() || *end != '\0') {
            std::fprintf(stderr, "--%s: '%s' is not a number\n", key.c_str(), v.c_str());
            usage(usage_);
        }
        return n;
    }
    double real(const std::string& key, double fallback) const {
        const std::string v = str(key, std::to_string(fallback));
        char* end = nullptr;
        const double d = std::strtod(v.c_str(), &end);
        if (end == v.c_str() || *end != '\0') {
            std::fprintf(stderr, "--%s: '%s' is not a number\n", key.c_str(), v.c_str());
            usage(usage_);
        }
        return d;
    }

private:
    const char* usage_;
    std::map<std::string, std::string> values_;
};

inline sockaddr_in address(const std::string& ip, uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (::inet_pton(AF_INET, ip.c_str(), &a.sin_addr) != 1) {
        std::fprintf(stderr, "bad IPv4 address '%s'\n", ip.c_str());
        std::exit(2);
    }
    return a;
}

inline void set_int_option(int fd, int level, int name, int value, const char* what) {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
        die(what);
    }
}

// A listening TCP socket on 0.0.0.0:port with SO_REUSEADDR.
inline int listen_on(uint16_t port, int backlog = 4096) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        die("socket");
    }
    set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt(SO_REUSEADDR)");
    const sockaddr_in a = address("0.0.0.0", port);
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
        die("bind port " + std::to_string(port));
    }
    if (::listen(fd, backlog) != 0) {
        die("listen");
    }
    return fd;
}

// connect() to ip:port; returns the fd, or -1 with errno set (the socket
// closed).
inline int connect_to(const sockaddr_in& peer, bool nodelay) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    if (nodelay) {
        set_int_option(fd, IPPROTO_TCP, TCP_NODELAY, 1, "setsockopt(TCP_NODELAY)");
    }
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) != 0) {
        const int saved = errno;
        ::close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

inline bool write_all(int fd, const void* data, size_t len) {
    const auto* p = static_cast<const uint8_t*>(data);
    while (len > 0) {
        const ssize_t n = ::write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

// Reads exactly len bytes; false on EOF or error before that.
inline bool read_all(int fd, void* data, size_t len) {
    auto* p = static_cast<uint8_t*>(data);
    while (len > 0) {
        const ssize_t n = ::read(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= static_cast<size_t>(n);
    }
    return true;
}

// Raises the soft RLIMIT_NOFILE towards `want`, up to the hard limit
// (raising that needs CAP_SYS_RESOURCE, which a container may not give).
// Returns the limit now in force.
inline rlim_t raise_fd_limit(rlim_t want) {
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    if (lim.rlim_cur >= want) {
        return lim.rlim_cur;
    }
    lim.rlim_cur = want < lim.rlim_max ? want : lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) {
        die("setrlimit(RLIMIT_NOFILE, " + std::to_string(lim.rlim_cur) + ")");
    }
    return lim.rlim_cur;
}

}  // namespace bench
