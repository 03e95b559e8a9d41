#pragma once
// One TCP socket: the transmission control block of RFC 9293 §3.3.1 plus
// what Linux keeps beside it (struct tcp_sock / inet_connection_sock):
// buffers, the retransmission queue's metadata, congestion control, ACK
// scheduling, timers and socket options. Engine-private; the engine's
// files (tcp_*.cpp) implement the behaviour.
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>

#include "stack/core/time.h"
#include "stack/tcp/assembler.h"
#include "stack/tcp/congestion.h"
#include "stack/tcp/ring_buffer.h"
#include "stack/tcp/rtt_estimator.h"
#include "stack/tcp/tcp_types.h"
#include "stack/wire/seq.h"

namespace ustack::tcp {

// What is known of one segment sent and not yet cumulatively acknowledged
// (the metadata of Linux's retransmission queue; the bytes stay in the
// send buffer). Kept in sequence order, contiguous.
struct SentSegment {
    wire::SeqNumber start;
    wire::SeqNumber end;  // start + payload + (fin ? 1 : 0)
    Instant first_sent;
    Instant last_sent;
    bool fin = false;
    bool ever_retransmitted = false;  // Karn's algorithm: no RTT sample from it
    bool sacked = false;              // RFC 6675 scoreboard
    bool lost = false;                // marked for retransmission
    bool retrans_in_flight = false;   // retransmitted after being marked lost

    uint32_t len() const { return static_cast<uint32_t>(end - start); }
};

// struct socket's SS_* state as far as connect(2) cares (inet_stream_connect).
enum class ConnectPhase : uint8_t { Unconnected, Connecting, Connected };

// Linux's icsk_ca_state, reduced: Open (normal), Recovery (fast recovery,
// RFC 6582 / RFC 6675), Loss (after an RTO, until the loss is repaired).
enum class CaState : uint8_t { Open, Recovery, Loss };

struct Connection {
    Connection(SocketId socket_id, size_t max_ooo_ranges) : id(socket_id), ooo(max_ooo_ranges) {}

    SocketId id;
    uint32_t uid = 0;
    bool may_bind_privileged = true;  // CAP_NET_BIND_SERVICE
    TcpState state = TcpState::Closed;
    ConnectPhase phase = ConnectPhase::Unconnected;
    // Closed by the application (SOCK_DEAD): the engine finishes the close
    // and frees the socket; the id is no longer the application's.
    bool orphan = false;

    // ---- addressing
    Endpoint local;
    Endpoint remote;
    std::optional<PortLease> lease;
    bool port_locked = false;  // SOCK_BINDPORT_LOCK: bind() chose the port
    bool hashed = false;       // in the engine's 4-tuple table

    // ---- options
    bool nodelay = false;
    bool cork = false;
    bool keepalive = false;
    Duration keepalive_idle;
    Duration keepalive_interval;
    unsigned keepalive_probes = 0;
    Duration user_timeout = Duration::zero();  // zero: off
    Linger linger;
    bool reuse_addr = false;
    bool reuse_port = false;
    bool bind_address_no_port = false;  // IP_BIND_ADDRESS_NO_PORT
    size_t rcvbuf = 0;  // as getsockopt(SO_RCVBUF) reports; payload space is half
    size_t sndbuf = 0;
    bool rcvbuf_locked = false;  // SOCK_RCVBUF_LOCK
    bool sndbuf_locked = false;  // SOCK_SNDBUF_LOCK: SO_SNDBUF was set, no autotuning
    uint16_t user_mss = 0;       // TCP_MAXSEG, 0 = none

    // ---- listener
    unsigned backlog = 0;                 // sk_max_ack_backlog
    std::deque<SocketId> accept_queue;    // established children
    unsigned syn_queue = 0;               // children in SYN_RECEIVED
    std::optional<SocketId> listener;     // for a child not yet accepted
    bool in_accept_queue = false;

    // ---- errors and shutdown
    int error = 0;          // sk_err, read by SO_ERROR
    int soft_error = 0;     // sk_err_soft: reported only on timeout
    bool rcv_shutdown = false;  // RCV_SHUTDOWN
    bool snd_shutdown = false;  // SEND_SHUTDOWN
    bool done = false;          // SOCK_DONE: the peer's FIN was received

    // ---- send sequence variables (RFC 9293 §3.3.1)
    wire::SeqNumber iss;
    wire::SeqNumber snd_una;
    wire::SeqNumber snd_nxt;
    wire::SeqNumber snd_wl1;
    wire::SeqNumber snd_wl2;
    uint32_t snd_wnd = 0;      // scaled, bytes
    uint32_t max_snd_wnd = 0;  // largest window the peer offered
    uint8_t snd_wscale = 0;

    // ---- receive sequence variables
    wire::SeqNumber irs;
    wire::SeqNumber rcv_nxt;
    wire::SeqNumber rcv_wup;  // rcv_nxt when the window was last announced
    wire::SeqNumber rcv_adv;  // right edge of the announced window
    uint8_t rcv_wscale = 0;

    // ---- negotiated options
    bool ts_ok = false;
    bool sack_ok = false;
    bool wscale_ok = false;
    uint32_t ts_offset = 0;
    std::optional<uint32_t> ts_recent;  // TS.Recent (RFC 7323 §4.3)
    Instant ts_recent_stamp;
    uint32_t syn_tsval = 0;  // TSval of our first SYN (SYN-SENT TSecr check)
    uint32_t peer_mss = 536;  // RFC 9293 §3.7.1 default
    uint32_t adv_mss = 0;     // what we announced
    uint32_t pmtu = 0;
    uint32_t mss_cache = 536;  // payload of a full segment, options excluded

    // ---- send side
    RingBuffer send_buffer{0};
    wire::SeqNumber send_buffer_seq;  // sequence number of send_buffer's first byte
    bool fin_queued = false;          // shutdown(WR)/close(): a FIN follows the data
    bool fin_sent = false;
    wire::SeqNumber snd_sml;          // end of the last small segment (Minshall's Nagle)
    std::deque<SentSegment> sent;
    uint32_t sacked_out = 0;          // bytes of `sent` SACKed
    uint32_t sacked_segments = 0;     // how many segments of `sent` are SACKed
    uint32_t lost_out = 0;            // bytes marked lost (not SACKed)
    uint32_t retrans_out = 0;         // bytes retransmitted and still out
    wire::SeqNumber highest_sack;     // end of the highest SACKed segment
    CaState ca_state = CaState::Open;
    wire::SeqNumber recover;          // RFC 6582 "recover" (Linux high_seq)
    unsigned dupacks = 0;

    RttEstimator rtt;
    std::unique_ptr<CongestionControl> cc;
    unsigned retransmits = 0;               // icsk_retransmits
    std::optional<Instant> retrans_stamp;   // first send of the head being retransmitted
    unsigned probes_out = 0;                // icsk_probes_out (zero-window or keepalive)
    unsigned synack_retransmits = 0;

    // ---- receive side
    RingBuffer recv_buffer{0};
    Assembler ooo;
    std::optional<wire::SeqNumber> fin_seq;  // the peer's FIN, once seen (maybe out of order)
    uint32_t rcv_mss = 536;                  // estimate of the peer's segment size
    // Receive-buffer autotuning (Linux's DRS, tcp_rcv_space_adjust): the
    // receiver's RTT estimate (tcp_rcv_rtt_measure: how long one window
    // takes to arrive; zero until measured), and how much the application
    // read in the last such period.
    Duration rcv_rtt = Duration::zero();
    wire::SeqNumber rcv_rtt_seq;          // the window's end when timing started
    std::optional<Instant> rcv_rtt_time;  // when timing started
    uint64_t bytes_read = 0;              // by the application, in all (copied_seq)
    uint64_t rcvq_read_at = 0;            // bytes_read when the period started
    size_t rcvq_space = 0;                // read in the last period (rcvq_space.space)
    std::optional<Instant> rcvq_time;     // when the period started

    // ---- ACK scheduling (inet_connection_sock icsk_ack)
    bool ack_pending = false;    // an ACK is owed (delayed or not)
    bool ack_now = false;        // ... and must go out before processing ends
    bool ack_now_quick = false;  // ack_now for quick-ACK mode alone: decided at the input batch's end
    bool force_retransmit = false;  // fast retransmit: the head goes out whatever cwnd says
    unsigned quick = 0;          // quick ACKs left
    bool pingpong = false;       // interactive: delay ACKs to piggyback them
    bool ato_started = false;    // first data seen (Linux: ato != 0)
    Instant last_data_received;  // icsk_ack.lrcvtime
    Instant last_received;       // any acceptable segment (rcv_tstamp): keepalive idle
    Instant last_oow_ack;        // tcp_oow_rate_limited()
    bool oow_ack_sent = false;

    // ---- timers (absent = not armed)
    std::optional<Instant> retransmit_at;  // RTO, SYN and SYN-ACK retransmission
    std::optional<Instant> persist_at;     // zero-window probe / corked data
    std::optional<Instant> delack_at;
    std::optional<Instant> keepalive_at;
    std::optional<Instant> finwait2_at;    // orphaned FIN_WAIT2 lifetime
    std::optional<Instant> scheduled;      // the deadline the engine indexed

    // ---- helpers
    bool synchronized() const {
        return state != TcpState::Closed && state != TcpState::Listen && state != TcpState::SynSent &&
               state != TcpState::SynReceived;
    }
    // Bytes the application wrote that were never sent.
    size_t unsent_bytes() const {
        const auto sent_data = static_cast<size_t>(snd_nxt - send_buffer_seq) - (fin_sent ? 1 : 0);
        return send_buffer.size() > sent_data ? send_buffer.size() - sent_data : 0;
    }
    wire::SeqNumber send_buffer_end() const {
        return send_buffer_seq + static_cast<uint32_t>(send_buffer.size());
    }
    uint32_t outstanding() const { return static_cast<uint32_t>(snd_nxt - snd_una); }
    // RFC 6675 pipe (Linux tcp_packets_in_flight, in bytes).
    uint32_t pipe() const {
        const uint32_t out = outstanding();
        const uint32_t gone = sacked_out + lost_out;
        return (out > gone ? out - gone : 0) + retrans_out;
    }
    uint32_t cwnd() const { return cc ? cc->cwnd() : 0; }
    std::optional<Instant> next_deadline() const {
        std::optional<Instant> next;
        for (const auto& t : {retransmit_at, persist_at, delack_at, keepalive_at, finwait2_at}) {
            if (t && (!next || *t < *next)) {
                next = t;
            }
        }
        return next;
    }
};

}  // namespace ustack::tcp
