#pragma once
// Neighbour cache for IPv4 over Ethernet (RFC 826, RFC 1122 §2.3.2.1).
// A pure data structure: the stack sends the requests and frames it is told
// to. Defaults follow Linux's neighbour table: 3 requests 1 s apart
// (mcast_solicit, retrans_time), a bounded queue of packets waiting for
// resolution (unres_qlen_bytes), a bounded table (gc_thresh3).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "stack/core/time.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::ip {

using Frame = std::vector<uint8_t>;

struct ArpConfig {
    // How long a resolved entry is trusted before it must be resolved again.
    Duration entry_lifetime = Duration::from_secs(60);
    Duration retry_interval = Duration::from_secs(1);
    unsigned max_requests = 3;
    size_t max_pending_bytes_per_entry = 212992;  // Linux unres_qlen_bytes
    size_t max_entries = 1024;                     // Linux gc_thresh3
};

class ArpCache {
public:
    explicit ArpCache(ArpConfig config = {}) : config_(config) {}

    // The MAC for ip if resolved and not expired at now.
    std::optional<wire::MacAddress> lookup(wire::Ipv4Address ip, Instant now) const;

    // RFC 826 merge: refreshes an existing entry, or creates one when
    // `create` (the request was for us). Returns frames that were waiting
    // for this address, their destination MAC already filled in.
    std::vector<Frame> update(wire::Ipv4Address ip, wire::MacAddress mac, Instant now, bool create);

    enum class EnqueueResult {
        SendRequest,  // new resolution started: send the first request now
        Queued,       // resolution already in progress
        Dropped,      // queue for this address full, or table full of pending entries
    };
    // Holds an Ethernet frame (destination MAC to be filled) until ip resolves.
    EnqueueResult enqueue(wire::Ipv4Address ip, Frame frame, Instant now);

    struct Failed {
        wire::Ipv4Address ip;
        std::vector<Frame> frames;
    };
    struct Timers {
        std::vector<wire::Ipv4Address> retry;  // send another request for these
        std::vector<Failed> failed;            // gave up: these frames are undeliverable
        size_t expired = 0;                    // resolved entries that aged out
    };
    // Advances retries and expiry to now.
    Timers poll(Instant now);
    std::optional<Instant> poll_at() const;

    size_t size() const { return entries_.size(); }
    size_t evicted() const { return evicted_; }

private:
    struct Entry {
        std::optional<wire::MacAddress> mac;  // nullopt while resolving
        Instant expires_at;                   // resolved: end of life
        Instant next_request_at;              // resolving: next retry
        unsigned requests_sent = 0;
        std::vector<Frame> pending;
        size_t pending_bytes = 0;
    };
    // Makes room for one more entry: drops the resolved entry closest to
    // expiry. False when every entry is still resolving.
    bool make_room();

    ArpConfig config_;
    std::unordered_map<wire::Ipv4Address, Entry> entries_;
    size_t evicted_ = 0;
};

}  // namespace ustack::ip
