#pragma once
// IPv4 fragment reassembly (RFC 791 §3.2, RFC 815 hole tracking) with
// Linux's limits: a 30 s timeout (ipfrag_time), a memory ceiling across all
// datagrams (ipfrag_high_thresh, 4 MiB; the oldest incomplete datagrams are
// evicted to make room), and overlapping fragments discarding the whole
// datagram as Linux has done since 4.19 (an exact duplicate is ignored).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "stack/core/counters.h"
#include "stack/core/time.h"
#include "stack/wire/ipv4.h"

namespace ustack::ip {

struct ReassemblyConfig {
    Duration timeout = Duration::from_secs(30);
    size_t max_bytes = 4 * 1024 * 1024;
    size_t max_fragments_per_datagram = 64;
};

class Ipv4Reassembler {
public:
    explicit Ipv4Reassembler(ReassemblyConfig config = {}) : config_(config) {}

    struct Outcome {
        // Set when the datagram is complete: header of the first fragment
        // with fragment fields cleared and payload_len of the whole.
        std::optional<wire::Ipv4Repr> header;
        std::vector<uint8_t> payload;
        // Set when this fragment (or its datagram) was dropped.
        std::optional<Counter> dropped;
    };
    Outcome add(Instant now, const wire::Ipv4Packet& fragment);

    struct Expired {
        wire::Ipv4Repr header;
        // The first fragment's leading payload bytes (<= 8), for the ICMP
        // time-exceeded quote; empty when the first fragment never arrived
        // (RFC 792: then no ICMP is sent).
        std::vector<uint8_t> first_bytes;
        bool have_first = false;
    };
    // Drops datagrams older than the timeout.
    std::vector<Expired> poll(Instant now);
    std::optional<Instant> poll_at() const;

    size_t datagrams() const { return queues_.size(); }
    size_t bytes_held() const { return bytes_held_; }

private:
    struct Key {
        uint32_t src;
        uint32_t dst;
        uint16_t ident;
        uint8_t protocol;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        size_t operator()(const Key& k) const {
            uint64_t h = (uint64_t{k.src} << 32) ^ k.dst;
            h ^= (uint64_t{k.ident} << 8 | k.protocol) * 0x9e3779b97f4a7c15ULL;
            return static_cast<size_t>(h ^ (h >> 29));
        }
    };
    struct Range {
        size_t start;
        size_t end;
    };
    struct Queue {
        Instant deadline;
        wire::Ipv4Repr first_header;  // from the fragment at offset 0
        bool have_first = false;
        std::optional<size_t> total_len;  // known once the last fragment arrived
        std::vector<Range> ranges;        // sorted, non-overlapping
        std::vector<uint8_t> data;
        size_t fragments = 0;
    };
    void drop_queue(std::unordered_map<Key, Queue, KeyHash>::iterator it);
    bool evict_oldest(const Key& keep);

    ReassemblyConfig config_;
    std::unordered_map<Key, Queue, KeyHash> queues_;
    size_t bytes_held_ = 0;
};

}  // namespace ustack::ip
