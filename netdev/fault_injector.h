#pragma once
// A NetDev wrapper that makes a perfect link imperfect: loss, duplication,
// reordering, delay with jitter and corruption, drawn from a seeded random
// source so a failing run can be replayed. Faults act on the RECEIVE path
// only; to impair the direction A -> B, wrap B's end (smoltcp's
// FaultInjector middleware, plus netem-style delay and reordering).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>

#include "netdev/netdev.h"
#include "stack/core/random.h"
#include "stack/core/time.h"

namespace ustack::netdev {

struct FaultConfig {
    // Each probability is per received frame, in [0, 1].
    double drop_probability = 0.0;
    double duplicate_probability = 0.0;
    double corrupt_probability = 0.0;  // one random byte XORed with a nonzero value
    // A reordered frame is held back until the next frame has been queued
    // ahead of it, or until reorder_timeout has passed without a successor (so
    // the last frame of a burst is late, never lost). One frame is held at a
    // time; while one is held, newcomers are not chosen for reordering.
    double reorder_probability = 0.0;
    Duration reorder_timeout = Duration::from_millis(10);
    // Every frame becomes due at arrival + delay + uniform[0, jitter]. Frames
    // leave in due-time order (FIFO among equal due times), so jitter larger
    // than the gap between frames reorders them, as with netem. Non-negative.
    Duration delay = Duration::zero();
    Duration jitter = Duration::zero();
};

// What the injector did, for tests to reconcile against. Invariant once
// nothing is pending: frames_out == frames_in - dropped + duplicated.
struct FaultStats {
    uint64_t frames_in = 0;   // taken from the inner device
    uint64_t frames_out = 0;  // handed to the caller of receive()
    uint64_t dropped = 0;
    uint64_t duplicated = 0;  // extra copies made
    uint64_t reordered = 0;   // held frames that a successor overtook
    uint64_t delayed = 0;     // frames (not copies) given a nonzero delay
    uint64_t corrupted = 0;
};

class FaultInjector final : public NetDev {
public:
    // Deterministic for a given seed, configuration and sequence of calls.
    FaultInjector(std::unique_ptr<NetDev> inner, FaultConfig config, uint64_t seed);

    FaultInjector(const FaultInjector&) = delete;
    FaultInjector& operator=(const FaultInjector&) = delete;

    // Sending is not impaired: it goes straight to the inner device.
    bool send(Instant now, std::span<const uint8_t> frame) override;
    // Pulls everything the inner device has due at `now`, applies the
    // faults, then returns the earliest frame whose due time is <= now.
    std::optional<Frame> receive(Instant now) override;
    // The earliest of: the head of the delay queue, the held frame's timeout,
    // and the inner device's own next_arrival().
    std::optional<Instant> next_arrival() const override;
    int poll_fd() const override { return inner_->poll_fd(); }
    void take_poll_error() override { inner_->take_poll_error(); }
    size_t mtu() const override { return inner_->mtu(); }
    wire::MacAddress mac() const override { return inner_->mac(); }
    void flush(Instant now) override { inner_->flush(now); }
    bool has_pending_tx() const override { return inner_->has_pending_tx(); }
    // The inner device's tx counters; rx counts what this wrapper delivered.
    const DeviceStats& stats() const override;

    const FaultStats& fault_stats() const { return fault_stats_; }
    // Frames taken from the inner device and not yet delivered (queued or held).
    size_t pending() const { return queue_.size() + (held_ ? 1 : 0); }
    // Changes the faults applied to frames arriving from now on (e.g. a
    // partition that heals); frames already queued keep their due times.
    void set_config(const FaultConfig& config) { config_ = config; }
    const FaultConfig& config() const { return config_; }
    NetDev& inner() { return *inner_; }

private:
    struct Scheduled {
        Instant due;
        Frame bytes;
    };
    struct Held {
        Instant due;       // when it would have been due had it not been held
        Instant deadline;  // released at its own due time after this
        Frame bytes;
    };

    void admit(Instant now, Frame frame);
    void insert_by_due(Instant due, Frame frame);
    void release_held_behind(Instant successor_due);
    void release_expired_hold(Instant now);

    std::unique_ptr<NetDev> inner_;
    FaultConfig config_;
    SeededRandom random_;
    std::deque<Scheduled> queue_;  // sorted by due, stable
    std::optional<Held> held_;
    FaultStats fault_stats_;
    uint64_t rx_frames_ = 0;
    uint64_t rx_bytes_ = 0;
    mutable DeviceStats stats_view_;
};

}  // namespace ustack::netdev
