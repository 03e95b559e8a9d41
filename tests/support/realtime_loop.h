#pragma once
// Drives a Stack over a real device in real time: epoll on the device's fd,
// a timeout from stack.poll_at(), CLOCK_MONOTONIC as the stack's Instant.
// The loop runs on the calling thread; a test checks its condition (a
// subprocess finished, a datagram arrived) in `done`, which runs after
// every poll, so no second thread and no lock are needed.
#include <functional>

#include "netdev/netdev.h"
#include "stack/core/time.h"
#include "stack/stack.h"

namespace ustack::testing {

// CLOCK_MONOTONIC in microseconds.
Instant monotonic_now();

struct RealtimeOptions {
    // Longest sleep between two checks of `done` when neither the device
    // nor a stack timer wakes the loop (a subprocess's progress does not).
    Duration max_sleep = Duration::from_millis(1);
};

class RealtimeLoop {
public:
    RealtimeLoop(Stack& stack, netdev::NetDev& device, RealtimeOptions options = {});
    ~RealtimeLoop();

    RealtimeLoop(const RealtimeLoop&) = delete;
    RealtimeLoop& operator=(const RealtimeLoop&) = delete;

    // Polls until done() returns true (checked after each poll) or the
    // deadline passes; returns whether done() held.
    bool run_until(Instant deadline, const std::function<bool()>& done = {});
    bool run_for(Duration d, const std::function<bool()>& done = {}) { return run_until(monotonic_now() + d, done); }
    // One poll at the current time (e.g. right after queueing a send).
    void poll_once();
    Instant now() const { return monotonic_now(); }

private:
    Stack& stack_;
    netdev::NetDev& device_;
    RealtimeOptions options_;
    int epoll_fd_ = -1;
};

// The brief form: run `stack` over `device` until done() or deadline.
bool run_stack(Stack& stack, netdev::NetDev& device, Instant deadline, const std::function<bool()>& done = {});

}  // namespace ustack::testing
