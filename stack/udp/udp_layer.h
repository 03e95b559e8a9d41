#pragma once
// UDP sockets (RFC 768; RFC 1122 §4.1). Socket calls return errno values
// as Linux's udp.c does. Which socket may own a port is the port
// manager's decision (SO_REUSEADDR/SO_REUSEPORT rules); this layer keeps a
// port → sockets map only to deliver datagrams.
#include <array>
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
#include "stack/ports/port_manager.h"
#include "stack/wire/checksum.h"
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
};

// Who opened the socket: the uid (SO_REUSEPORT groups are per user) and
// whether it may bind ports below 1024 (CAP_NET_BIND_SERVICE).
struct SocketOwner {
    uint32_t uid = 0;
    bool may_bind_privileged = true;
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

    UdpLayer(UdpConfig config, ip::Ipv4Output& ip, ports::PortManager& ports, Counters& counters, Random& random);

    SocketId open(SocketOwner owner = {});
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
    // SO_REUSEADDR / SO_REUSEPORT: before or after bind; after, they count
    // at the next check.
    Result<void> set_reuse(SocketId id, bool reuse_addr, bool reuse_port);
    bool reuse_addr(SocketId id) const;
    bool reuse_port(SocketId id) const;
    bool readable(SocketId id) const;  // a datagram or an error is waiting
    size_t queued_datagrams(SocketId id) const;
    // Takes the pending socket error (SO_ERROR), 0 when none.
    int take_error(SocketId id);

    enum class InputResult { Delivered, NoSocket, Dropped };
    // A UDP packet for a local address. NoSocket: the stack answers with
    // ICMP port unreachable (for unicast only).
    // `check`: trusted when the device vouched for the checksum (not summed).
    InputResult input(const wire::Ipv4Repr& ip, wire::ByteSpan udp_bytes, bool broadcast,
                      wire::L4Checksum check = wire::L4Checksum::verify);
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
        SocketOwner owner;
        bool reuse_addr = false;
        bool reuse_port = false;
        std::optional<ports::Reservation> reservation;
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
    ports::OwnerFlags flags_of(const Socket& socket) const;
    void take_port(SocketId id, Socket& socket, const ports::Reservation& reservation);
    Result<void> autobind(SocketId id, Socket& socket);
    // SO_REUSEPORT: picks one member of the group `best` belongs to by a
    // keyed hash of the 4-tuple (reuseport_select_sock).
    Socket* select_reuseport_member(Socket* best, const std::vector<SocketId>& bucket, const wire::Ipv4Repr& ip,
                                    uint16_t src_port, uint16_t dst_port);
    void enqueue(Socket& socket, const Endpoint& from, wire::ByteSpan payload);

    UdpConfig config_;
    ip::Ipv4Output& ip_;
    ports::PortManager& ports_;
    Counters& counters_;
    Random& random_;
    std::vector<Socket> sockets_;                                       // indexed by SocketId
    std::vector<SocketId> free_ids_;
    std::unordered_map<uint16_t, std::vector<SocketId>> bound_by_port_;  // port → sockets
    uint64_t next_bind_order_ = 1;
    std::array<uint64_t, 2> reuseport_key_{};
};

}  // namespace ustack::udp
