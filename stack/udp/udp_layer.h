#pragma once
// UDP sockets (RFC 768; RFC 1122 §4.1). Socket calls return errno values
// as Linux's udp.c does. Port ownership here is deliberately minimal
// (overlap on the same port → EADDRINUSE); the Linux reuse rules live in
// the port manager (stack/ports), which replaces the table below.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "stack/core/counters.h"
#include "stack/core/expected.h"
#include "stack/core/random.h"
#include "stack/core/time.h"
#include "stack/ip/ipv4_output.h"
#include "stack/wire/ipv4.h"

namespace ustack::udp {

using SocketId = uint32_t;

struct Endpoint {
    wire::Ipv4Address addr;
    uint16_t port = 0;
    bool operator==(const Endpoint&) const = default;
};

struct UdpConfig {
    size_t default_rcvbuf = 212992;  // Linux net.core.rmem_default
    uint16_t ephemeral_low = 32768;  // ip_local_port_range
    uint16_t ephemeral_high = 60999;
};

struct RecvResult {
    size_t copied = 0;        // bytes written to the caller's buffer
    size_t datagram_len = 0;  // full length (> copied means truncated: MSG_TRUNC)
    Endpoint from;
};

class UdpLayer {
public:
    // Linux charges a datagram its skb truesize against SO_RCVBUF; we
    // charge payload plus this fixed overhead so a flood of tiny datagrams
    // is bounded too.
    static constexpr size_t per_datagram_overhead = 256;
    static constexpr size_t max_payload = 65535 - 20 - 8;

    UdpLayer(UdpConfig config, ip::Ipv4Output& ip, Counters& counters, Random& random);

    SocketId open();
    void close(SocketId id);
    Result<void> bind(SocketId id, Endpoint local);
    Result<void> connect(SocketId id, Endpoint remote);
    Result<void> disconnect(SocketId id);  // connect(AF_UNSPEC)
    // dst: nullopt for a connected socket's peer.
    Result<size_t> send_to(SocketId id, Instant now, wire::ByteSpan data, std::optional<Endpoint> dst);
    Result<RecvResult> recv_from(SocketId id, wire::MutByteSpan out, bool peek = false);
    Result<Endpoint> local_endpoint(SocketId id) const;
    Result<Endpoint> remote_endpoint(SocketId id) const;  // ENOTCONN when unconnected
    void set_rcvbuf(SocketId id, size_t bytes);
    bool readable(SocketId id) const;  // a datagram or an error is waiting
    size_t queued_datagrams(SocketId id) const;
    // Takes the pending socket error (SO_ERROR), 0 when none.
    int take_error(SocketId id);

    enum class InputResult { Delivered, NoSocket, Dropped };
    // A UDP packet for a local address. NoSocket: the stack answers with
    // ICMP port unreachable (for unicast only).
    InputResult input(const wire::Ipv4Repr& ip, wire::ByteSpan udp_bytes, bool broadcast);
    // An ICMP error quoting one of our datagrams. Linux reports it only on
    // connected sockets (without IP_RECVERR), matching the full 4-tuple.
    void icmp_error(const wire::Ipv4Repr& quoted_ip, wire::ByteSpan quoted_payload, int error);

private:
    struct Datagram {
        Endpoint from;
        std::vector<uint8_t> data;
    };
    struct Socket {
        bool open = false;
        std::optional<Endpoint> local;  // set once bound (explicitly or automatically)
        std::optional<Endpoint> remote;
        std::deque<Datagram> queue;
        size_t queued_bytes = 0;
        size_t rcvbuf = 0;
        int error = 0;
        uint64_t bind_order = 0;
    };
    Socket* find(SocketId id);
    const Socket* find(SocketId id) const;
    bool port_conflicts(uint16_t port, wire::Ipv4Address addr, SocketId self) const;
    Result<void> autobind(SocketId id, Socket& socket);
    void enqueue(Socket& socket, const Endpoint& from, wire::ByteSpan payload);

    UdpConfig config_;
    ip::Ipv4Output& ip_;
    Counters& counters_;
    Random& random_;
    std::vector<Socket> sockets_;                                       // indexed by SocketId
    std::vector<SocketId> free_ids_;
    std::unordered_map<uint16_t, std::vector<SocketId>> bound_by_port_;  // port → sockets
    uint64_t next_bind_order_ = 1;
};

}  // namespace ustack::udp
