#pragma once
// A NetDev wrapper that impairs BOTH directions of a link, as `tc netem`
// on the peer's interface would (loss, duplication, reordering), for
// interop tests against the kernel on machines whose kernel has no
// sch_netem (or no tc actions). Frames the stack receives go through a
// FaultInjector; frames it sends are dropped, duplicated or held back
// behind their successor here, before they reach the real device, so the
// kernel's TCP sees an impaired link as well.
//
// A held outgoing frame leaves right after the next frame sent, or when
// reorder_timeout passes without one (released from receive(), which the
// stack calls on every poll; next_arrival() tells the loop when).
#include <cstdint>
#include <memory>
#include <optional>

#include "netdev/fault_injector.h"
#include "netdev/netdev.h"
#include "stack/core/random.h"

namespace ustack::netdev {

struct ImpairmentConfig {
    double loss = 0.0;       // per frame, each direction
    double duplicate = 0.0;  // per frame, each direction
    double reorder = 0.0;    // per frame, each direction: overtaken by its successor
    Duration reorder_timeout = Duration::from_millis(5);
};

struct EgressFaultStats {
    uint64_t frames_in = 0;  // send() calls
    uint64_t dropped = 0;
    uint64_t duplicated = 0;
    uint64_t reordered = 0;  // held frames sent after their successor
};

class ImpairedLink final : public NetDev {
public:
    ImpairedLink(std::unique_ptr<NetDev> inner, ImpairmentConfig config, uint64_t seed);

    ImpairedLink(const ImpairedLink&) = delete;
    ImpairedLink& operator=(const ImpairedLink&) = delete;

    // Returns true for a frame this wrapper dropped on purpose (the link
    // lost it, the sender cannot know), false only when the device did.
    bool send(Instant now, std::span<const uint8_t> frame) override;
    std::optional<Frame> receive(Instant now) override;
    std::optional<Instant> next_arrival() const override;
    int poll_fd() const override { return ingress_.poll_fd(); }
    void take_poll_error() override { ingress_.take_poll_error(); }
    size_t mtu() const override { return ingress_.mtu(); }
    wire::MacAddress mac() const override { return ingress_.mac(); }
    const DeviceStats& stats() const override { return ingress_.stats(); }
    void flush(Instant now) override { ingress_.flush(now); }
    bool has_pending_tx() const override { return ingress_.has_pending_tx(); }

    const FaultStats& ingress_stats() const { return ingress_.fault_stats(); }
    const EgressFaultStats& egress_stats() const { return egress_stats_; }

private:
    struct HeldFrame {
        Instant deadline;
        Frame bytes;
    };
    bool transmit(Instant now, std::span<const uint8_t> frame);
    void release_held(Instant now);

    FaultInjector ingress_;  // owns the real device
    ImpairmentConfig config_;
    SeededRandom random_;
    std::optional<HeldFrame> held_;
    EgressFaultStats egress_stats_;
};

}  // namespace ustack::netdev
