#include "stack/udp/udp_layer.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "stack/core/siphash.h"
#include "stack/wire/udp.h"

namespace ustack::udp {

UdpLayer::UdpLayer(UdpConfig config, ip::Ipv4Output& ip, ports::PortManager& ports, Counters& counters,
                   Random& random)
    : config_(config), ip_(ip), ports_(ports), counters_(counters), random_(random),
      reuseport_key_{random.next_u64(), random.next_u64()} {}

UdpLayer::Socket* UdpLayer::find(SocketId id) {
    return id < sockets_.size() && sockets_[id].open ? &sockets_[id] : nullptr;
}
const UdpLayer::Socket* UdpLayer::find(SocketId id) const {
    return id < sockets_.size() && sockets_[id].open ? &sockets_[id] : nullptr;
}

SocketId UdpLayer::open(SocketOwner owner) {
    SocketId id;
    if (!free_ids_.empty()) {
        id = free_ids_.back();
        free_ids_.pop_back();
    } else {
        id = static_cast<SocketId>(sockets_.size());
        sockets_.emplace_back();
    }
    sockets_[id] = Socket{};
    sockets_[id].open = true;
    sockets_[id].owner = owner;
    sockets_[id].rcvbuf = config_.default_rcvbuf;
    return id;
}

void UdpLayer::close(SocketId id) {
    Socket* socket = find(id);
    if (socket == nullptr) {
        return;
    }
    if (socket->local) {
        auto& bucket = bound_by_port_[socket->local->port];
        bucket.erase(std::remove(bucket.begin(), bucket.end(), id), bucket.end());
        if (bucket.empty()) {
            bound_by_port_.erase(socket->local->port);
        }
    }
    if (socket->reservation) {
        ports_.release(*socket->reservation);
    }
    sockets_[id] = Socket{};
    free_ids_.push_back(id);
}

ports::OwnerFlags UdpLayer::flags_of(const Socket& socket) const {
    return ports::OwnerFlags{socket.reuse_addr, socket.reuse_port, socket.owner.uid, 0};
}

void UdpLayer::take_port(SocketId id, Socket& socket, const ports::Reservation& reservation) {
    socket.reservation = reservation;
    socket.local = Endpoint{reservation.address, reservation.port};
    socket.bind_order = next_bind_order_++;
    bound_by_port_[reservation.port].push_back(id);
}

Result<void> UdpLayer::bind(SocketId id, Endpoint local) {
    Socket* socket = find(id);
    if (socket == nullptr) {
        return fail(EBADF);
    }
    // inet_bind order: address, privilege, "already bound", then the port.
    if (!local.addr.is_unspecified() && !ip_.is_local_address(local.addr)) {
        return fail(EADDRNOTAVAIL);
    }
    if (local.port != 0 && local.port < 1024 && !socket->owner.may_bind_privileged) {
        return fail(EACCES);
    }
    if (socket->local) {
        return fail(EINVAL);
    }
    // Port 0 exhaustion is EADDRINUSE here (bind), EAGAIN in autobind.
    auto reservation = ports_.bind(ports::Protocol::Udp, local.addr, local.port, flags_of(*socket));
    if (!reservation) {
        return fail(reservation.error().value);
    }
    take_port(id, *socket, *reservation);
    return {};
}

Result<void> UdpLayer::autobind(SocketId id, Socket& socket) {
    auto reservation = ports_.udp_autobind(wire::Ipv4Address::unspecified(), flags_of(socket));
    if (!reservation) {
        return fail(reservation.error().value);  // EAGAIN, as inet_autobind
    }
    take_port(id, socket, *reservation);
    return {};
}

Result<void> UdpLayer::set_reuse(SocketId id, bool reuse_addr, bool reuse_port) {
    Socket* socket = find(id);
    if (socket == nullptr) {
        return fail(EBADF);
    }
    socket->reuse_addr = reuse_addr;
    socket->reuse_port = reuse_port;
    if (socket->reservation) {
        ports_.set_flags(*socket->reservation, reuse_addr, reuse_port);
    }
    return {};
}

bool UdpLayer::reuse_addr(SocketId id) const {
    const Socket* socket = find(id);
    return socket != nullptr && socket->reuse_addr;
}

bool UdpLayer::reuse_port(SocketId id) const {
    const Socket* socket = find(id);
    return socket != nullptr && socket->reuse_port;
}

Result<void> UdpLayer::connect(SocketId id, Endpoint remote) {
    Socket* socket = find(id);
    if (socket == nullptr) {
        return fail(EBADF);
    }
    if (remote.port == 0) {
        // Linux accepts port 0 in connect for UDP but nothing can be sent;
        // refusing keeps the socket usable and the caller informed.
        return fail(EINVAL);
    }
    if (!socket->local) {
        if (auto bound = autobind(id, *socket); !bound) {
            return bound;
        }
    }
    socket->remote = remote;
    return {};
}

Result<void> UdpLayer::disconnect(SocketId id) {
    Socket* socket = find(id);
    if (socket == nullptr) {
        return fail(EBADF);
    }
    socket->remote.reset();
    return {};
}

Result<size_t> UdpLayer::send_to(SocketId id, Instant now, wire::ByteSpan data, std::optional<Endpoint> dst) {
    Socket* socket = find(id);
    if (socket == nullptr) {
        return fail(EBADF);
    }
    if (socket->error != 0) {
        return fail(std::exchange(socket->error, 0));
    }
    if (!dst) {
        if (!socket->remote) {
            return fail(EDESTADDRREQ);
        }
        dst = socket->remote;
    }
    if (dst->port == 0) {
        return fail(EINVAL);
    }
    if (data.size() > max_payload) {
        return fail(EMSGSIZE);
    }
    if (!socket->local) {
        if (auto bound = autobind(id, *socket); !bound) {
            return fail(bound.error().value);
        }
    }
    const Endpoint local = *socket->local;
    ip::Ipv4SendParams params;
    params.src = local.addr.is_unspecified() ? ip_.source_for(dst->addr) : local.addr;
    params.dst = dst->addr;
    params.protocol = static_cast<uint8_t>(wire::IpProtocol::Udp);
    const wire::UdpRepr repr{local.port, dst->port};
    auto sent = ip_.send_ipv4(now, params, wire::UdpRepr::header_len + data.size(),
                              [&](wire::MutByteSpan buf) { repr.emit(buf, params.src, params.dst, data); });
    if (!sent) {
        return fail(sent.error().value);
    }
    counters_.add(Counter::udp_datagrams_out);
    return data.size();
}

Result<RecvResult> UdpLayer::recv_from(SocketId id, wire::MutByteSpan out, bool peek) {
    Socket* socket = find(id);
    if (socket == nullptr) {
        return fail(EBADF);
    }
    // skb_recv_datagram: a pending error is reported before queued data.
    if (socket->error != 0) {
        return fail(std::exchange(socket->error, 0));
    }
    if (socket->queue.empty()) {
        return fail(EAGAIN);
    }
    Datagram& front = socket->queue.front();
    RecvResult result;
    result.datagram_len = front.data.size();
    result.copied = std::min(out.size(), front.data.size());
    result.from = front.from;
    std::memcpy(out.data(), front.data.data(), result.copied);
    if (!peek) {
        socket->queued_bytes -= front.data.size() + per_datagram_overhead;
        socket->queue.pop_front();
    }
    return result;
}

Result<Endpoint> UdpLayer::local_endpoint(SocketId id) const {
    const Socket* socket = find(id);
    if (socket == nullptr) {
        return fail(EBADF);
    }
    return socket->local.value_or(Endpoint{});
}

Result<Endpoint> UdpLayer::remote_endpoint(SocketId id) const {
    const Socket* socket = find(id);
    if (socket == nullptr) {
        return fail(EBADF);
    }
    if (!socket->remote) {
        return fail(ENOTCONN);
    }
    return *socket->remote;
}

void UdpLayer::set_rcvbuf(SocketId id, size_t bytes) {
    if (Socket* socket = find(id)) {
        socket->rcvbuf = bytes;
    }
}

bool UdpLayer::readable(SocketId id) const {
    const Socket* socket = find(id);
    return socket != nullptr && (!socket->queue.empty() || socket->error != 0);
}

size_t UdpLayer::queued_datagrams(SocketId id) const {
    const Socket* socket = find(id);
    return socket == nullptr ? 0 : socket->queue.size();
}

int UdpLayer::take_error(SocketId id) {
    Socket* socket = find(id);
    return socket == nullptr ? 0 : std::exchange(socket->error, 0);
}

void UdpLayer::enqueue(Socket& socket, const Endpoint& from, wire::ByteSpan payload) {
    const size_t charge = payload.size() + per_datagram_overhead;
    // Linux __udp_enqueue_schedule_skb: refused when the queue already
    // holds rcvbuf bytes (one datagram may overshoot, as there).
    if (socket.queued_bytes > socket.rcvbuf || (socket.queued_bytes > 0 && socket.queued_bytes + charge > socket.rcvbuf)) {
        counters_.add(Counter::drop_udp_rcvbuf_full);
        return;
    }
    socket.queue.push_back(Datagram{from, std::vector<uint8_t>(payload.begin(), payload.end())});
    socket.queued_bytes += charge;
    counters_.add(Counter::udp_datagrams_in);
}

UdpLayer::InputResult UdpLayer::input(const wire::Ipv4Repr& ip, wire::ByteSpan udp_bytes, bool broadcast,
                                      wire::L4Checksum check) {
    auto parsed = wire::parse_udp(udp_bytes, ip.src, ip.dst, check);
    if (!parsed) {
        counters_.add(parsed.error() == wire::ParseError::BadChecksum ? Counter::drop_udp_bad_checksum
                                                                      : Counter::drop_udp_malformed);
        return InputResult::Dropped;
    }
    const wire::UdpRepr& repr = parsed->repr;
    const Endpoint from{ip.src, repr.src_port};
    auto bucket = bound_by_port_.find(repr.dst_port);
    if (bucket == bound_by_port_.end()) {
        counters_.add(Counter::drop_udp_no_socket);
        return InputResult::NoSocket;
    }
    // Like udp4_lib_lookup's scoring: a socket bound to the exact address
    // beats the wildcard; a connected socket must match its peer and beats
    // an unconnected one; ties go to the most recently bound.
    Socket* best = nullptr;
    int best_score = -1;
    bool delivered = false;
    for (SocketId sid : bucket->second) {
        Socket& socket = sockets_[sid];
        int score = 0;
        if (!socket.local->addr.is_unspecified()) {
            if (!broadcast && socket.local->addr != ip.dst) {
                continue;
            }
            score += 2;
        }
        if (socket.remote) {
            if (socket.remote->addr != ip.src || socket.remote->port != repr.src_port) {
                continue;
            }
            score += 4;
        }
        if (broadcast) {
            // __udp4_lib_mcast_deliver: every matching socket gets a copy.
            enqueue(socket, from, parsed->payload);
            delivered = true;
            continue;
        }
        if (score > best_score || (score == best_score && socket.bind_order > best->bind_order)) {
            best = &socket;
            best_score = score;
        }
    }
    if (broadcast) {
        if (!delivered) {
            counters_.add(Counter::drop_udp_no_socket);
        }
        return delivered ? InputResult::Delivered : InputResult::Dropped;
    }
    if (best == nullptr) {
        counters_.add(Counter::drop_udp_no_socket);
        return InputResult::NoSocket;
    }
    if (best->reuse_port && !best->remote) {
        best = select_reuseport_member(best, bucket->second, ip, repr.src_port, repr.dst_port);
    }
    enqueue(*best, from, parsed->payload);
    return InputResult::Delivered;
}

UdpLayer::Socket* UdpLayer::select_reuseport_member(Socket* best, const std::vector<SocketId>& bucket,
                                                   const wire::Ipv4Repr& ip, uint16_t src_port, uint16_t dst_port) {
    // The group: unconnected SO_REUSEPORT sockets of the same owner bound to
    // the same address and port, in bind order (reuseport_add_sock appends).
    std::vector<Socket*> group;
    for (SocketId sid : bucket) {
        Socket& s = sockets_[sid];
        if (s.reuse_port && !s.remote && s.local->addr == best->local->addr && s.owner.uid == best->owner.uid) {
            group.push_back(&s);
        }
    }
    std::sort(group.begin(), group.end(), [](const Socket* x, const Socket* y) { return x->bind_order < y->bind_order; });
    const uint32_t words[] = {ip.src.to_u32(), src_port, ip.dst.to_u32(), dst_port};
    const uint64_t h = siphash_words(reuseport_key_, words);
    // reciprocal_scale(hash, num_socks)
    return group[static_cast<size_t>(((h & 0xffffffffu) * group.size()) >> 32)];
}

void UdpLayer::icmp_error(const wire::Ipv4Repr& quoted_ip, wire::ByteSpan quoted_payload, int error) {
    if (quoted_payload.size() < 4) {
        return;
    }
    const uint16_t src_port = wire::read_u16(quoted_payload, wire::UdpRepr::SRC_PORT.start);
    const uint16_t dst_port = wire::read_u16(quoted_payload, wire::UdpRepr::DST_PORT.start);
    auto bucket = bound_by_port_.find(src_port);
    if (bucket == bound_by_port_.end()) {
        return;
    }
    for (SocketId sid : bucket->second) {
        Socket& socket = sockets_[sid];
        if (!socket.remote || socket.remote->addr != quoted_ip.dst || socket.remote->port != dst_port) {
            continue;
        }
        if (!socket.local->addr.is_unspecified() && socket.local->addr != quoted_ip.src) {
            continue;
        }
        socket.error = error;
        counters_.add(Counter::icmp_errors_received);
        return;
    }
}

}  // namespace ustack::udp
