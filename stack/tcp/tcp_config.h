#pragma once
// Settings of one TCP engine, with Linux's defaults and names in comments.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "stack/core/time.h"
#include "stack/core/tunables.h"
#include "stack/tcp/congestion.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::tcp {

struct TcpConfig {
    // The engine's own addresses (bind() checks, source of connect()).
    std::vector<wire::Ipv4Address> local_addresses;
    // Largest IP packet of the device; our MSS is mtu - 40 (RFC 9293 §3.7.1,
    // RFC 879), and segments never exceed it.
    uint32_t mtu = 1500;

    // net.ipv4.tcp_syn_retries: SYN retransmissions before ETIMEDOUT
    // (1+2+4+8+16+32+64 = 127 s with the 1 s initial RTO).
    unsigned syn_retries = 6;
    // net.ipv4.tcp_synack_retries: SYN-ACKs a listener's child sends.
    unsigned synack_retries = 5;
    // net.ipv4.tcp_retries2: how long established data is retransmitted,
    // as Linux models it (tcp_model_timeout, ~924.6 s for 15).
    unsigned retries2 = 15;
    // tcp_orphan_retries() when net.ipv4.tcp_orphan_retries is 0: 8.
    unsigned orphan_retries = 8;

    // Fallbacks for an engine without a stack (see `tunables` below).
    // TIME_WAIT length (Linux: TCP_TIMEWAIT_LEN, fixed 60 s) and the life
    // of an orphaned FIN_WAIT2 (net.ipv4.tcp_fin_timeout).
    Duration time_wait = Duration::from_secs(60);
    Duration fin_timeout = Duration::from_secs(60);
    // net.ipv4.tcp_tw_reuse: 0 off, 1 on, 2 loopback only (never here).
    int tw_reuse = 2;
    Duration tw_reuse_delay = Duration::from_millis(1000);
    // net.ipv4.tcp_rfc1337: 0 = an in-window RST ends TIME_WAIT.
    bool rfc1337 = false;

    // RFC 7323 timestamps, RFC 2018 SACK, RFC 7323 window scaling
    // (net.ipv4.tcp_timestamps / tcp_sack / tcp_window_scaling).
    bool timestamps = true;
    bool sack = true;
    bool window_scaling = true;

    // Buffer sizes as SO_RCVBUF/SO_SNDBUF report them; half is payload
    // space (Linux's tcp_adv_win_scale = 1 split), so the default receive
    // window is 64 KiB as on Linux. Linux: tcp_rmem[1] = 131072,
    // tcp_wmem[1] = 16384, then autotuned; we start the send buffer larger
    // (the first round trips of a short connection never wait for room)
    // and autotune it from there as Linux does (tcp_sndbuf_expand).
    size_t default_rcvbuf = 131072;
    size_t default_sndbuf = 262144;
    // tcp_wmem[2]: how far the send buffer of a socket whose SO_SNDBUF was
    // never set follows the congestion window (TcpEngine::expand_sndbuf).
    // A bulk sender that stays at the default (128 KiB of payload) waits
    // for ACKs every two 64 KiB super-frames: 8.7 Gbit/s upload over TAP
    // against 14.3 with 1 MiB of payload (bench/ANALYSIS.md, round 9).
    size_t autotune_max_sndbuf = 4194304;
    // net.core.rmem_max / wmem_max: the SO_RCVBUF/SO_SNDBUF ceiling.
    size_t max_rcvbuf = 4194304;
    size_t max_sndbuf = 4194304;
    // tcp_rmem[2]: what the window scale is chosen for (Linux's
    // tcp_select_initial_window gives shift 7 for 6 MiB).
    size_t window_scale_space = 6291456;

    CongestionAlgorithm congestion = CongestionAlgorithm::Cubic;

    // Delayed ACK: TCP_ATO_MIN (40 ms) is what Linux waits first; RFC 9293
    // §3.8.6.3 allows up to 500 ms, Linux caps at 200 ms; we stay at 40 ms.
    Duration delayed_ack = Duration::from_millis(40);
    // TCP_MAX_QUICKACKS: ACKs sent at once at the start and after idle.
    unsigned max_quickacks = 16;

    // SO_KEEPALIVE defaults (net.ipv4.tcp_keepalive_time/intvl/probes).
    Duration keepalive_idle = Duration::from_secs(7200);
    Duration keepalive_interval = Duration::from_secs(75);
    unsigned keepalive_probes = 9;

    // somaxconn: listen() backlog ceiling.
    unsigned max_backlog = 4096;
    // Out-of-order ranges held per connection before segments are dropped.
    size_t max_ooo_ranges = 32;
    // The live settings of a stack (ustackctl sysctl; TcpTransport sets
    // this). When set they are the only ones read, at each use: time_wait,
    // tcp_fin_timeout, tcp_tw_reuse, tcp_tw_reuse_delay, tcp_timestamps,
    // tcp_max_tw_buckets, tcp_rfc1337, ip_local_port_range. When null, the
    // engine makes its own Tunables from time_wait, fin_timeout, tw_reuse,
    // tw_reuse_delay, rfc1337 and timestamps above (TcpEngine::own_tunables()
    // changes them later). Must outlive the engine.
    const Tunables* tunables = nullptr;

    // net.ipv4.tcp_invalid_ratelimit: one ACK per this interval in answer to
    // out-of-window segments and for challenge ACKs (RFC 5961 §7).
    Duration invalid_ratelimit = Duration::from_millis(500);
};

}  // namespace ustack::tcp
