#include "stack/tcp/time_wait_table.h"

#include <cassert>

namespace ustack::tcp {

namespace {

// Linux constants (include/net/tcp.h).
constexpr int64_t paws_24days_ms = int64_t{24} * 24 * 3600 * 1000;  // TCP_PAWS_24DAYS
constexpr int64_t paws_msl_ms = 60 * 1000;                            // TCP_PAWS_MSL
constexpr int32_t invalid_ratelimit_ms = 500;                          // net.ipv4.tcp_invalid_ratelimit

uint64_t mix64(uint64_t h) {  // MurmurHash3 fmix64
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

// tcp_in_window() of net/ipv4/tcp_minisocks.c.
bool in_window(uint32_t seq, uint32_t end_seq, uint32_t s_win, uint32_t e_win) {
    const wire::SeqNumber s(seq), e(end_seq), lo(s_win), hi(e_win);
    if (s == lo) {
        return true;
    }
    if (e > lo && s < hi) {
        return true;
    }
    return s == hi && s == e;
}

}  // namespace

TimeWaitTable::TimeWaitTable(const Tunables& tunables, ports::PortManager& ports, const SequenceSecrets& secrets,
                             Random& random)
    : tunables_(tunables), ports_(ports), secrets_(secrets), hash_seed_(random.next_u64()), index_(1024, 0) {}

FourTuple TimeWaitTable::tuple_of(const Record& r) {
    return FourTuple{wire::Ipv4Address(r.local_addr), wire::Ipv4Address(r.remote_addr), r.local_port, r.remote_port};
}

ports::Reservation TimeWaitTable::reservation_of(const Record& r) const {
    ports::Reservation res;
    res.address = r.has(Record::wildcard_bind_bit) ? wire::Ipv4Address::unspecified() : wire::Ipv4Address(r.local_addr);
    res.port = r.local_port;
    res.protocol = ports::Protocol::Tcp;
    res.state = ports::OwnerState::TimeWait;
    res.reuse_addr = r.has(Record::reuse_addr_bit);
    res.reuse_port = r.has(Record::reuse_port_bit);
    res.from_bind = r.has(Record::from_bind_bit);
    res.uid = 0;
    res.device = 0;
    return res;
}

// ------------------------------------------------------------------ index

size_t TimeWaitTable::hash(const FourTuple& t) const {
    uint64_t h = ((uint64_t{t.local.to_u32()} << 32) | t.remote.to_u32()) ^ hash_seed_;
    h = mix64(h ^ ((uint64_t{t.local_port} << 16 | t.remote_port) * 0x9e3779b97f4a7c15ULL));
    return static_cast<size_t>(h);
}

std::optional<uint32_t> TimeWaitTable::index_find(const FourTuple& t) const {
    const size_t mask = index_.size() - 1;
    for (size_t i = hash(t) & mask;; i = (i + 1) & mask) {
        const uint32_t slot = index_[i];
        if (slot == 0) {
            return std::nullopt;
        }
        if (tuple_of(rec(slot - 1)) == t) {
            return slot - 1;
        }
    }
}

void TimeWaitTable::index_insert(uint32_t record) {
    if ((live_ + 1) * 2 > index_.size()) {
        index_grow();
    }
    const size_t mask = index_.size() - 1;
    size_t i = hash(tuple_of(rec(record))) & mask;
    while (index_[i] != 0) {
        i = (i + 1) & mask;
    }
    index_[i] = record + 1;
}

void TimeWaitTable::index_grow() {
    std::vector<uint32_t> old(index_.size() * 2, 0);
    old.swap(index_);
    const size_t mask = index_.size() - 1;
    for (uint32_t slot : old) {
        if (slot != 0) {
            size_t i = hash(tuple_of(rec(slot - 1))) & mask;
            while (index_[i] != 0) {
                i = (i + 1) & mask;
            }
            index_[i] = slot;
        }
    }
}

void TimeWaitTable::index_erase(uint32_t record) {
    // Linear probing with backward-shift deletion (no tombstones).
    const size_t mask = index_.size() - 1;
    size_t i = hash(tuple_of(rec(record))) & mask;
    while (index_[i] != record + 1) {
        assert(index_[i] != 0);
        i = (i + 1) & mask;
    }
    size_t j = i;
    while (true) {
        j = (j + 1) & mask;
        if (index_[j] == 0) {
            break;
        }
        const size_t home = hash(tuple_of(rec(index_[j] - 1))) & mask;
        // Move j back into i unless j's home lies cyclically in (i, j].
        const bool home_between = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!home_between) {
            index_[i] = index_[j];
            i = j;
        }
    }
    index_[i] = 0;
}

// ------------------------------------------------------------------ deadline list

void TimeWaitTable::list_unlink(uint32_t record) {
    Record& r = rec(record);
    (r.prev == none ? head_ : rec(r.prev).next) = r.next;
    (r.next == none ? tail_ : rec(r.next).prev) = r.prev;
    r.prev = r.next = none;
}

void TimeWaitTable::list_insert_sorted(uint32_t record) {
    Record& r = rec(record);
    uint32_t after = tail_;
    while (after != none && rec(after).deadline_us() > r.deadline_us()) {
        after = rec(after).prev;
    }
    r.prev = after;
    r.next = after == none ? head_ : rec(after).next;
    (r.prev == none ? head_ : rec(r.prev).next) = record;
    (r.next == none ? tail_ : rec(r.next).prev) = record;
}

void TimeWaitTable::reschedule(uint32_t record, Instant now, Duration duration) {
    list_unlink(record);
    rec(record).set_deadline(now + duration);
    list_insert_sorted(record);
}

// ------------------------------------------------------------------ lifecycle

bool TimeWaitTable::insert(Instant now, const TimeWaitState& state, TimeWaitSubstate substate,
                           ports::Reservation reservation) {
    if (auto stale = index_find(state.tuple)) {
        remove(*stale);  // a new incarnation of the same 4-tuple closes again
    }
    if (live_ >= tunables_.tcp_max_tw_buckets) {
        ++counters_.overflow;  // "TCP: time wait bucket table overflow"
        ports_.release(reservation);
        return false;
    }
    ports_.to_time_wait(reservation);
    const uint32_t id = allocate_record();
    Record& r = rec(id);
    r = Record{};
    r.local_addr = state.tuple.local.to_u32();
    r.remote_addr = state.tuple.remote.to_u32();
    r.local_port = state.tuple.local_port;
    r.remote_port = state.tuple.remote_port;
    r.snd_nxt = state.snd_nxt.raw();
    r.rcv_nxt = state.rcv_nxt.raw();
    r.rcv_wscale = state.rcv_wscale;
    r.rcv_wnd_field = static_cast<uint16_t>(std::min<uint32_t>(state.rcv_wnd >> state.rcv_wscale, 0xffff));
    r.prev = r.next = none;
    r.bits = Record::live_bit;
    if (substate == TimeWaitSubstate::FinWait2) {
        r.bits |= Record::fin_wait2_bit;
        ++fin_wait2_live_;
    }
    if (state.ts_recent) {
        r.bits |= Record::has_ts_bit;
        r.ts_recent = *state.ts_recent;
        r.ts_recent_stamp_ms = to_ms(state.ts_recent_stamp);
    }
    if (reservation.reuse_addr) {
        r.bits |= Record::reuse_addr_bit;
    }
    if (reservation.reuse_port) {
        r.bits |= Record::reuse_port_bit;
    }
    if (reservation.from_bind) {
        r.bits |= Record::from_bind_bit;
    }
    if (reservation.address.is_unspecified()) {
        r.bits |= Record::wildcard_bind_bit;
    }
    const Duration duration =
        substate == TimeWaitSubstate::FinWait2 ? tunables_.tcp_fin_timeout : tunables_.time_wait;
    r.set_deadline(now + duration);
    index_insert(id);
    ++live_;
    list_insert_sorted(id);
    ++(substate == TimeWaitSubstate::FinWait2 ? counters_.fin_wait2_entered : counters_.entered);
    return true;
}

uint32_t TimeWaitTable::allocate_record() {
    if (free_head_ != none) {
        const uint32_t id = free_head_;
        free_head_ = rec(id).next;
        return id;
    }
    if ((allocated_ >> chunk_bits) == chunks_.size()) {
        chunks_.push_back(std::make_unique<Record[]>(chunk_size));
    }
    return allocated_++;
}

void TimeWaitTable::remove(uint32_t record) {
    index_erase(record);
    list_unlink(record);
    ports_.release(reservation_of(rec(record)));
    if (rec(record).has(Record::fin_wait2_bit)) {
        --fin_wait2_live_;
    }
    rec(record).bits = 0;
    rec(record).next = free_head_;
    free_head_ = record;
    --live_;
}

void TimeWaitTable::kill(Handle entry) {
    if (entry < allocated_ && rec(entry).has(Record::live_bit)) {
        remove(entry);
    }
}

size_t TimeWaitTable::kill_matching(wire::Ipv4Address address, uint16_t port) {
    return kill_if([&](const FourTuple& t) {
        return (t.local == address && t.local_port == port) || (t.remote == address && t.remote_port == port);
    });
}

size_t TimeWaitTable::kill_if(FunctionRef<bool(const FourTuple&)> match) {
    std::vector<uint32_t> victims;
    for (uint32_t i = head_; i != none; i = rec(i).next) {
        if (match(tuple_of(rec(i)))) {
            victims.push_back(i);
        }
    }
    for (uint32_t v : victims) {
        remove(v);
    }
    counters_.killed_by_admin += victims.size();
    return victims.size();
}

std::optional<TimeWaitTable::Handle> TimeWaitTable::find(const FourTuple& tuple) const { return index_find(tuple); }

void TimeWaitTable::poll(Instant now) {
    while (head_ != none && rec(head_).deadline_us() <= now.micros()) {
        ++counters_.expired;
        remove(head_);
    }
}

std::optional<Instant> TimeWaitTable::poll_at() const {
    if (head_ == none) {
        return std::nullopt;
    }
    return Instant::from_micros(rec(head_).deadline_us());
}

size_t TimeWaitTable::memory_bytes() const {
    return chunks_.size() * chunk_size * sizeof(Record) + chunks_.capacity() * sizeof(void*) +
           index_.capacity() * sizeof(uint32_t);
}

// ------------------------------------------------------------------ segment processing

bool TimeWaitTable::oow_rate_limited(Record& r, Instant now, const wire::TcpRepr& segment, size_t payload_len) {
    // tcp_oow_rate_limited(): data or FIN without SYN is not part of an
    // ACK loop and is always answered.
    const uint32_t seg_len = segment.segment_len(payload_len);
    if (seg_len != 0 && !segment.has(wire::tcp_flags::SYN)) {
        return false;
    }
    const uint32_t now_ms = to_ms(now);
    if (r.last_oow_ack_ms != 0) {
        const auto elapsed = static_cast<int32_t>(now_ms - r.last_oow_ack_ms);
        if (elapsed >= 0 && elapsed < invalid_ratelimit_ms) {
            ++counters_.acks_rate_limited;
            return true;
        }
    }
    r.last_oow_ack_ms = now_ms == 0 ? 1 : now_ms;
    return false;
}

TimeWaitVerdict TimeWaitTable::process(Handle entry, Instant now, const wire::TcpRepr& seg, size_t payload_len) {
    using Action = TimeWaitVerdict::Action;
    TimeWaitVerdict verdict;
    Record& r = rec(entry);
    const bool rst = seg.has(wire::tcp_flags::RST);
    const bool syn = seg.has(wire::tcp_flags::SYN);
    const bool ack = seg.has(wire::tcp_flags::ACK);
    const bool fin = seg.has(wire::tcp_flags::FIN);
    const uint32_t seq = seg.seq.raw();
    const uint32_t end_seq = seq + seg.segment_len(payload_len);
    const uint32_t now_ms = to_ms(now);

    // PAWS (RFC 7323 §5), only when the connection used timestamps.
    const bool saw_tstamp = seg.options.timestamp.has_value() && r.has(Record::has_ts_bit);
    bool paws_reject = false;
    uint32_t tsval = 0;
    if (saw_tstamp) {
        tsval = seg.options.timestamp->value;
        const int64_t since_stamp = static_cast<int32_t>(now_ms - r.ts_recent_stamp_ms);
        const bool paws_ok = static_cast<int32_t>(r.ts_recent - tsval) <= 0 || since_stamp >= paws_24days_ms ||
                             r.ts_recent == 0;
        // tcp_paws_reject(): a RST older than MSL since the last stamp passes.
        paws_reject = !paws_ok && !(rst && since_stamp >= paws_msl_ms);
    }
    verdict.paws_rejected = paws_reject;

    if (r.has(Record::fin_wait2_bit)) {
        // Orphaned FIN_WAIT2: "just repeat all the checks of tcp_rcv_state_process()".
        const uint32_t rcv_wnd = uint32_t{r.rcv_wnd_field} << r.rcv_wscale;
        if (paws_reject || !in_window(seq, end_seq, r.rcv_nxt, r.rcv_nxt + rcv_wnd)) {
            verdict.action = oow_rate_limited(r, now, seg, payload_len) ? Action::Drop : Action::Ack;
            return verdict;
        }
        if (rst) {
            ++counters_.killed_by_rst;
            remove(entry);
            verdict.action = Action::Killed;
            return verdict;
        }
        if (syn && !(wire::SeqNumber(seq) < wire::SeqNumber(r.rcv_nxt))) {
            remove(entry);
            verdict.action = Action::Reset;
            return verdict;
        }
        if (!ack || !(wire::SeqNumber(end_seq) > wire::SeqNumber(r.rcv_nxt)) || end_seq == seq) {
            verdict.action = Action::Drop;  // duplicate ACK
            return verdict;
        }
        // New data after a half-duplex close → RST; only the FIN is welcome.
        if (!fin || end_seq != r.rcv_nxt + 1) {
            remove(entry);
            verdict.action = Action::Reset;
            return verdict;
        }
        r.bits &= static_cast<uint8_t>(~Record::fin_wait2_bit);
        --fin_wait2_live_;
        r.rcv_nxt = end_seq;
        if (saw_tstamp) {
            r.ts_recent_stamp_ms = now_ms;
            r.ts_recent = tsval;
        }
        reschedule(entry, now, tunables_.time_wait);
        ++counters_.entered;
        verdict.action = Action::Ack;
        return verdict;
    }

    // Real TIME_WAIT. An in-window segment can only be a RST or a bare ACK.
    if (!paws_reject && seq == r.rcv_nxt && (seq == end_seq || rst)) {
        if (rst) {
            if (tunables_.tcp_rfc1337 == 0) {
                // TIME_WAIT assassination (RFC 1337 hazard H1), as Linux allows by default.
                ++counters_.killed_by_rst;
                remove(entry);
                verdict.action = Action::Killed;
                return verdict;
            }
        } else {
            reschedule(entry, now, tunables_.time_wait);
        }
        if (saw_tstamp) {
            r.ts_recent = tsval;
            r.ts_recent_stamp_ms = now_ms;
        }
        verdict.action = Action::Drop;
        return verdict;
    }

    // RFC 1122 §4.2.2.13: a new SYN may reopen the connection if its
    // sequence number (or timestamp) is newer than the old incarnation's.
    if (syn && !rst && !ack && !paws_reject &&
        (wire::SeqNumber(seq) > wire::SeqNumber(r.rcv_nxt) ||
         (saw_tstamp && static_cast<int32_t>(r.ts_recent - tsval) < 0))) {
        uint32_t isn = r.snd_nxt + 65535 + 2;
        if (isn == 0) {
            isn = 1;
        }
        verdict.action = Action::Syn;
        verdict.isn = wire::SeqNumber(isn);
        return verdict;
    }

    if (paws_reject) {
        ++counters_.paws_rejected;
    }
    if (!rst) {
        // A retransmitted FIN lands here (seq = rcv_nxt - 1): ACK it and
        // restart the timer. An ACK-less SYN below rcv_nxt may be a new
        // connection with a random ISN: do not restart for it.
        if (paws_reject || ack) {
            reschedule(entry, now, tunables_.time_wait);
        }
        verdict.action = oow_rate_limited(r, now, seg, payload_len) ? Action::Drop : Action::Ack;
        return verdict;
    }
    verdict.action = Action::Drop;
    return verdict;
}

wire::TcpRepr TimeWaitTable::ack_for(Handle entry, Instant now) const {
    const Record& r = rec(entry);
    wire::TcpRepr ack;
    ack.src_port = r.local_port;
    ack.dst_port = r.remote_port;
    ack.seq = wire::SeqNumber(r.snd_nxt);
    ack.ack = wire::SeqNumber(r.rcv_nxt);
    ack.flags = wire::tcp_flags::ACK;
    ack.window = r.rcv_wnd_field;
    if (r.has(Record::has_ts_bit)) {
        // TSval on the millisecond clock plus the connection's offset.
        const uint32_t ts_offset = secrets_.ts_offset(wire::Ipv4Address(r.local_addr), wire::Ipv4Address(r.remote_addr));
        ack.options.timestamp = wire::TcpTimestamp{to_ms(now) + ts_offset, r.ts_recent};
    }
    return ack;
}

std::optional<TimeWaitTable::Reuse> TimeWaitTable::take_for_reuse(const FourTuple& tuple, Instant now,
                                                                   bool explicitly_bound) {
    auto found = index_find(tuple);
    if (!found) {
        return std::nullopt;
    }
    const Record& r = rec(*found);
    int reuse = tunables_.tcp_tw_reuse;
    if (reuse == 2 && !tuple.local.is_loopback() && !tuple.remote.is_loopback()) {
        reuse = 0;  // 2 = loopback only
    }
    if (!r.has(Record::has_ts_bit)) {
        return std::nullopt;  // without timestamps reuse is never safe
    }
    const auto since_stamp = static_cast<int32_t>(to_ms(now) - r.ts_recent_stamp_ms);
    const bool delay_passed = since_stamp > tunables_.tcp_tw_reuse_delay.millis();
    if (!explicitly_bound && !(reuse != 0 && delay_passed)) {
        return std::nullopt;
    }
    Reuse out;
    uint32_t seq = r.snd_nxt + 65535 + 2;
    if (seq == 0) {
        seq = 1;
    }
    out.write_seq = wire::SeqNumber(seq);
    out.ts_recent = r.ts_recent;
    out.ts_recent_stamp = now - Duration::from_millis(since_stamp);
    ++counters_.recycled;
    remove(*found);
    return out;
}

}  // namespace ustack::tcp
