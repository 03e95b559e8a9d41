#include "stack/ip/arp_cache.h"

#include <algorithm>

namespace ustack::ip {

namespace {
void fill_destination(Frame& frame, const wire::MacAddress& mac) {
    std::copy(mac.bytes.begin(), mac.bytes.end(), frame.begin());
}
}  // namespace

std::optional<wire::MacAddress> ArpCache::lookup(wire::Ipv4Address ip, Instant now) const {
    auto it = entries_.find(ip);
    if (it == entries_.end() || !it->second.mac || now >= it->second.expires_at) {
        return std::nullopt;
    }
    return it->second.mac;
}

std::vector<Frame> ArpCache::update(wire::Ipv4Address ip, wire::MacAddress mac, Instant now,
                                    bool create) {
    auto it = entries_.find(ip);
    if (it == entries_.end()) {
        if (!create || (entries_.size() >= config_.max_entries && !make_room())) {
            return {};
        }
        it = entries_.emplace(ip, Entry{}).first;
    }
    Entry& entry = it->second;
    entry.mac = mac;
    entry.expires_at = now + config_.entry_lifetime;
    entry.requests_sent = 0;
    std::vector<Frame> ready = std::move(entry.pending);
    entry.pending.clear();
    entry.pending_bytes = 0;
    for (Frame& frame : ready) {
        fill_destination(frame, mac);
    }
    return ready;
}

ArpCache::EnqueueResult ArpCache::enqueue(wire::Ipv4Address ip, Frame frame, Instant now) {
    auto it = entries_.find(ip);
    bool fresh = false;
    if (it == entries_.end() || (it->second.mac && now >= it->second.expires_at)) {
        if (it == entries_.end()) {
            if (entries_.size() >= config_.max_entries && !make_room()) {
                return EnqueueResult::Dropped;
            }
            it = entries_.emplace(ip, Entry{}).first;
        }
        Entry& entry = it->second;
        entry.mac.reset();
        entry.requests_sent = 1;
        entry.next_request_at = now + config_.retry_interval;
        fresh = true;
    }
    Entry& entry = it->second;
    if (entry.pending_bytes + frame.size() > config_.max_pending_bytes_per_entry) {
        return EnqueueResult::Dropped;
    }
    entry.pending_bytes += frame.size();
    entry.pending.push_back(std::move(frame));
    return fresh ? EnqueueResult::SendRequest : EnqueueResult::Queued;
}

ArpCache::Timers ArpCache::poll(Instant now) {
    Timers timers;
    for (auto it = entries_.begin(); it != entries_.end();) {
        Entry& entry = it->second;
        if (entry.mac) {
            if (now >= entry.expires_at) {
                ++timers.expired;
                it = entries_.erase(it);
                continue;
            }
        } else if (now >= entry.next_request_at) {
            if (entry.requests_sent >= config_.max_requests) {
                timers.failed.push_back(Failed{it->first, std::move(entry.pending)});
                it = entries_.erase(it);
                continue;
            }
            ++entry.requests_sent;
            entry.next_request_at = now + config_.retry_interval;
            timers.retry.push_back(it->first);
        }
        ++it;
    }
    return timers;
}

std::optional<Instant> ArpCache::poll_at() const {
    std::optional<Instant> earliest;
    for (const auto& [ip, entry] : entries_) {
        const Instant due = entry.mac ? entry.expires_at : entry.next_request_at;
        if (!earliest || due < *earliest) {
            earliest = due;
        }
    }
    return earliest;
}

bool ArpCache::make_room() {
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it) {
        if (it->second.mac && (victim == entries_.end() || it->second.expires_at < victim->second.expires_at)) {
            victim = it;
        }
    }
    if (victim == entries_.end()) {
        return false;
    }
    entries_.erase(victim);
    ++evicted_;
    return true;
}

}  // namespace ustack::ip
