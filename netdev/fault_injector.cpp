#include "netdev/fault_injector.h"

#include <algorithm>
#include <utility>

namespace ustack::netdev {

FaultInjector::FaultInjector(std::unique_ptr<NetDev> inner, FaultConfig config, uint64_t seed)
    : inner_(std::move(inner)), config_(config), random_(seed) {}

bool FaultInjector::send(Instant now, std::span<const uint8_t> frame) {
    return inner_->send(now, frame);
}

std::optional<Frame> FaultInjector::receive(Instant now) {
    // Drain the inner device first so that frames arriving in one burst can
    // overtake a held one within the same call.
    while (auto frame = inner_->receive(now)) {
        admit(now, std::move(*frame));
    }
    release_expired_hold(now);
    if (queue_.empty() || queue_.front().due > now) {
        return std::nullopt;
    }
    Frame out = std::move(queue_.front().bytes);
    queue_.pop_front();
    ++fault_stats_.frames_out;
    ++rx_frames_;
    rx_bytes_ += out.size();
    return out;
}

std::optional<Instant> FaultInjector::next_arrival() const {
    std::optional<Instant> earliest = inner_->next_arrival();
    auto consider = [&earliest](Instant t) {
        if (!earliest || t < *earliest) {
            earliest = t;
        }
    };
    if (!queue_.empty()) {
        consider(queue_.front().due);
    }
    if (held_) {
        consider(held_->deadline);
    }
    return earliest;
}

const DeviceStats& FaultInjector::stats() const {
    stats_view_ = inner_->stats();
    stats_view_.rx_frames = rx_frames_;
    stats_view_.rx_bytes = rx_bytes_;
    return stats_view_;
}

void FaultInjector::admit(Instant now, Frame frame) {
    ++fault_stats_.frames_in;
    // Draw every decision for every frame, whether or not it is used, so that
    // turning one fault on or off does not shift the others' random stream.
    const bool drop = random_.chance(config_.drop_probability);
    const bool corrupt = random_.chance(config_.corrupt_probability);
    const bool duplicate = random_.chance(config_.duplicate_probability);
    const bool reorder = random_.chance(config_.reorder_probability);
    const uint64_t jitter_draw = random_.next_u64();

    if (drop) {
        ++fault_stats_.dropped;
        return;
    }
    if (corrupt && !frame.empty()) {
        const uint32_t position = random_.below(static_cast<uint32_t>(frame.size()));
        // XOR with 1..255 so the byte always changes.
        const auto mask = static_cast<uint8_t>(1 + random_.below(255));
        frame[position] ^= mask;
        ++fault_stats_.corrupted;
    }

    Duration extra = std::max(config_.delay, Duration::zero());
    if (config_.jitter > Duration::zero()) {
        const auto span = static_cast<uint64_t>(config_.jitter.micros()) + 1;
        extra += Duration::from_micros(static_cast<int64_t>(jitter_draw % span));
    }
    if (extra > Duration::zero()) {
        ++fault_stats_.delayed;
    }
    const Instant due = now + extra;

    std::optional<Frame> copy;
    if (duplicate) {
        copy = frame;
        ++fault_stats_.duplicated;
    }

    if (reorder && !held_) {
        held_ = Held{due, due + std::max(config_.reorder_timeout, Duration::zero()), std::move(frame)};
        // The copy is not a successor: it goes out on time, so the duplicate
        // arrives before the original, which is a reordering of its own.
        if (copy) {
            insert_by_due(due, std::move(*copy));
        }
        return;
    }
    insert_by_due(due, std::move(frame));
    if (copy) {
        insert_by_due(due, std::move(*copy));
    }
    release_held_behind(due);
}

void FaultInjector::insert_by_due(Instant due, Frame frame) {
    // upper_bound keeps FIFO order among equal due times; with no jitter every
    // insertion lands at the back.
    auto position = std::upper_bound(queue_.begin(), queue_.end(), due,
                                     [](Instant t, const Scheduled& s) { return t < s.due; });
    queue_.insert(position, Scheduled{due, std::move(frame)});
}

void FaultInjector::release_held_behind(Instant successor_due) {
    if (!held_) {
        return;
    }
    // Due no earlier than the successor, and inserted after equal due times,
    // so the successor is delivered first.
    insert_by_due(std::max(held_->due, successor_due), std::move(held_->bytes));
    held_.reset();
    ++fault_stats_.reordered;
}

void FaultInjector::release_expired_hold(Instant now) {
    if (!held_ || held_->deadline > now) {
        return;
    }
    // No successor came: deliver it late rather than never.
    insert_by_due(held_->due, std::move(held_->bytes));
    held_.reset();
}

}  // namespace ustack::netdev
