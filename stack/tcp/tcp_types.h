#pragma once
// Value types of the TCP engine's socket API: handles, endpoints, states,
// options, readiness. No behaviour here.
#include <cstdint>
#include <optional>
#include <string_view>

#include "stack/core/time.h"
#include "stack/ports/port_manager.h"
#include "stack/wire/ipv4_address.h"
#include "stack/wire/seq.h"

namespace ustack::tcp {

// A socket handle, valid from open() until close()/abort().
using SocketId = uint32_t;

// What a socket (or TIME_WAIT record) holds of its local port: its
// reservation in the stack's PortManager, kept to change or release it.
using PortLease = ports::Reservation;

struct Endpoint {
    wire::Ipv4Address addr;
    uint16_t port = 0;
    bool operator==(const Endpoint&) const = default;
};

// RFC 9293 §3.3.2 connection states (Linux's TCP_* names in comments).
enum class TcpState : uint8_t {
    Closed,       // TCP_CLOSE
    Listen,       // TCP_LISTEN
    SynSent,      // TCP_SYN_SENT
    SynReceived,  // TCP_SYN_RECV
    Established,  // TCP_ESTABLISHED
    FinWait1,     // TCP_FIN_WAIT1
    FinWait2,     // TCP_FIN_WAIT2
    CloseWait,    // TCP_CLOSE_WAIT
    Closing,      // TCP_CLOSING
    LastAck,      // TCP_LAST_ACK
    TimeWait,     // TCP_TIME_WAIT
};

std::string_view to_string(TcpState state);

// shutdown(2) `how`: SHUT_RD, SHUT_WR, SHUT_RDWR.
enum class ShutdownHow : uint8_t { Read, Write, Both };

// Integer socket options, setsockopt(2)/getsockopt(2) style. Values and
// units are Linux's: booleans 0/1, TCP_KEEPIDLE/INTVL in seconds,
// TCP_USER_TIMEOUT in milliseconds, buffer sizes in bytes (SO_RCVBUF and
// SO_SNDBUF read back doubled, as Linux reports them).
enum class SockOpt : uint8_t {
    NoDelay,      // TCP_NODELAY
    Cork,         // TCP_CORK
    QuickAck,     // TCP_QUICKACK
    RcvBuf,       // SO_RCVBUF
    SndBuf,       // SO_SNDBUF
    KeepAlive,    // SO_KEEPALIVE
    KeepIdle,     // TCP_KEEPIDLE
    KeepIntvl,    // TCP_KEEPINTVL
    KeepCnt,      // TCP_KEEPCNT
    UserTimeout,  // TCP_USER_TIMEOUT
    MaxSeg,       // TCP_MAXSEG (read: the current send MSS)
    ReuseAddr,    // SO_REUSEADDR
    ReusePort,    // SO_REUSEPORT
    // IP_BIND_ADDRESS_NO_PORT: bind(addr, port 0) takes only the address;
    // the port is chosen by connect(), which may share it among 4-tuples.
    BindAddressNoPort,
};

// SO_LINGER.
struct Linger {
    bool on = false;
    int seconds = 0;
    bool operator==(const Linger&) const = default;
};

// What tcp_poll() reports (EPOLLIN, EPOLLOUT, EPOLLHUP, EPOLLRDHUP, EPOLLERR).
struct Readiness {
    bool readable = false;
    bool writable = false;
    bool hup = false;
    bool rdhup = false;
    bool error = false;
    bool operator==(const Readiness&) const = default;
};

struct Accepted {
    SocketId id = 0;
    Endpoint peer;
};

// A snapshot of one connection, like struct tcp_info (tests, ustackctl ss).
struct TcpInfo {
    TcpState state = TcpState::Closed;
    Endpoint local;
    Endpoint remote;
    wire::SeqNumber iss;
    wire::SeqNumber irs;
    wire::SeqNumber snd_una;
    wire::SeqNumber snd_nxt;
    wire::SeqNumber rcv_nxt;
    uint32_t snd_wnd = 0;       // bytes, scaled
    uint32_t rcv_wnd = 0;       // bytes left of what we advertised
    uint32_t snd_mss = 0;       // payload bytes per full segment
    uint32_t adv_mss = 0;       // MSS we announced
    uint8_t snd_wscale = 0;
    uint8_t rcv_wscale = 0;
    bool timestamps = false;
    uint32_t ts_recent = 0;     // the peer's last TSval we keep (RFC 7323 TS.Recent), 0 without timestamps
    bool sack = false;
    bool window_scaling = false;
    uint32_t cwnd = 0;          // bytes
    uint32_t ssthresh = 0;      // bytes
    uint32_t bytes_in_flight = 0;
    Duration rto;
    Duration srtt;
    unsigned retransmits = 0;   // consecutive timeouts of the current head (icsk_retransmits)
    unsigned backoff = 0;
    unsigned probes_out = 0;    // keepalive or zero-window probes without answer
    bool in_recovery = false;
    size_t send_queued = 0;     // bytes written, not yet acknowledged
    size_t recv_queued = 0;     // bytes readable
    size_t ooo_ranges = 0;      // out-of-order ranges held
};

}  // namespace ustack::tcp
