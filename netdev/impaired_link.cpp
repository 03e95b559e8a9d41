#include "netdev/impaired_link.h"

#include <algorithm>
#include <utility>

namespace ustack::netdev {
namespace {

FaultConfig ingress_config(const ImpairmentConfig& config) {
    FaultConfig faults;
    faults.drop_probability = config.loss;
    faults.duplicate_probability = config.duplicate;
    faults.reorder_probability = config.reorder;
    faults.reorder_timeout = config.reorder_timeout;
    return faults;
}

}  // namespace

ImpairedLink::ImpairedLink(std::unique_ptr<NetDev> inner, ImpairmentConfig config, uint64_t seed)
    : ingress_(std::move(inner), ingress_config(config), seed),
      config_(config),
      random_(seed ^ 0x9e3779b97f4a7c15ULL) {}

bool ImpairedLink::send(Instant now, std::span<const uint8_t> frame) {
    ++egress_stats_.frames_in;
    // Every decision drawn for every frame, as FaultInjector does, so that
    // one setting does not shift the others' random stream.
    const bool drop = random_.chance(config_.loss);
    const bool duplicate = random_.chance(config_.duplicate);
    const bool reorder = random_.chance(config_.reorder);
    if (drop) {
        ++egress_stats_.dropped;
        return true;
    }
    if (reorder && !held_) {
        held_ = HeldFrame{now + std::max(config_.reorder_timeout, Duration::zero()),
                          Frame(frame.begin(), frame.end())};
        if (duplicate) {
            ++egress_stats_.duplicated;
            return transmit(now, frame);  // the copy overtakes the held original
        }
        return true;
    }
    bool ok = transmit(now, frame);
    if (duplicate) {
        ++egress_stats_.duplicated;
        ok = transmit(now, frame) && ok;
    }
    if (held_) {
        ++egress_stats_.reordered;
        transmit(now, held_->bytes);
        held_.reset();
    }
    return ok;
}

bool ImpairedLink::transmit(Instant now, std::span<const uint8_t> frame) { return ingress_.inner().send(now, frame); }

void ImpairedLink::release_held(Instant now) {
    if (held_ && held_->deadline <= now) {
        // No successor came: late rather than never.
        transmit(now, held_->bytes);
        held_.reset();
    }
}

std::optional<Frame> ImpairedLink::receive(Instant now) {
    release_held(now);
    return ingress_.receive(now);
}

std::optional<Instant> ImpairedLink::next_arrival() const {
    std::optional<Instant> earliest = ingress_.next_arrival();
    if (held_ && (!earliest || held_->deadline < *earliest)) {
        earliest = held_->deadline;
    }
    return earliest;
}

}  // namespace ustack::netdev
