#pragma once
// The TCP engine: every TCP socket of one stack (RFC 9293, with Linux's
// choices wherever the RFCs leave one). Pure: no syscalls, no clock (every
// entry point takes `now`), randomness from the injected Random, segments
// out through TcpOutput, ports through the stack's ports::PortManager (every
// bind rule of SEMANTICS.md), TIME_WAIT in a compact TimeWaitTable.
//
// The IP layer calls input() for each TCP segment addressed to us,
// icmp_error() for ICMP errors quoting one of our segments, and poll(now)
// whenever poll_at() has passed. Applications use the socket calls, which
// return Linux errno values as Result errors.
//
// The implementation is split by concern, as gVisor's tcp package:
//   tcp_engine.cpp    demultiplexing, socket table, timer index, poll
//   tcp_connect.cpp   bind/listen/connect/accept, LISTEN and SYN-SENT input
//   tcp_input.cpp     SEGMENT ARRIVES in the other states (RFC 9293 §3.10.7.4)
//   tcp_ack.cpp       ACK processing, SACK scoreboard, loss recovery, RTT
//   tcp_receive.cpp   data and FIN reception, windows, delayed ACK, recv()
//   tcp_send.cpp      send(), segmentation, Nagle/cork, segment building
//   tcp_timers.cpp    RTO, persist, delayed ACK, keepalive, FIN_WAIT2
//   tcp_close.cpp     shutdown/close/abort, state changes, tcp_done
//   time_wait_table.* TIME_WAIT and orphaned FIN_WAIT2 records
//   tcp_sockopt.cpp   options, readiness, info
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

#include "stack/core/expected.h"
#include "stack/core/function_ref.h"
#include "stack/core/random.h"
#include "stack/core/time.h"
#include "stack/tcp/connection.h"
#include "stack/tcp/isn.h"
#include "stack/core/tunables.h"
#include "stack/ports/port_manager.h"
#include "stack/tcp/tcp_config.h"
#include "stack/tcp/tcp_counters.h"
#include "stack/tcp/tcp_output.h"
#include "stack/tcp/time_wait_table.h"
#include "stack/tcp/tcp_types.h"
#include "stack/tcp/tcp_util.h"
#include "stack/wire/bytes.h"
#include "stack/wire/tcp.h"

namespace ustack::tcp {

// An ICMP error quoting a segment we sent (the IP layer extracts it).
struct IcmpError {
    Endpoint local;       // quoted source
    Endpoint remote;      // quoted destination
    wire::SeqNumber seq;  // quoted sequence number
    // errno the ICMP message means: EHOSTUNREACH, ENETUNREACH,
    // ECONNREFUSED (port unreachable), ENOPROTOOPT (protocol unreachable),
    // EMSGSIZE (fragmentation needed; see mtu), ...
    int error = 0;
    uint16_t mtu = 0;  // next-hop MTU for EMSGSIZE, 0 if unknown
};

// One socket as `ustackctl ss` shows it (the handle may be an orphan still
// closing, or a child not yet accepted).
struct SocketSummary {
    SocketId id;
    TcpState state;
    Endpoint local;
    Endpoint remote;
    bool orphan;
    uint32_t uid;
};

// One TIME_WAIT (or orphaned FIN_WAIT2) record as `ustackctl ss` shows it.
struct TimeWaitSummary {
    Endpoint local;
    Endpoint remote;
    bool fin_wait2;
    Duration remaining;
};

class TcpEngine {
public:
    // `ports`: the stack's port manager, shared with UDP. When null the
    // engine keeps its own (over config.tunables, or over its own Tunables
    // made from the TcpConfig copies when no stack supplies them).
    TcpEngine(TcpConfig config, TcpOutput& output, Random& random, ports::PortManager* ports = nullptr);
    ~TcpEngine();
    TcpEngine(const TcpEngine&) = delete;
    TcpEngine& operator=(const TcpEngine&) = delete;

    // ---- IP layer side
    // A segment for one of our addresses, checksum already verified.
    void input(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst, const wire::TcpRepr& segment,
               wire::ByteSpan payload);
    void icmp_error(Instant now, const IcmpError& error);
    // Runs every timer due at `now`.
    void poll(Instant now);
    // Segments that arrive between these two (one read of the device) have
    // their quick ACKs decided at the end, on the state the whole batch
    // left: a response and the FIN right behind it (the peer's write, then
    // close) get one ACK, which then waits for our own FIN as the FIN's
    // ACK does on Linux (ping-pong), instead of a quick ACK for the data
    // and a FIN after it. Outside a batch (loopback, direct calls) every
    // ACK is decided per segment, as before.
    void begin_input_batch();
    void end_input_batch(Instant now);
    // The earliest timer deadline, nullopt when nothing is armed.
    std::optional<Instant> poll_at() const;

    // ---- sockets
    // `may_bind_privileged`: CAP_NET_BIND_SERVICE (ports below 1024).
    SocketId open(uint32_t uid = 0, bool may_bind_privileged = true);
    // Errors in Linux's order (SEMANTICS.md): EBADF, EADDRNOTAVAIL (not a
    // local address), EACCES (port < 1024 without privilege), EINVAL
    // (already bound or not CLOSED), EADDRINUSE.
    Result<void> bind(SocketId id, Endpoint local);
    // Errors: EBADF, EINVAL (connected), EADDRINUSE. An unbound socket gets
    // an ephemeral port. backlog is clamped to [0, somaxconn].
    Result<void> listen(SocketId id, int backlog);
    // Non-blocking connect: sends the SYN and fails with EINPROGRESS (the
    // normal outcome); the result shows in state()/readiness()/take_error().
    // As inet_stream_connect: EALREADY while connecting, 0 once connected
    // after an EINPROGRESS, then EISCONN; after a failure the pending error.
    // Errors also: EBADF, EADDRNOTAVAIL, ENETUNREACH (no local address).
    Result<void> connect(SocketId id, Instant now, Endpoint remote);
    // Errors: EBADF, EINVAL (not listening), EAGAIN (nothing to accept).
    Result<Accepted> accept(SocketId id);
    // Copies what fits in the send buffer. Errors: EAGAIN (buffer full or
    // still connecting), EPIPE (shut down, reset, never connected), or the
    // pending error once (ECONNRESET...).
    Result<size_t> send(SocketId id, Instant now, wire::ByteSpan data);
    // How many bytes send() would take in full right now: the free send
    // buffer of a connection that can send (ESTABLISHED/CLOSE_WAIT, not
    // shut down, no pending error), else 0 (then send() says why).
    size_t send_room(SocketId id) const;
    // Bytes written and not yet acknowledged, unsent ones included
    // (Linux's SIOCOUTQ: write_seq - snd_una); 0 for an unknown socket.
    size_t send_queued(SocketId id) const;
    // Returns 0 at end of stream. Errors: EAGAIN, ENOTCONN, the pending
    // error once (ECONNRESET, ETIMEDOUT...).
    Result<size_t> recv(SocketId id, Instant now, wire::MutByteSpan out, bool peek = false);
    // recv() without the copy, in two steps, for a caller that hands the
    // bytes to the kernel (sendmsg from the receive buffer itself).
    // recv_spans(): views of the oldest received bytes, at most
    // spans.size() contiguous pieces of the receive buffer, nothing
    // consumed; the views stay valid until the engine is next called.
    // Same results as recv(): bytes > 0, or 0 at end of stream, or EAGAIN,
    // ENOTCONN, the pending error once (ECONNRESET, ETIMEDOUT...).
    // recv_consume(n): drops the first n of those bytes as recv() would
    // have read them (window update, autotuning); n <= the bytes viewed.
    struct ReceivedSpans {
        size_t bytes = 0;  // covered by spans[0..count)
        size_t count = 0;
    };
    Result<ReceivedSpans> recv_spans(SocketId id, std::span<wire::ByteSpan> spans);
    void recv_consume(SocketId id, Instant now, size_t n);
    // Errors: EBADF, ENOTCONN.
    Result<void> shutdown(SocketId id, Instant now, ShutdownHow how);
    // close(2): the handle is gone; the connection finishes on its own
    // (FIN handshake, TIME_WAIT), or is reset when unread data remains or
    // SO_LINGER is {1, 0}, as tcp_close() does.
    void close(SocketId id, Instant now);
    // Resets the connection (RST if synchronized) and frees the handle:
    // close() with SO_LINGER {1, 0}.
    void abort(SocketId id, Instant now);

    Result<void> set_option(SocketId id, Instant now, SockOpt option, int value);
    Result<int> get_option(SocketId id, SockOpt option) const;
    Result<void> set_linger(SocketId id, Linger linger);
    Result<Linger> get_linger(SocketId id) const;

    Readiness readiness(SocketId id) const;
    // SO_ERROR: takes the pending error (or the soft error), 0 when none.
    int take_error(SocketId id);
    std::optional<TcpState> state(SocketId id) const;
    Result<Endpoint> local_endpoint(SocketId id) const;
    Result<Endpoint> remote_endpoint(SocketId id) const;  // ENOTCONN when none
    Result<TcpInfo> info(SocketId id) const;

    const TcpCounters& counters() const { return counters_; }
    const TcpConfig& config() const { return config_; }
    // The settings in force: the stack's live Tunables when attached,
    // else the engine's own.
    const Tunables& tunables() const { return tunables_; }
    // The engine's own settings (an engine without a stack); changing them
    // on an attached engine has no effect.
    Tunables& own_tunables() { return own_tunables_; }
    const TimeWaitCounters& time_wait_counters() const { return time_wait_.counters(); }
    // Bind/listen/connect refusals by reason, from the port manager (shared
    // with UDP when the engine is attached to a stack).
    const ports::PortCounters& port_counters() const { return ports_.counters(); }
    void set_local_addresses(std::vector<wire::Ipv4Address> addresses) { config_.local_addresses = std::move(addresses); }
    // Sockets in use, including orphans still closing.
    size_t socket_count() const { return live_sockets_; }
    // TIME_WAIT records (orphaned FIN_WAIT2 records not included).
    size_t time_wait_count() const { return time_wait_.size() - time_wait_.fin_wait2_count(); }
    // Orphaned FIN_WAIT2 connections held as records.
    size_t fin_wait2_count() const { return time_wait_.fin_wait2_count(); }
    std::optional<TcpState> state_of(const Endpoint& local, const Endpoint& remote) const;

    // ---- inspection (ustackctl ss / kill-tw)
    // Every socket handle in use, orphans included (TIME_WAIT records are
    // not sockets: see for_each_time_wait).
    void for_each_socket(FunctionRef<void(const SocketSummary&)> f) const;
    void for_each_time_wait(Instant now, FunctionRef<void(const TimeWaitSummary&)> f) const;
    // Drops TIME_WAIT entries whose local or remote endpoint matches (port 0 / 0.0.0.0 = any), like `ss -K`; returns how many.
    size_t kill_time_wait(Instant now, Endpoint match);

    // ---- readiness changes: what the host must look at (O(changed))
    // Sockets whose readiness may have changed because of the network side
    // (input(), icmp_error(), poll(): data or FIN arrived, send space
    // freed, a state change, an error, a connection queued on a listener)
    // since the last take_ready(). The calls an application makes (send,
    // recv, connect, close...) do not add to it: their caller knows what
    // it did. A superset is allowed, never a subset: ids may name sockets
    // freed since, orphans, or children not yet accepted (a listener whose
    // child moved is listed too). Each id at most once per take.
    bool has_ready() const { return !ready_.empty(); }
    // Moves the list into `out` (cleared first) and starts a new one.
    void take_ready(std::vector<SocketId>& out);

private:
    using SeqNumber = wire::SeqNumber;
    using Conn = Connection;

    // begin_input_batch .. end_input_batch: quick ACKs waiting for the
    // batch's end (schedule_ack, Connection::ack_now_quick).
    bool input_batch_open_ = false;
    std::vector<SocketId> batch_quick_acks_;

    // ---- settings read live from the Tunables in force
    Duration time_wait_length() const { return tunables_.time_wait; }
    Duration fin_timeout() const { return tunables_.tcp_fin_timeout; }
    bool timestamps_enabled() const { return tunables_.tcp_timestamps; }

    // ---- tcp_engine.cpp
    Conn* find(SocketId id);
    const Conn* find(SocketId id) const;
    Conn* find_app(SocketId id);  // excludes orphans and unaccepted children
    const Conn* find_app(SocketId id) const;
    Conn& allocate(uint32_t uid);
    void free_socket(Conn& c);
    void hash(Conn& c);
    void unhash(Conn& c);
    Conn* lookup(const ConnKey& key);
    Conn* lookup_listener(const Endpoint& local, const Endpoint& remote);
    // Every entry point ends with finish(): sockets touched get their
    // timer re-indexed, sockets that died (orphans reaching CLOSED) are
    // freed. Nothing is freed in the middle of processing.
    void touch(Conn& c);
    void finish();
    // Adds c (and its listener, for a child not yet accepted) to ready_.
    void mark_ready(Conn& c);
    void list_ready(SocketId id);
    // Set while a network-side entry point runs: finish() then publishes
    // the sockets it touched to ready_.
    struct NetworkSide {
        explicit NetworkSide(TcpEngine& e) : engine(e) { engine.network_side_ = true; }
        ~NetworkSide() { engine.network_side_ = false; }
        NetworkSide(const NetworkSide&) = delete;
        NetworkSide& operator=(const NetworkSide&) = delete;
        TcpEngine& engine;
    };
    void reschedule(Conn& c);
    void run_timers(Conn& c, Instant now);
    bool is_local(wire::Ipv4Address address) const;
    void output(Instant now, const Conn& c, const wire::TcpRepr& repr, wire::ByteSpan payload);
    // RFC 9293 §3.10.7.1 (CLOSED): the RST for a segment no socket wants
    // (tcp_v4_send_reset).
    void send_reset_for(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst, const wire::TcpRepr& segment,
                        size_t payload_len);

    // ---- tcp_connect.cpp
    Result<void> connect_socket(SocketId id, Instant now, Endpoint remote);
    void listen_input(Conn& listener, Instant now, wire::Ipv4Address src, wire::Ipv4Address dst,
                      const wire::TcpRepr& segment, size_t payload_len, std::optional<SeqNumber> isn_override);
    void syn_sent_input(Conn& c, Instant now, const wire::TcpRepr& segment, wire::ByteSpan payload);
    void negotiate_syn_options(Conn& c, Instant now, const wire::TcpRepr& syn);
    void init_connection(Conn& c, Instant now);  // buffers, window scale, MSS we announce
    void on_established(Conn& c, Instant now);   // congestion control, keepalive (tcp_init_transfer)
    void send_syn(Conn& c, Instant now);
    void send_syn_ack(Conn& c, Instant now);
    bool child_established(Conn& child, Instant now);  // false: accept queue full
    void drop_child(Conn& child);
    // __inet_check_established(): is the 4-tuple free for a new outgoing
    // connection? It may take over a TIME_WAIT entry (tcp_twsk_unique),
    // whose sequence and timestamp state then goes to `reuse`.
    bool tuple_free(const ConnKey& key, Instant now, bool explicitly_bound,
                    std::optional<TimeWaitTable::Reuse>& reuse);

    // ---- tcp_input.cpp
    void segment_arrives(Conn& c, Instant now, const wire::TcpRepr& segment, wire::ByteSpan payload);
    bool paws_discard(const Conn& c, Instant now, const wire::TcpRepr& segment, size_t payload_len) const;
    bool sequence_acceptable(const Conn& c, SeqNumber seq, SeqNumber end_seq) const;
    void send_challenge_ack(Conn& c, Instant now);
    // Sends an ACK unless tcp_oow_rate_limited() says no.
    void send_dupack_limited(Conn& c, Instant now, const wire::TcpRepr& segment, size_t payload_len);
    void tcp_reset(Conn& c, Instant now);  // an acceptable RST arrived
    void store_ts_recent(Conn& c, Instant now, const wire::TcpRepr& segment);

    // ---- tcp_ack.cpp
    enum class AckResult { Ok, Old, Drop, ChallengeDrop };
    AckResult process_ack(Conn& c, Instant now, const wire::TcpRepr& segment, size_t payload_len);
    void update_send_window(Conn& c, const wire::TcpRepr& segment, uint32_t window);
    void process_sack(Conn& c, const wire::TcpRepr& segment);
    uint32_t clean_sent(Conn& c, Instant now, SeqNumber ack, std::optional<Duration>& rtt_sample);
    void mark_lost(Conn& c);
    void enter_recovery(Conn& c, Instant now);
    void set_lost(Conn& c, SentSegment& s);
    void clear_scoreboard(Conn& c);
    void rearm_rto(Conn& c, Instant now);

    // ---- tcp_receive.cpp
    void queue_data(Conn& c, Instant now, const wire::TcpRepr& segment, wire::ByteSpan payload);
    void process_fin(Conn& c, Instant now);
    uint16_t select_window(Conn& c);
    uint32_t receive_window(const Conn& c) const;  // left of what we announced
    uint32_t free_window(const Conn& c) const;     // what we could announce now
    void schedule_ack(Conn& c, Instant now, bool immediate);
    void event_data_received(Conn& c, Instant now, size_t len);
    void enter_quickack(Conn& c, unsigned count);
    void expand_sndbuf(Conn& c);
    void cleanup_rbuf(Conn& c, Instant now);
    // What follows the app taking n bytes of the receive buffer (recv,
    // recv_consume): autotuning, window update.
    void after_app_read(Conn& c, Instant now, size_t n);
    // recv()'s answer when the receive buffer is empty: 0 (end of
    // stream) or an error.
    Result<size_t> recv_nothing_held(Conn& c);

    // ---- tcp_send.cpp
    void transmit(Conn& c, Instant now);
    bool send_new_data(Conn& c, Instant now, uint32_t max_len, bool push_all);
    void retransmit(Conn& c, Instant now, size_t index);  // may split sent[index]
    wire::TcpRepr make_segment(Conn& c, Instant now, uint8_t flags, SeqNumber seq);
    void emit(Conn& c, Instant now, wire::TcpRepr& repr, wire::ByteSpan payload);
    void send_ack(Conn& c, Instant now);
    void send_active_reset(Conn& c, Instant now);
    void send_probe(Conn& c, Instant now);  // tcp_write_wakeup / tcp_xmit_probe_skb
    uint32_t max_payload(const Conn& c, const wire::TcpRepr& repr) const;
    uint16_t initial_window(const Conn& c) const;
    void split_segment(Conn& c, size_t index, uint32_t first_len);
    void reno_update_sacked(Conn& c);
    void account(Conn& c, const SentSegment& s, bool add);
    bool nagle_allows(const Conn& c, uint32_t len, uint32_t mss) const;
    void arm_rto_if_idle(Conn& c, Instant now);
    void check_probe_timer(Conn& c, Instant now);
    void update_mss(Conn& c);

    // ---- tcp_timers.cpp
    void retransmit_timer(Conn& c, Instant now);
    void persist_timer(Conn& c, Instant now);
    void delack_timer(Conn& c, Instant now);
    void keepalive_timer(Conn& c, Instant now);
    bool write_timeout(Conn& c, Instant now);  // true when the connection died
    bool retransmits_timed_out(const Conn& c, Instant now, unsigned boundary, Duration timeout) const;
    void reset_keepalive(Conn& c, Instant now);

    // ---- tcp_close.cpp
    void set_state(Conn& c, TcpState state);
    void tcp_done(Conn& c);
    void done_with_error(Conn& c, int error);
    void write_error(Conn& c, Instant now);  // tcp_write_err: ETIMEDOUT or the soft error
    void queue_fin(Conn& c, Instant now);
    void close_listener(Conn& c, Instant now);
    void enter_time_wait(Conn& c, Instant now);
    // tcp_time_wait(sk, TCP_FIN_WAIT2, tmo): an orphan whose FIN was
    // acknowledged continues as a record until tcp_fin_timeout.
    void enter_orphan_fin_wait2(Conn& c, Instant now);
    TimeWaitState time_wait_state_of(const Conn& c);
    void reset_for_reconnect(Conn& c);

    // ---- TIME_WAIT
    void time_wait_input(TimeWaitTable::Handle entry, Instant now, wire::Ipv4Address src, wire::Ipv4Address dst,
                         const wire::TcpRepr& segment, size_t payload_len);
    void sync_time_wait_counters();

    TcpConfig config_;
    TcpOutput& output_;
    Random& random_;
    Tunables own_tunables_;
    const Tunables& tunables_;
    std::unique_ptr<ports::PortManager> own_ports_;
    ports::PortManager& ports_;
    SequenceSecrets secrets_;
    uint64_t reuseport_seed_;
    TcpCounters counters_;

    std::vector<std::unique_ptr<Conn>> sockets_;  // indexed by SocketId; null = free
    std::vector<SocketId> free_ids_;
    size_t live_sockets_ = 0;
    std::unordered_map<ConnKey, SocketId, ConnKeyHash> connections_;
    std::unordered_map<uint16_t, std::vector<SocketId>> listeners_;  // by local port
    TimeWaitTable time_wait_;
    TimeWaitCounters time_wait_seen_;  // the table's counters already added to counters_
    std::set<std::pair<Instant, SocketId>> timers_;
    std::vector<uint8_t> scratch_;  // payload of the segment being built
    std::vector<SocketId> touched_;
    std::vector<SocketId> dead_;
    std::vector<SocketId> ready_;  // see take_ready()
    // By SocketId: listed in ready_ and not yet taken. Kept per id slot,
    // not per socket, so that ready_ never holds an id twice and never
    // outgrows the socket table, even when nobody takes it (an engine
    // without a host) and ids are reused.
    std::vector<bool> ready_listed_;
    bool network_side_ = false;
};

}  // namespace ustack::tcp
