#include "stack/ip/ipv4_reassembly.h"

#include <algorithm>

namespace ustack::ip {

void Ipv4Reassembler::drop_queue(std::unordered_map<Key, Queue, KeyHash>::iterator it) {
    bytes_held_ -= it->second.data.size();
    queues_.erase(it);
}

bool Ipv4Reassembler::evict_oldest(const Key& keep) {
    auto oldest = queues_.end();
    for (auto it = queues_.begin(); it != queues_.end(); ++it) {
        if (!(it->first == keep) && (oldest == queues_.end() || it->second.deadline < oldest->second.deadline)) {
            oldest = it;
        }
    }
    if (oldest == queues_.end()) {
        return false;
    }
    drop_queue(oldest);
    return true;
}

Ipv4Reassembler::Outcome Ipv4Reassembler::add(Instant now, const wire::Ipv4Packet& fragment) {
    Outcome outcome;
    const wire::Ipv4Repr& header = fragment.repr;
    const size_t start = header.fragment_offset;
    const size_t end = start + fragment.payload.size();
    // RFC 791: every fragment but the last carries a multiple of 8 bytes.
    if (end > 65535 - wire::Ipv4Repr::header_len) {
        outcome.dropped = Counter::drop_ip_frag_too_big;
        return outcome;
    }
    if (header.more_fragments && (fragment.payload.empty() || fragment.payload.size() % 8 != 0)) {
        outcome.dropped = Counter::drop_ip_bad_length;
        return outcome;
    }
    const Key key{header.src.to_u32(), header.dst.to_u32(), header.ident, header.protocol};
    auto it = queues_.find(key);
    if (it == queues_.end()) {
        it = queues_.emplace(key, Queue{}).first;
        it->second.deadline = now + config_.timeout;
    }
    Queue& queue = it->second;

    if (!header.more_fragments) {
        // The last fragment fixes the length; a second, different one is
        // an inconsistency (Linux: "ipq corrupt").
        if ((queue.total_len && *queue.total_len != end) ||
            (!queue.ranges.empty() && queue.ranges.back().end > end)) {
            drop_queue(it);
            outcome.dropped = Counter::drop_ip_frag_overlap;
            return outcome;
        }
        queue.total_len = end;
    } else if (queue.total_len && end > *queue.total_len) {
        drop_queue(it);
        outcome.dropped = Counter::drop_ip_frag_overlap;
        return outcome;
    }

    // Overlap check against the sorted ranges.
    auto pos = std::lower_bound(queue.ranges.begin(), queue.ranges.end(), start,
                                [](const Range& r, size_t s) { return r.start < s; });
    if (pos != queue.ranges.end() && pos->start == start && pos->end == end) {
        outcome.dropped = Counter::drop_ip_frag_overlap;  // exact duplicate: ignore it alone
        return outcome;
    }
    const bool overlaps_next = pos != queue.ranges.end() && pos->start < end;
    const bool overlaps_prev = pos != queue.ranges.begin() && std::prev(pos)->end > start;
    if (overlaps_next || overlaps_prev) {
        drop_queue(it);
        outcome.dropped = Counter::drop_ip_frag_overlap;
        return outcome;
    }
    if (queue.fragments + 1 > config_.max_fragments_per_datagram) {
        drop_queue(it);
        outcome.dropped = Counter::drop_ip_frag_limit;
        return outcome;
    }

    // Memory ceiling: evict the oldest other datagrams until this fits.
    const size_t growth = end > queue.data.size() ? end - queue.data.size() : 0;
    while (bytes_held_ + growth > config_.max_bytes) {
        if (!evict_oldest(key)) {
            drop_queue(queues_.find(key));
            outcome.dropped = Counter::drop_ip_frag_limit;
            return outcome;
        }
    }
    // Erasing other entries leaves references to this one valid, but look it
    // up again so the reader need not know that.
    Queue& q = queues_.find(key)->second;
    if (growth > 0) {
        q.data.resize(end);
        bytes_held_ += growth;
    }
    std::copy(fragment.payload.begin(), fragment.payload.end(), q.data.begin() + static_cast<std::ptrdiff_t>(start));
    auto insert_at = std::lower_bound(q.ranges.begin(), q.ranges.end(), start,
                                      [](const Range& r, size_t s) { return r.start < s; });
    q.ranges.insert(insert_at, Range{start, end});
    ++q.fragments;
    if (start == 0) {
        q.first_header = header;
        q.have_first = true;
    }

    // Complete when the ranges cover [0, total_len) without a hole.
    if (!q.total_len || !q.have_first) {
        return outcome;
    }
    size_t covered = 0;
    for (const Range& r : q.ranges) {
        if (r.start != covered) {
            return outcome;
        }
        covered = r.end;
    }
    if (covered != *q.total_len) {
        return outcome;
    }
    wire::Ipv4Repr whole = q.first_header;
    whole.more_fragments = false;
    whole.fragment_offset = 0;
    whole.payload_len = static_cast<uint16_t>(covered);
    outcome.header = whole;
    outcome.payload = std::move(q.data);
    q.data.clear();
    bytes_held_ -= covered;
    queues_.erase(queues_.find(key));
    return outcome;
}

std::vector<Ipv4Reassembler::Expired> Ipv4Reassembler::poll(Instant now) {
    std::vector<Expired> expired;
    for (auto it = queues_.begin(); it != queues_.end();) {
        if (now < it->second.deadline) {
            ++it;
            continue;
        }
        Expired e;
        e.have_first = it->second.have_first;
        if (e.have_first) {
            e.header = it->second.first_header;
            const size_t n = std::min<size_t>(8, it->second.data.size());
            e.first_bytes.assign(it->second.data.begin(), it->second.data.begin() + static_cast<std::ptrdiff_t>(n));
        }
        expired.push_back(std::move(e));
        bytes_held_ -= it->second.data.size();
        it = queues_.erase(it);
    }
    return expired;
}

std::optional<Instant> Ipv4Reassembler::poll_at() const {
    std::optional<Instant> earliest;
    for (const auto& [key, queue] : queues_) {
        if (!earliest || queue.deadline < *earliest) {
            earliest = queue.deadline;
        }
    }
    return earliest;
}

}  // namespace ustack::ip
