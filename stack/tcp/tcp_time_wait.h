#pragma once
// TIME_WAIT entries of the TCP engine (Linux: inet_timewait_sock). A
// connection entering TIME_WAIT leaves its socket (which becomes CLOSED,
// tcp_done()) and continues here as a small record: the application's
// handle is free at once, as on Linux. Segments for the 4-tuple go to
// process(), tcp_timewait_state_process()'s rules for the TIME_WAIT
// substate. Orphaned FIN_WAIT2 stays a full socket (tcp_close_state path).
//
// The interface follows time_wait_table.h (the compact record table) so
// the engine can move to it without touching its state machine.
#include <cstdint>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>

#include "stack/core/time.h"
#include "stack/tcp/port_allocator.h"
#include "stack/tcp/tcp_util.h"
#include "stack/wire/seq.h"
#include "stack/wire/tcp.h"

namespace ustack::tcp {

struct TimeWaitEntry {
    ConnKey key;
    wire::SeqNumber snd_nxt;
    wire::SeqNumber rcv_nxt;
    uint32_t rcv_wnd = 0;  // bytes, unscaled
    uint8_t rcv_wscale = 0;
    bool ts_ok = false;
    uint32_t ts_offset = 0;
    std::optional<uint32_t> ts_recent;
    Instant ts_recent_stamp;
    Instant deadline;
    std::optional<PortLease> lease;
    Instant last_oow_ack;
    bool oow_ack_sent = false;
};

// enum tcp_tw_status.
struct TwStatus {
    enum class Action {
        Drop,    // TCP_TW_SUCCESS
        Ack,     // TCP_TW_ACK: send ack_for()
        Reset,   // TCP_TW_RST
        Syn,     // TCP_TW_SYN: a listener may take the SYN with `isn`
        Killed,  // in-window RST (tcp_rfc1337 = 0): entry removed
    };
    Action action = Action::Drop;
    wire::SeqNumber isn;
    bool paws_rejected = false;
};

class TimeWaitList {
public:
    explicit TimeWaitList(Duration invalid_ratelimit) : invalid_ratelimit_(invalid_ratelimit) {}

    void insert(TimeWaitEntry entry);
    TimeWaitEntry* find(const ConnKey& key);
    const TimeWaitEntry* find(const ConnKey& key) const;
    // tcp_timewait_state_process(): `time_wait` restarts the timer, `rfc1337`
    // is net.ipv4.tcp_rfc1337. An entry killed by RST is removed (its lease
    // returned through `released`).
    TwStatus process(TimeWaitEntry& entry, Instant now, const wire::TcpRepr& segment, size_t payload_len,
                             Duration time_wait, bool rfc1337, std::optional<PortLease>& released);
    // The ACK tcp_v4_timewait_ack() sends.
    wire::TcpRepr ack_for(const TimeWaitEntry& entry, Instant now) const;
    // Removes the entry, handing back its port lease.
    std::optional<PortLease> remove(const ConnKey& key);
    // Expires due entries; calls f(entry) for each before removing it.
    template <typename F>
    size_t expire(Instant now, F&& f) {
        size_t n = 0;
        while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
            const ConnKey key = deadlines_.begin()->second;
            auto it = entries_.find(key);
            if (it != entries_.end()) {
                f(it->second);
            }
            remove(key);
            ++n;
        }
        return n;
    }
    std::optional<Instant> poll_at() const;
    size_t size() const { return entries_.size(); }

private:
    void reschedule(TimeWaitEntry& entry, Instant deadline);

    Duration invalid_ratelimit_;
    std::unordered_map<ConnKey, TimeWaitEntry> entries_;
    std::set<std::pair<Instant, ConnKey>> deadlines_;
};

}  // namespace ustack::tcp
