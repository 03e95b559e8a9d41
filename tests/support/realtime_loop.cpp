#include "tests/support/realtime_loop.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>

namespace ustack::testing {

Instant monotonic_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return Instant::from_micros(static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000);
}

RealtimeLoop::RealtimeLoop(Stack& stack, netdev::NetDev& device, RealtimeOptions options)
    : stack_(stack), device_(device), options_(options), epoll_fd_(::epoll_create1(EPOLL_CLOEXEC)) {
    if (epoll_fd_ >= 0 && device_.poll_fd() >= 0) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = device_.poll_fd();
        ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, device_.poll_fd(), &ev);
    }
}

RealtimeLoop::~RealtimeLoop() {
    if (epoll_fd_ >= 0) {
        ::close(epoll_fd_);
    }
}

void RealtimeLoop::poll_once() { stack_.poll(monotonic_now()); }

bool RealtimeLoop::run_until(Instant deadline, const std::function<bool()>& done) {
    for (;;) {
        Instant now = monotonic_now();
        stack_.poll(now);
        if (done && done()) {
            return true;
        }
        now = monotonic_now();
        if (now >= deadline) {
            return false;
        }
        // Sleep until the device is readable, a stack timer is due, the
        // deadline passes, or max_sleep (to re-check done()).
        Instant wake = std::min(deadline, now + options_.max_sleep);
        if (const std::optional<Instant> at = stack_.poll_at()) {
            wake = std::min(wake, *at);
        }
        const int64_t micros = std::max<int64_t>(0, (wake - now).micros());
        // epoll has millisecond resolution: round up so that a timer is
        // never polled early in a busy loop.
        const int timeout_ms = static_cast<int>((micros + 999) / 1000);
        if (epoll_fd_ >= 0 && device_.poll_fd() >= 0) {
            epoll_event ev{};
            const int n = ::epoll_wait(epoll_fd_, &ev, 1, timeout_ms);
            (void)n;  // EINTR or a timeout: poll again either way
        } else {
            ::usleep(static_cast<useconds_t>(micros));
        }
    }
}

bool run_stack(Stack& stack, netdev::NetDev& device, Instant deadline, const std::function<bool()>& done) {
    RealtimeLoop loop(stack, device);
    return loop.run_until(deadline, done);
}

}  // namespace ustack::testing
