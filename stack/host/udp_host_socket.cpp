#include "stack/host/udp_host_socket.h"

#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "stack/host/protocol.h"

namespace ustack::host {

namespace {

// Messages read from the app per readiness event, so that one busy socket
// cannot starve the others (epoll is level-triggered: the rest comes next).
constexpr int messages_per_event = 64;

// Errors that only ICMP (or ARP failure) produces: the socket's pending
// error, which send_to returned instead of sending. The app learns it on
// its next receive, as Linux would have told it on this send.
bool is_socket_error(int error) {
    return error == ECONNREFUSED || error == EHOSTUNREACH || error == EHOSTDOWN || error == ENETUNREACH ||
           error == EPROTO || error == ENOPROTOOPT;
}

std::string endpoint_text(const Endpoint& e, bool wildcard_port) {
    std::string addr = e.addr.is_unspecified() ? "0.0.0.0" : e.addr.to_string();
    return addr + ":" + (wildcard_port && e.port == 0 ? std::string("*") : std::to_string(e.port));
}

}  // namespace

UdpHostSocket::UdpHostSocket(udp::UdpLayer& udp, udp::SocketId id, int host_fd, int domain, uint32_t uid,
                             int32_t pid, std::vector<uint8_t>& scratch)
    : udp_(udp), scratch_(scratch), id_(id), fd_(host_fd), domain_(domain), uid_(uid), pid_(pid) {}

UdpHostSocket::~UdpHostSocket() {
    if (!closed_) {
        udp_.close(id_);
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

int UdpHostSocket::type() const { return SOCK_DGRAM; }

uint32_t UdpHostSocket::epoll_events() const {
    if (closed_) {
        return 0;
    }
    // EPOLLHUP (the last app copy closed) is always reported. Not
    // EPOLLRDHUP: after the app's shutdown(SHUT_WR) it would stay raised.
    uint32_t events = 0;
    if (!app_write_shut_) {
        events |= EPOLLIN;
    }
    if (app_full_) {
        events |= EPOLLOUT;
    }
    return events;
}

void UdpHostSocket::on_app_readable(Instant now) {
    std::vector<uint8_t>& buf = scratch_;
    for (int i = 0; i < messages_per_event && !closed_; ++i) {
        const ssize_t n = ::recv(fd_, buf.data(), buf.size(), MSG_DONTWAIT);
        if (n < 0) {
            return;  // EAGAIN, or an error the hang-up will follow
        }
        if (n == 0) {
            // End of stream without a hang-up: the app shut down writing.
            app_write_shut_ = true;
            return;
        }
        if (static_cast<size_t>(n) < sizeof(DatagramHeader)) {
            ++malformed_;
            continue;
        }
        DatagramHeader header;
        std::memcpy(&header, buf.data(), sizeof header);
        if (header.kind != static_cast<uint8_t>(DatagramKind::Data)) {
            ++malformed_;
            continue;
        }
        std::optional<Endpoint> dst;
        if ((header.flags & header_has_address) != 0) {
            dst = Endpoint{wire::Ipv4Address(ntohl(header.addr)), ntohs(header.port)};
        }
        const wire::ByteSpan payload(buf.data() + sizeof header, static_cast<size_t>(n) - sizeof header);
        auto sent = udp_.send_to(id_, now, payload, dst);
        if (!sent && is_socket_error(sent.error().value) && pending_error_ == 0) {
            pending_error_ = sent.error().value;
        }
    }
}

void UdpHostSocket::on_app_writable(Instant now) {
    app_full_ = false;
    on_stack_event(now);
}

bool UdpHostSocket::deliver_error(int error) {
    DatagramHeader header;
    header.kind = static_cast<uint8_t>(DatagramKind::Error);
    header.addr = static_cast<uint32_t>(error);
    const ssize_t n = ::send(fd_, &header, sizeof header, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
        app_full_ = true;
        return false;
    }
    return true;  // sent, or the app can no longer receive (EPIPE): dropped
}

void UdpHostSocket::on_stack_event(Instant) {
    if (closed_ || app_full_) {
        return;
    }
    std::vector<uint8_t>& buf = scratch_;
    for (;;) {
        if (pending_error_ != 0) {
            if (!deliver_error(pending_error_)) {
                return;
            }
            pending_error_ = 0;
        }
        if (!udp_.readable(id_)) {
            return;
        }
        // Peek first: the datagram leaves the stack only once the app end took it.
        auto got = udp_.recv_from(id_, wire::MutByteSpan(buf.data() + sizeof(DatagramHeader), 65536), true);
        if (!got) {
            if (got.error().value != EAGAIN) {
                pending_error_ = got.error().value;  // taken from the stack: ours to deliver now
                continue;
            }
            return;
        }
        DatagramHeader header;
        header.flags = header_has_address;
        header.port = htons(got->from.port);
        header.addr = htonl(got->from.addr.to_u32());
        std::memcpy(buf.data(), &header, sizeof header);
        const ssize_t n = ::send(fd_, buf.data(), sizeof header + got->copied, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
            app_full_ = true;
            return;
        }
        // Sent, or undeliverable (the app shut down reading: EPIPE): either
        // way the datagram is done.
        uint8_t discard;
        (void)udp_.recv_from(id_, wire::MutByteSpan(&discard, 1), false);
    }
}

void UdpHostSocket::on_app_hangup(Instant) {
    if (closed_) {
        return;
    }
    udp_.close(id_);
    closed_ = true;
}

Result<void> UdpHostSocket::bind(Instant, Endpoint local) { return udp_.bind(id_, local); }

void UdpHostSocket::drain_app(Instant now) {
    for (int rounds = 0; rounds < 1024 && !closed_ && !app_write_shut_; ++rounds) {
        uint8_t probe;
        if (::recv(fd_, &probe, 1, MSG_DONTWAIT | MSG_PEEK) < 0) {
            break;
        }
        on_app_readable(now);
    }
}

Result<void> UdpHostSocket::connect(Instant, std::optional<Endpoint> remote) {
    // (The host drained the app's earlier datagrams: they went out to their
    // own destinations before the association changes.)
    if (!remote) {
        return udp_.disconnect(id_);
    }
    return udp_.connect(id_, *remote);
}

Result<Endpoint> UdpHostSocket::local_endpoint() const { return udp_.local_endpoint(id_); }

Result<Endpoint> UdpHostSocket::remote_endpoint() const { return udp_.remote_endpoint(id_); }

void UdpHostSocket::set_reported_rcvbuf(int64_t value) {
    rcvbuf_ = std::max<int64_t>(value, min_rcvbuf);
    udp_.set_rcvbuf(id_, static_cast<size_t>(rcvbuf_));
}

Result<void> UdpHostSocket::set_option(Instant, int level, int name, int64_t value) {
    if (level != SOL_SOCKET) {
        return fail(ENOPROTOOPT);
    }
    switch (name) {
    case SO_REUSEADDR:
        return udp_.set_reuse(id_, value != 0, udp_.reuse_port(id_));
    case SO_REUSEPORT:
        return udp_.set_reuse(id_, udp_.reuse_addr(id_), value != 0);
    case SO_RCVBUF:
    case SO_RCVBUFFORCE: {
        // sock_setsockopt: the request is capped by rmem_max (not for
        // SO_RCVBUFFORCE), then doubled for the kernel's bookkeeping.
        int64_t v = std::max<int64_t>(value, 0);
        if (name == SO_RCVBUF) {
            v = std::min(v, rmem_max);
        }
        set_reported_rcvbuf(std::min<int64_t>(v * 2, INT32_MAX));
        return {};
    }
    default:
        return fail(ENOPROTOOPT);
    }
}

Result<int64_t> UdpHostSocket::get_option(int level, int name) {
    if (level != SOL_SOCKET) {
        return fail(ENOPROTOOPT);
    }
    switch (name) {
    case SO_REUSEADDR:
        return int64_t{udp_.reuse_addr(id_) ? 1 : 0};
    case SO_REUSEPORT:
        return int64_t{udp_.reuse_port(id_) ? 1 : 0};
    case SO_RCVBUF:
        return rcvbuf_;
    case SO_ERROR:
        if (pending_error_ != 0) {
            return int64_t{std::exchange(pending_error_, 0)};
        }
        return int64_t{udp_.take_error(id_)};
    default:
        return fail(ENOPROTOOPT);
    }
}

std::string UdpHostSocket::describe() const {
    if (closed_) {
        return "udp   CLOSED uid=" + std::to_string(uid_) + " pid=" + std::to_string(pid_);
    }
    auto local = udp_.local_endpoint(id_);
    auto remote = udp_.remote_endpoint(id_);
    std::string line = "udp   ";
    line += remote ? "ESTAB " : "UNCONN";
    line += " " + std::to_string(udp_.queued_datagrams(id_));
    line += " " + (local ? endpoint_text(*local, false) : std::string("0.0.0.0:0"));
    line += " " + (remote ? endpoint_text(*remote, false) : std::string("*:*"));
    line += " uid=" + std::to_string(uid_) + " pid=" + std::to_string(pid_);
    line += domain_ == AF_INET6 ? " inet6" : " inet";
    if (udp_.reuse_addr(id_)) {
        line += " reuseaddr";
    }
    if (udp_.reuse_port(id_)) {
        line += " reuseport";
    }
    if (malformed_ != 0) {
        line += " malformed=" + std::to_string(malformed_);
    }
    return line;
}

}  // namespace ustack::host
