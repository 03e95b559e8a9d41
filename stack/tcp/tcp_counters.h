#pragma once
// Event counters of the TCP engine. Linux's SNMP/netstat names in the
// descriptions where Linux has one.
#include <cstdint>
#include <string_view>

namespace ustack::tcp {

// X(name, description)
#define USTACK_TCP_COUNTERS(X)                                                                  \
    X(segments_in, "segments received (InSegs)")                                                \
    X(segments_out, "segments sent (OutSegs)")                                                  \
    X(active_opens, "connect() calls that sent a SYN (ActiveOpens)")                            \
    X(passive_opens, "connections created from a SYN (PassiveOpens)")                           \
    X(attempt_fails, "connection attempts that failed (AttemptFails)")                          \
    X(established_resets, "established connections reset (EstabResets)")                        \
    X(resets_sent, "RST segments sent (OutRsts)")                                               \
    X(resets_received, "RST segments accepted")                                                 \
    X(resets_for_no_socket, "RSTs sent for segments no socket wanted")                          \
    X(retransmitted_segments, "segments retransmitted (RetransSegs)")                           \
    X(fast_retransmits, "retransmissions by fast retransmit/recovery (TCPFastRetrans)")         \
    X(sack_retransmits, "retransmissions of holes SACK showed lost (TCPSackRecovery)")          \
    X(rto_timeouts, "retransmission timeouts (TCPTimeouts)")                                    \
    X(syn_retransmits, "SYN or SYN-ACK retransmissions (TCPSynRetrans)")                        \
    X(recoveries, "fast recovery episodes entered")                                             \
    X(dup_acks_received, "duplicate ACKs received")                                             \
    X(sack_blocks_received, "SACK blocks received")                                             \
    X(ooo_queued, "segments held out of order (TCPOFOQueue)")                                   \
    X(ooo_dropped, "out-of-order segments dropped for the range limit (TCPOFODrop)")            \
    X(rcvbuf_dropped, "data dropped: beyond the receive buffer (TCPRcvQDrop)")                  \
    X(zero_window_drops, "data dropped: receive window was zero (TCPZeroWindowDrop)")           \
    X(paws_rejected, "segments rejected by PAWS (PAWSEstab)")                                   \
    X(out_of_window, "segments outside the receive window, answered with an ACK")              \
    X(acks_rate_limited, "ACKs to out-of-window segments suppressed (TCPACKSkipped*)")          \
    X(challenge_acks, "challenge ACKs sent, RFC 5961 (TCPChallengeACK)")                        \
    X(syn_challenges, "SYNs in a synchronized state (TCPSYNChallenge)")                         \
    X(old_acks_dropped, "ACKs too old or for unsent data, dropped")                             \
    X(delayed_acks, "delayed ACKs sent by the timer (DelayedACKs)")                             \
    X(quick_acks_joined, "quick ACKs of data left to the FIN's delayed ACK: FIN in the same read") \
    X(zero_window_probes, "zero-window probes sent")                                            \
    X(keepalive_probes, "keepalive probes sent")                                                \
    X(timeouts_connect, "connects that timed out (ETIMEDOUT in SYN_SENT)")                      \
    X(timeouts_established, "connections that timed out retransmitting or probing (TCPAbortOnTimeout)") \
    X(keepalive_timeouts, "connections ended by keepalive")                                     \
    X(aborts_on_close, "RST on close with unread data (TCPAbortOnClose)")                       \
    X(aborts_on_data, "RST for data after close, or SO_LINGER 0 (TCPAbortOnData)")             \
    X(aborts_on_linger, "orphaned FIN_WAIT2 that timed out (TCPAbortOnLinger)")                 \
    X(listen_overflows, "handshakes completed with a full accept queue (ListenOverflows)")      \
    X(listen_drops, "SYNs dropped by a listener (ListenDrops)")                                 \
    X(syn_queue_drops, "SYNs dropped: SYN queue full")                                          \
    X(time_wait_entered, "connections that entered TIME_WAIT (TW)")                             \
    X(time_wait_expired, "TIME_WAIT entries expired")                                           \
    X(time_wait_killed, "TIME_WAIT entries ended by RST, RFC 1337 assassination (TWKilled)")    \
    X(time_wait_reopened, "TIME_WAIT entries taken over by a new SYN")                          \
    X(time_wait_reused, "TIME_WAIT entries reused by connect (TWRecycled)")                     \
    X(time_wait_overflow, "closes that skipped TIME_WAIT: tcp_max_tw_buckets (TCPTimeWaitOverflow)") \
    X(time_wait_acks_skipped, "ACKs from TIME_WAIT/FIN_WAIT2 records rate-limited (TCPACKSkippedTimeWait)") \
    X(time_wait_killed_by_admin, "TIME_WAIT entries dropped by kill_time_wait (ss -K)")         \
    X(fin_wait2_orphans, "orphaned FIN_WAIT2 connections moved to records")                     \
    X(icmp_errors, "ICMP errors applied to a connection")                                       \
    X(icmp_out_of_window, "ICMP errors quoting a sequence number out of window (OutOfWindowIcmps)") \
    X(bad_segments, "segments dropped as invalid (bad ACK, no ACK, ...)")

struct TcpCounters {
#define USTACK_TCP_COUNTER_FIELD(name, description) uint64_t name = 0;
    USTACK_TCP_COUNTERS(USTACK_TCP_COUNTER_FIELD)
#undef USTACK_TCP_COUNTER_FIELD

    // Visits (name, description, value) for every counter.
    template <typename F>
    void for_each(F&& f) const {
#define USTACK_TCP_COUNTER_VISIT(name, description) f(std::string_view(#name), std::string_view(description), name);
        USTACK_TCP_COUNTERS(USTACK_TCP_COUNTER_VISIT)
#undef USTACK_TCP_COUNTER_VISIT
    }
};

}  // namespace ustack::tcp
