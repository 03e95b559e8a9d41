// The engine's frame: socket table, demultiplexing (tcp_v4_rcv), timer
// index, poll. The state machine lives in the other tcp_*.cpp files.
#include "stack/tcp/tcp_engine.h"

#include <algorithm>
#include <cerrno>

namespace ustack::tcp {

namespace flags = wire::tcp_flags;
using wire::SeqNumber;

std::string_view to_string(TcpState state) {
    switch (state) {
    case TcpState::Closed: return "CLOSED";
    case TcpState::Listen: return "LISTEN";
    case TcpState::SynSent: return "SYN-SENT";
    case TcpState::SynReceived: return "SYN-RECEIVED";
    case TcpState::Established: return "ESTABLISHED";
    case TcpState::FinWait1: return "FIN-WAIT-1";
    case TcpState::FinWait2: return "FIN-WAIT-2";
    case TcpState::CloseWait: return "CLOSE-WAIT";
    case TcpState::Closing: return "CLOSING";
    case TcpState::LastAck: return "LAST-ACK";
    case TcpState::TimeWait: return "TIME-WAIT";
    }
    return "?";
}

namespace {

// The settings of an engine without a stack: TcpConfig's copies.
Tunables tunables_from(const TcpConfig& config) {
    Tunables t;
    t.time_wait = config.time_wait;
    t.tcp_fin_timeout = config.fin_timeout;
    t.tcp_tw_reuse = config.tw_reuse;
    t.tcp_tw_reuse_delay = config.tw_reuse_delay;
    t.tcp_timestamps = config.timestamps;
    t.tcp_rfc1337 = config.rfc1337 ? 1 : 0;
    return t;
}

}  // namespace

TcpEngine::TcpEngine(TcpConfig config, TcpOutput& output, Random& random, ports::PortManager* ports)
    : config_(std::move(config)),
      output_(output),
      random_(random),
      own_tunables_(tunables_from(config_)),
      tunables_(config_.tunables != nullptr ? *config_.tunables : own_tunables_),
      own_ports_(ports == nullptr ? std::make_unique<ports::PortManager>(tunables_, random) : nullptr),
      ports_(ports == nullptr ? *own_ports_ : *ports),
      secrets_(random),
      reuseport_seed_(random.next_u64()),
      connections_(64, ConnKeyHash{random.next_u64()}),
      time_wait_(tunables_, ports_, secrets_, random) {}

TcpEngine::~TcpEngine() = default;

// ------------------------------------------------------------ socket table

Connection* TcpEngine::find(SocketId id) {
    return id < sockets_.size() ? sockets_[id].get() : nullptr;
}

const Connection* TcpEngine::find(SocketId id) const {
    return id < sockets_.size() ? sockets_[id].get() : nullptr;
}

Connection* TcpEngine::find_app(SocketId id) {
    Conn* c = find(id);
    return c != nullptr && !c->orphan && !c->listener ? c : nullptr;
}

const Connection* TcpEngine::find_app(SocketId id) const {
    const Conn* c = find(id);
    return c != nullptr && !c->orphan && !c->listener ? c : nullptr;
}

Connection& TcpEngine::allocate(uint32_t uid) {
    SocketId id;
    if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
    } else {
        id = static_cast<SocketId>(sockets_.size());
        sockets_.emplace_back();
    }
    sockets_[id] = std::make_unique<Conn>(id, config_.max_ooo_ranges);
    Conn& c = *sockets_[id];
    c.uid = uid;
    c.keepalive_idle = config_.keepalive_idle;
    c.keepalive_interval = config_.keepalive_interval;
    c.keepalive_probes = config_.keepalive_probes;
    c.rcvbuf = config_.default_rcvbuf;
    c.sndbuf = config_.default_sndbuf;
    c.pmtu = config_.mtu;
    ++live_sockets_;
    return c;
}

void TcpEngine::free_socket(Conn& c) {
    const SocketId id = c.id;
    unhash(c);
    if (c.scheduled) {
        timers_.erase({*c.scheduled, id});
    }
    if (c.lease) {
        ports_.release(*c.lease);
    }
    sockets_[id].reset();
    free_ids_.push_back(id);
    --live_sockets_;
}

void TcpEngine::hash(Conn& c) {
    if (c.hashed) {
        return;
    }
    if (c.state == TcpState::Listen) {
        listeners_[c.local.port].push_back(c.id);
    } else {
        connections_[ConnKey::of(c.local, c.remote)] = c.id;
    }
    c.hashed = true;
}

void TcpEngine::unhash(Conn& c) {
    if (!c.hashed) {
        return;
    }
    // A listener is hashed by port; everything else by 4-tuple.
    auto lit = listeners_.find(c.local.port);
    if (lit != listeners_.end()) {
        auto& list = lit->second;
        list.erase(std::remove(list.begin(), list.end(), c.id), list.end());
        if (list.empty()) {
            listeners_.erase(lit);
        }
    }
    auto cit = connections_.find(ConnKey::of(c.local, c.remote));
    if (cit != connections_.end() && cit->second == c.id) {
        connections_.erase(cit);
    }
    c.hashed = false;
}

Connection* TcpEngine::lookup(const ConnKey& key) {
    auto it = connections_.find(key);
    return it == connections_.end() ? nullptr : find(it->second);
}

Connection* TcpEngine::lookup_listener(const Endpoint& local, const Endpoint& remote) {
    auto it = listeners_.find(local.port);
    if (it == listeners_.end()) {
        return nullptr;
    }
    // A listener on the exact address wins over a wildcard one
    // (inet_lhash2_lookup scores: exact address > INADDR_ANY).
    Conn* best = nullptr;
    for (SocketId id : it->second) {
        Conn* l = find(id);
        if (l == nullptr || (l->local.addr != local.addr && !l->local.addr.is_unspecified())) {
            continue;
        }
        if (best == nullptr || (best->local.addr.is_unspecified() && !l->local.addr.is_unspecified())) {
            best = l;
        }
    }
    if (best == nullptr || !best->reuse_port) {
        return best;
    }
    // SO_REUSEPORT group: members on the same address with SO_REUSEPORT
    // and the same owner; one chosen by a hash of the 4-tuple
    // (reuseport_select_sock: reciprocal_scale(hash, num_socks)).
    std::vector<Conn*> group;
    for (SocketId id : it->second) {
        Conn* l = find(id);
        if (l != nullptr && l->reuse_port && l->local.addr == best->local.addr && l->uid == best->uid) {
            group.push_back(l);
        }
    }
    const ConnKey key = ConnKey::of(local, remote);
    const uint64_t h = ConnKeyHash{reuseport_seed_}(key) & 0xffffffffu;
    return group[static_cast<size_t>((h * group.size()) >> 32)];
}

bool TcpEngine::is_local(wire::Ipv4Address address) const {
    return std::find(config_.local_addresses.begin(), config_.local_addresses.end(), address) !=
           config_.local_addresses.end();
}

std::optional<TcpState> TcpEngine::state_of(const Endpoint& local, const Endpoint& remote) const {
    const ConnKey key = ConnKey::of(local, remote);
    auto it = connections_.find(key);
    if (it != connections_.end()) {
        return find(it->second)->state;
    }
    if (auto tw = time_wait_.find(FourTuple{local.addr, remote.addr, local.port, remote.port})) {
        return time_wait_.substate(*tw) == TimeWaitSubstate::FinWait2 ? TcpState::FinWait2 : TcpState::TimeWait;
    }
    return std::nullopt;
}

// ------------------------------------------------------------ inspection

namespace {

// kill_time_wait's filter: port 0 and 0.0.0.0 match anything.
bool endpoint_matches(const Endpoint& e, const Endpoint& match) {
    return (match.addr.is_unspecified() || e.addr == match.addr) && (match.port == 0 || e.port == match.port);
}

}  // namespace

void TcpEngine::for_each_socket(FunctionRef<void(const SocketSummary&)> f) const {
    for (const auto& slot : sockets_) {
        if (slot) {
            f(SocketSummary{slot->id, slot->state, slot->local, slot->remote, slot->orphan, slot->uid});
        }
    }
}

void TcpEngine::for_each_time_wait(Instant now, FunctionRef<void(const TimeWaitSummary&)> f) const {
    time_wait_.for_each([&](const TimeWaitTable::View& v) {
        const Duration remaining = v.deadline > now ? v.deadline - now : Duration::zero();
        f(TimeWaitSummary{Endpoint{v.tuple.local, v.tuple.local_port}, Endpoint{v.tuple.remote, v.tuple.remote_port},
                          v.substate == TimeWaitSubstate::FinWait2, remaining});
    });
}

size_t TcpEngine::kill_time_wait(Instant now, Endpoint match) {
    // Entries already due go first, so the count is of live ones only.
    time_wait_.poll(now);
    const size_t killed = time_wait_.kill_if([&](const FourTuple& t) {
        return endpoint_matches(Endpoint{t.local, t.local_port}, match) ||
               endpoint_matches(Endpoint{t.remote, t.remote_port}, match);
    });
    sync_time_wait_counters();
    return killed;
}

// ------------------------------------------------------------ timers

void TcpEngine::touch(Conn& c) {
    touched_.push_back(c.id);
}

void TcpEngine::reschedule(Conn& c) {
    const std::optional<Instant> next = c.next_deadline();
    if (next == c.scheduled) {
        return;
    }
    if (c.scheduled) {
        timers_.erase({*c.scheduled, c.id});
    }
    c.scheduled = next;
    if (next) {
        timers_.emplace(*next, c.id);
    }
}

void TcpEngine::list_ready(SocketId id) {
    if (ready_listed_.size() <= id) {
        ready_listed_.resize(sockets_.size());
    }
    if (!ready_listed_[id]) {
        ready_listed_[id] = true;
        ready_.push_back(id);
    }
}

void TcpEngine::mark_ready(Conn& c) {
    list_ready(c.id);
    // A child's handshake ending (or its reset) changes its listener's
    // accept queue: the listener is what the application polls.
    if (c.listener && find(*c.listener) != nullptr) {
        list_ready(*c.listener);
    }
}

void TcpEngine::take_ready(std::vector<SocketId>& out) {
    out.clear();
    out.swap(ready_);
    for (SocketId id : out) {
        ready_listed_[id] = false;
    }
}

void TcpEngine::finish() {
    for (SocketId id : touched_) {
        if (Conn* c = find(id)) {
            reschedule(*c);
            if (network_side_) {
                mark_ready(*c);
            }
        }
    }
    touched_.clear();
    // Sockets may be queued twice (done twice in one call); free once.
    std::sort(dead_.begin(), dead_.end());
    dead_.erase(std::unique(dead_.begin(), dead_.end()), dead_.end());
    for (SocketId id : dead_) {
        if (Conn* c = find(id); c != nullptr && c->state == TcpState::Closed && c->orphan) {
            free_socket(*c);
        }
    }
    dead_.clear();
    sync_time_wait_counters();
}

void TcpEngine::sync_time_wait_counters() {
    // The table counts its own events (Linux names); the engine's counters
    // show them too, as one set.
    const TimeWaitCounters& now = time_wait_.counters();
    TimeWaitCounters& seen = time_wait_seen_;
    counters_.time_wait_entered += now.entered - seen.entered;
    counters_.fin_wait2_orphans += now.fin_wait2_entered - seen.fin_wait2_entered;
    counters_.time_wait_expired += now.expired - seen.expired;
    counters_.time_wait_killed += now.killed_by_rst - seen.killed_by_rst;
    counters_.time_wait_reused += now.recycled - seen.recycled;
    counters_.time_wait_overflow += now.overflow - seen.overflow;
    counters_.paws_rejected += now.paws_rejected - seen.paws_rejected;
    counters_.time_wait_acks_skipped += now.acks_rate_limited - seen.acks_rate_limited;
    counters_.time_wait_killed_by_admin += now.killed_by_admin - seen.killed_by_admin;
    seen = now;
}

void TcpEngine::poll(Instant now) {
    const NetworkSide network_side(*this);
    std::vector<SocketId> due;
    for (auto it = timers_.begin(); it != timers_.end() && it->first <= now; ++it) {
        due.push_back(it->second);
    }
    for (SocketId id : due) {
        Conn* c = find(id);
        if (c == nullptr) {
            continue;
        }
        touch(*c);
        run_timers(*c, now);
    }
    time_wait_.poll(now);
    finish();
}

std::optional<Instant> TcpEngine::poll_at() const {
    std::optional<Instant> next = time_wait_.poll_at();
    if (!timers_.empty() && (!next || timers_.begin()->first < *next)) {
        next = timers_.begin()->first;
    }
    return next;
}

// ------------------------------------------------------------ input

void TcpEngine::output(Instant now, const Conn& c, const wire::TcpRepr& repr, wire::ByteSpan payload) {
    ++counters_.segments_out;
    if (repr.has(flags::RST)) {
        ++counters_.resets_sent;
    }
    output_.send_segment(now, c.local.addr, c.remote.addr, repr, payload);
}

void TcpEngine::send_reset_for(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst,
                               const wire::TcpRepr& segment, size_t payload_len) {
    // RFC 9293 §3.10.7.1: "An incoming segment containing a RST is
    // discarded. An incoming segment not containing a RST causes a RST to
    // be sent in response."
    if (segment.has(flags::RST)) {
        return;
    }
    wire::TcpRepr rst;
    rst.src_port = segment.dst_port;
    rst.dst_port = segment.src_port;
    if (segment.has(flags::ACK)) {
        // "If the ACK bit is on, <SEQ=SEG.ACK><CTL=RST>"
        rst.seq = segment.ack;
        rst.flags = flags::RST;
    } else {
        // "If the ACK bit is off, sequence number zero is used,
        // <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>"
        rst.seq = SeqNumber(0);
        rst.ack = segment.seq + segment.segment_len(payload_len);
        rst.flags = flags::RST | flags::ACK;
    }
    rst.window = 0;
    ++counters_.segments_out;
    ++counters_.resets_sent;
    ++counters_.resets_for_no_socket;
    output_.send_segment(now, dst, src, rst, {});
}

void TcpEngine::input(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst, const wire::TcpRepr& segment,
                      wire::ByteSpan payload) {
    ++counters_.segments_in;
    const NetworkSide network_side(*this);
    const Endpoint local{dst, segment.dst_port};
    const Endpoint remote{src, segment.src_port};
    const ConnKey key = ConnKey::of(local, remote);

    // tcp_v4_rcv: the established table first (full 4-tuple), then
    // TIME_WAIT, then listeners.
    if (Conn* c = lookup(key)) {
        touch(*c);
        if (c->state == TcpState::SynSent) {
            syn_sent_input(*c, now, segment, payload);
        } else {
            segment_arrives(*c, now, segment, payload);
        }
        // The ACK of an orphan's FIN (no FIN with it, or it would be in
        // TIME_WAIT now): tcp_time_wait(sk, TCP_FIN_WAIT2, tmo).
        if (c->orphan && c->state == TcpState::FinWait2) {
            enter_orphan_fin_wait2(*c, now);
        }
        finish();
        return;
    }
    if (auto tw = time_wait_.find(FourTuple{dst, src, segment.dst_port, segment.src_port})) {
        time_wait_input(*tw, now, src, dst, segment, payload.size());
        finish();
        return;
    }
    if (Conn* l = lookup_listener(local, remote)) {
        touch(*l);
        listen_input(*l, now, src, dst, segment, payload.size(), std::nullopt);
        finish();
        return;
    }
    // RFC 9293 §3.10.7.1: "If the state is CLOSED (i.e., TCB does not
    // exist)..."
    send_reset_for(now, src, dst, segment, payload.size());
}

void TcpEngine::time_wait_input(TimeWaitTable::Handle entry, Instant now, wire::Ipv4Address src,
                                wire::Ipv4Address dst, const wire::TcpRepr& segment, size_t payload_len) {
    const bool fin_wait2 = time_wait_.substate(entry) == TimeWaitSubstate::FinWait2;
    const TimeWaitVerdict verdict = time_wait_.process(entry, now, segment, payload_len);
    switch (verdict.action) {
    case TimeWaitVerdict::Action::Drop:
    case TimeWaitVerdict::Action::Killed:
        return;
    case TimeWaitVerdict::Action::Reset:
        // Data (or a SYN) for an orphaned FIN_WAIT2: "RFC 1122 says we MUST
        // send a reset" (TCPAbortOnData); the record is gone.
        if (fin_wait2) {
            ++counters_.aborts_on_data;
        }
        send_reset_for(now, src, dst, segment, payload_len);
        return;
    case TimeWaitVerdict::Action::Syn: {
        // TCP_TW_SYN: a listener takes the SYN, the entry goes.
        const Endpoint local{dst, segment.dst_port};
        const Endpoint remote{src, segment.src_port};
        if (Conn* l = lookup_listener(local, remote)) {
            time_wait_.kill(entry);
            ++counters_.time_wait_reopened;
            touch(*l);
            listen_input(*l, now, src, dst, segment, payload_len, verdict.isn);
            return;
        }
        // No listener: tcp_v4_rcv falls through "to ACK".
        break;
    }
    case TimeWaitVerdict::Action::Ack:
        break;
    }
    const wire::TcpRepr ack = time_wait_.ack_for(entry, now);
    ++counters_.segments_out;
    output_.send_segment(now, dst, src, ack, {});
}

}  // namespace ustack::tcp
