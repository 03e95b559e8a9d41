#include "stack/tcp/tcp_time_wait.h"

#include <algorithm>

namespace ustack::tcp {

using wire::SeqNumber;
namespace flags = wire::tcp_flags;

void TimeWaitList::insert(TimeWaitEntry entry) {
    const ConnKey key = entry.key;
    const Instant deadline = entry.deadline;
    remove(key);
    entries_.emplace(key, std::move(entry));
    deadlines_.emplace(deadline, key);
}

TimeWaitEntry* TimeWaitList::find(const ConnKey& key) {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
}

const TimeWaitEntry* TimeWaitList::find(const ConnKey& key) const {
    auto it = entries_.find(key);
    return it == entries_.end() ? nullptr : &it->second;
}

std::optional<PortLease> TimeWaitList::remove(const ConnKey& key) {
    auto it = entries_.find(key);
    if (it == entries_.end()) {
        return std::nullopt;
    }
    std::optional<PortLease> lease = it->second.lease;
    deadlines_.erase({it->second.deadline, key});
    entries_.erase(it);
    return lease;
}

void TimeWaitList::reschedule(TimeWaitEntry& entry, Instant deadline) {
    deadlines_.erase({entry.deadline, entry.key});
    entry.deadline = deadline;
    deadlines_.emplace(deadline, entry.key);
}

std::optional<Instant> TimeWaitList::poll_at() const {
    if (deadlines_.empty()) {
        return std::nullopt;
    }
    return deadlines_.begin()->first;
}

TwStatus TimeWaitList::process(TimeWaitEntry& entry, Instant now, const wire::TcpRepr& segment, size_t payload_len,
                               Duration time_wait, bool rfc1337, std::optional<PortLease>& released) {
    TwStatus status;
    const SeqNumber seq = segment.seq;
    const SeqNumber end_seq = seq + segment.segment_len(payload_len);
    const bool rst = segment.has(flags::RST);
    const bool syn = segment.has(flags::SYN);
    const bool ack = segment.has(flags::ACK);

    // RFC 7323 §5: PAWS, relaxed for RSTs (tcp_paws_reject).
    bool paws_rejected = false;
    if (entry.ts_ok && segment.options.timestamp) {
        paws_rejected = paws_reject(entry.ts_recent, entry.ts_recent_stamp, segment.options.timestamp->value, now, rst);
    }

    // "In window segment, it may be only reset or bare ack."
    if (!paws_rejected && seq == entry.rcv_nxt && (seq == end_seq || rst)) {
        if (rst) {
            // TIME_WAIT assassination (RFC 1337 hazard H1): Linux kills the
            // entry unless tcp_rfc1337 is set.
            if (!rfc1337) {
                released = remove(entry.key);
                status.action = TwStatus::Action::Killed;
                return status;
            }
        } else {
            reschedule(entry, now + time_wait);
        }
        if (segment.options.timestamp) {
            entry.ts_recent = segment.options.timestamp->value;
            entry.ts_recent_stamp = now;
        }
        return status;
    }

    // "Out of window segment. All the segments are ACKed immediately. The
    // only exception is new SYN" — RFC 1122 §4.2.2.13: a new SYN may reopen
    // the connection if its sequence number (or timestamp) is newer, with
    // an ISN above anything used by the old incarnation.
    if (syn && !rst && !ack && !paws_rejected &&
        (seq > entry.rcv_nxt || (segment.options.timestamp && entry.ts_recent &&
                                 static_cast<int32_t>(*entry.ts_recent - segment.options.timestamp->value) < 0))) {
        uint32_t isn = (entry.snd_nxt + 65535 + 2).raw();
        if (isn == 0) {
            isn = 1;
        }
        status.action = TwStatus::Action::Syn;
        status.isn = SeqNumber(isn);
        return status;
    }

    status.paws_rejected = paws_rejected;
    if (!rst) {
        // "If it is ACKless SYN it may be both old duplicate and new good
        // SYN with random sequence number <rcv_nxt. Do not reschedule in
        // the last case."
        if (paws_rejected || ack) {
            reschedule(entry, now + time_wait);
        }
        // tcp_timewait_check_oow_rate_limit(): pure ACKs and SYNs get at
        // most one answer per tcp_invalid_ratelimit.
        const bool rate_limited_kind = seq == end_seq || syn;
        if (rate_limited_kind && entry.oow_ack_sent && now - entry.last_oow_ack < invalid_ratelimit_) {
            return status;  // Drop
        }
        if (rate_limited_kind) {
            entry.oow_ack_sent = true;
            entry.last_oow_ack = now;
        }
        status.action = TwStatus::Action::Ack;
        return status;
    }
    return status;
}

wire::TcpRepr TimeWaitList::ack_for(const TimeWaitEntry& entry, Instant now) const {
    wire::TcpRepr repr;
    repr.src_port = entry.key.local_port;
    repr.dst_port = entry.key.remote_port;
    repr.seq = entry.snd_nxt;
    repr.ack = entry.rcv_nxt;
    repr.flags = flags::ACK;
    repr.window = static_cast<uint16_t>(std::min<uint32_t>(entry.rcv_wnd >> entry.rcv_wscale, 65535));
    if (entry.ts_ok) {
        repr.options.timestamp = wire::TcpTimestamp{ts_clock(now) + entry.ts_offset, entry.ts_recent.value_or(0)};
    }
    return repr;
}

}  // namespace ustack::tcp
