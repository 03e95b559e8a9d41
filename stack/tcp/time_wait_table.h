#pragma once
// TIME_WAIT (and orphaned FIN_WAIT2) as compact records, not sockets
// (Linux: inet_timewait_sock). Each record keeps what
// tcp_timewait_state_process() and tcp_twsk_unique() need and holds its
// port in the PortManager with the flags of the socket it came from.
//
// Cost: a 52-byte record in a slab, a 4-byte slot in an open-addressing
// index (load <= 1/2), an intrusive deadline list: ~60 bytes an entry
// (bench_time_wait_scale measures it). The timestamp offset is not stored:
// like Linux's secure_tcp_ts_off() it is a keyed hash of the address pair,
// recomputed from SequenceSecrets when an ACK is sent.
// Lookup by 4-tuple, insert, expiry and reuse are O(1).
#include <cstdint>
#include <memory>
#include <vector>

#include "stack/core/function_ref.h"
#include <optional>
#include <vector>

#include "stack/core/random.h"
#include "stack/core/time.h"
#include "stack/core/tunables.h"
#include "stack/ports/port_manager.h"
#include "stack/tcp/isn.h"
#include "stack/wire/ipv4_address.h"
#include "stack/wire/seq.h"
#include "stack/wire/tcp.h"

namespace ustack::tcp {

struct FourTuple {
    wire::Ipv4Address local;
    wire::Ipv4Address remote;
    uint16_t local_port = 0;
    uint16_t remote_port = 0;
    bool operator==(const FourTuple&) const = default;
};

enum class TimeWaitSubstate : uint8_t { FinWait2, TimeWait };

// What a closing connection hands over (tcp_time_wait()).
struct TimeWaitState {
    FourTuple tuple;
    wire::SeqNumber snd_nxt;
    wire::SeqNumber rcv_nxt;
    uint32_t rcv_wnd = 0;      // bytes, unscaled
    uint8_t rcv_wscale = 0;
    // Timestamps seen on the connection: the peer's last TSval and when.
    std::optional<uint32_t> ts_recent;
    Instant ts_recent_stamp;
};

// What to do with a segment that hit a TIME_WAIT entry (enum tcp_tw_status).
struct TimeWaitVerdict {
    enum class Action {
        Drop,    // TCP_TW_SUCCESS: nothing to send
        Ack,     // TCP_TW_ACK: send ack_for(entry)
        Reset,   // TCP_TW_RST: send a RST for the segment; the entry is gone
        Syn,     // TCP_TW_SYN: a listener may take the SYN with this ISN; then kill(entry)
        Killed,  // in-window RST (tcp_rfc1337 = 0): the entry is gone
    };
    Action action = Action::Drop;
    wire::SeqNumber isn;      // for Syn
    bool paws_rejected = false;
};

// Linux counter names where Linux has one.
struct TimeWaitCounters {
    uint64_t entered = 0;              // connections that entered TIME_WAIT
    uint64_t fin_wait2_entered = 0;    // orphaned FIN_WAIT2 records
    uint64_t expired = 0;
    uint64_t killed_by_rst = 0;        // TWKilled-like: assassinated by RST (RFC 1337)
    uint64_t recycled = 0;             // TWRecycled: taken over by an outgoing connect
    uint64_t overflow = 0;             // TCPTimeWaitOverflow
    uint64_t paws_rejected = 0;        // PAWSEstab (in TIME_WAIT)
    uint64_t acks_rate_limited = 0;    // TCPACKSkippedTimeWait
    uint64_t syn_reopened = 0;         // SYN accepted into a new connection
    uint64_t killed_by_admin = 0;      // ustackctl kill-tw
};

class TimeWaitTable {
public:
    using Handle = uint32_t;

    // `secrets` gives each entry's timestamp offset (the same keyed hash the
    // connection used), so the record need not carry it.
    TimeWaitTable(const Tunables& tunables, ports::PortManager& ports, const SequenceSecrets& secrets,
                  Random& random);

    // tcp_time_wait(): takes over `reservation` (moved to TIME_WAIT state
    // in the port manager). Returns false when tcp_max_tw_buckets is
    // reached: the caller closes the socket without TIME_WAIT and the
    // port is released (TCPTimeWaitOverflow counted here).
    bool insert(Instant now, const TimeWaitState& state, TimeWaitSubstate substate,
                ports::Reservation reservation);

    std::optional<Handle> find(const FourTuple& tuple) const;

    // tcp_timewait_state_process() for a segment addressed to the entry.
    TimeWaitVerdict process(Handle entry, Instant now, const wire::TcpRepr& segment, size_t payload_len);
    // The ACK tcp_v4_timewait_ack() sends from the entry.
    wire::TcpRepr ack_for(Handle entry, Instant now) const;

    // tcp_twsk_unique(): may a new outgoing connection take this 4-tuple?
    // `explicitly_bound`: the connecting socket had bound its port itself
    // (Linux calls with twp == NULL: reuse whenever the entry had
    // timestamps, whatever tcp_tw_reuse says). On success the entry is
    // removed and `out` tells the new connection where to start.
    struct Reuse {
        wire::SeqNumber write_seq;  // old snd_nxt + 65535 + 2
        std::optional<uint32_t> ts_recent;
        Instant ts_recent_stamp;
    };
    std::optional<Reuse> take_for_reuse(const FourTuple& tuple, Instant now, bool explicitly_bound);

    void kill(Handle entry);
    // ustackctl kill-tw ADDR:PORT (either end); returns how many.
    size_t kill_matching(wire::Ipv4Address address, uint16_t port);
    // Kills every entry whose 4-tuple `match` accepts (counted as
    // killed_by_admin); returns how many.
    size_t kill_if(FunctionRef<bool(const FourTuple&)> match);

    TimeWaitSubstate substate(Handle entry) const { return rec(entry).substate(); }

    // Expires what is due.
    void poll(Instant now);
    std::optional<Instant> poll_at() const;

    size_t size() const { return live_; }
    // Entries in the orphaned FIN_WAIT2 substate (part of size()).
    size_t fin_wait2_count() const { return fin_wait2_live_; }
    const TimeWaitCounters& counters() const { return counters_; }
    size_t memory_bytes() const;

    // For `ustackctl ss`: visits every entry.
    struct View {
        FourTuple tuple;
        TimeWaitSubstate substate;
        Instant deadline;
    };
    template <typename F>
    void for_each(F&& f) const {
        for (uint32_t i = head_; i != none; i = rec(i).next) {
            const Record& r = rec(i);
            f(View{tuple_of(r), r.substate(), Instant::from_micros(r.deadline_us())});
        }
    }

private:
    static constexpr uint32_t none = UINT32_MAX;

    // 52 bytes, 4-byte aligned (the 64-bit deadline is split so that it
    // does not pad the record to 56). Times are microseconds (deadline) or
    // milliseconds modulo 2^32 (stamps; compared by signed difference, like
    // jiffies).
    struct Record {
        uint32_t deadline_lo;
        uint32_t deadline_hi;
        uint32_t local_addr;
        uint32_t remote_addr;
        uint16_t local_port;
        uint16_t remote_port;
        uint32_t snd_nxt;
        uint32_t rcv_nxt;
        uint32_t ts_recent;
        uint32_t ts_recent_stamp_ms;
        uint32_t last_oow_ack_ms;
        uint32_t prev;  // deadline list; `next` doubles as the free-list link
        uint32_t next;
        uint16_t rcv_wnd_field;  // rcv_wnd >> rcv_wscale, as sent
        uint8_t rcv_wscale;
        uint8_t bits;

        static constexpr uint8_t live_bit = 0x01;
        static constexpr uint8_t fin_wait2_bit = 0x02;
        static constexpr uint8_t has_ts_bit = 0x04;
        static constexpr uint8_t reuse_addr_bit = 0x08;
        static constexpr uint8_t reuse_port_bit = 0x10;
        static constexpr uint8_t from_bind_bit = 0x20;
        static constexpr uint8_t wildcard_bind_bit = 0x40;  // reservation held on 0.0.0.0

        int64_t deadline_us() const {
            return static_cast<int64_t>((static_cast<uint64_t>(deadline_hi) << 32) | deadline_lo);
        }
        void set_deadline(Instant t) {
            const auto us = static_cast<uint64_t>(t.micros());
            deadline_lo = static_cast<uint32_t>(us);
            deadline_hi = static_cast<uint32_t>(us >> 32);
        }
        bool has(uint8_t bit) const { return (bits & bit) != 0; }
        TimeWaitSubstate substate() const {
            return has(fin_wait2_bit) ? TimeWaitSubstate::FinWait2 : TimeWaitSubstate::TimeWait;
        }
    };
    static_assert(sizeof(Record) == 52, "TIME_WAIT record must stay compact");

    // Records live in fixed chunks, not one growing vector: no doubling
    // slack, and a record's address never changes.
    static constexpr uint32_t chunk_bits = 12;
    static constexpr uint32_t chunk_size = 1u << chunk_bits;
    Record& rec(uint32_t i) { return chunks_[i >> chunk_bits][i & (chunk_size - 1)]; }
    const Record& rec(uint32_t i) const { return chunks_[i >> chunk_bits][i & (chunk_size - 1)]; }
    uint32_t allocate_record();

    static FourTuple tuple_of(const Record& r);
    static uint32_t to_ms(Instant t) { return static_cast<uint32_t>(t.micros() / 1000); }
    ports::Reservation reservation_of(const Record& r) const;
    size_t hash(const FourTuple& t) const;
    std::optional<uint32_t> index_find(const FourTuple& t) const;
    void index_insert(uint32_t record);
    void index_erase(uint32_t record);
    void index_grow();
    void list_unlink(uint32_t record);
    void list_insert_sorted(uint32_t record);  // from the tail: deadlines are nearly monotone
    void reschedule(uint32_t record, Instant now, Duration duration);
    void remove(uint32_t record);
    bool oow_rate_limited(Record& r, Instant now, const wire::TcpRepr& segment, size_t payload_len);

    const Tunables& tunables_;
    ports::PortManager& ports_;
    const SequenceSecrets& secrets_;
    uint64_t hash_seed_;
    std::vector<std::unique_ptr<Record[]>> chunks_;
    uint32_t allocated_ = 0;  // records ever handed out (high-water mark)
    uint32_t free_head_ = none;
    std::vector<uint32_t> index_;  // record + 1; 0 = empty slot (linear probing)
    uint32_t head_ = none;         // earliest deadline
    uint32_t tail_ = none;
    size_t live_ = 0;
    size_t fin_wait2_live_ = 0;
    TimeWaitCounters counters_;
};

}  // namespace ustack::tcp
