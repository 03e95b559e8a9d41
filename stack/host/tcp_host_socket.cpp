#include "stack/host/tcp_host_socket.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <utility>
#include <vector>

#include "stack/host/protocol.h"

namespace ustack::host {

namespace {

// Pieces of the engine's receive buffer (16 KiB chunks) handed to one
// sendmsg(): up to 1 MiB, well under UIO_MAXIOV.
constexpr size_t spans_per_send = 64;

// Chunks moved per readiness event, so that one busy connection cannot
// starve the others (the loop is level-triggered: the rest comes next).
constexpr int chunks_per_event = 16;

tcp::Endpoint to_tcp(const Endpoint& e) { return tcp::Endpoint{e.addr, e.port}; }
Endpoint from_tcp(const tcp::Endpoint& e) { return Endpoint{e.addr, e.port}; }

std::string endpoint_text(const tcp::Endpoint& e) {
    return (e.addr.is_unspecified() ? std::string("0.0.0.0") : e.addr.to_string()) + ":" +
           (e.port == 0 ? std::string("*") : std::to_string(e.port));
}

// The stack option behind a (level, name) pair, nullopt when the engine
// does not have it.
std::optional<tcp::SockOpt> engine_option(int level, int name) {
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_REUSEADDR: return tcp::SockOpt::ReuseAddr;
        case SO_REUSEPORT: return tcp::SockOpt::ReusePort;
        case SO_RCVBUF:
        case SO_RCVBUFFORCE: return tcp::SockOpt::RcvBuf;
        case SO_SNDBUF:
        case SO_SNDBUFFORCE: return tcp::SockOpt::SndBuf;
        case SO_KEEPALIVE: return tcp::SockOpt::KeepAlive;
        default: return std::nullopt;
        }
    }
    if (level == IPPROTO_TCP) {
        switch (name) {
        case TCP_NODELAY: return tcp::SockOpt::NoDelay;
        case TCP_CORK: return tcp::SockOpt::Cork;
        case TCP_QUICKACK: return tcp::SockOpt::QuickAck;
        case TCP_KEEPIDLE: return tcp::SockOpt::KeepIdle;
        case TCP_KEEPINTVL: return tcp::SockOpt::KeepIntvl;
        case TCP_KEEPCNT: return tcp::SockOpt::KeepCnt;
        case TCP_USER_TIMEOUT: return tcp::SockOpt::UserTimeout;
        case TCP_MAXSEG: return tcp::SockOpt::MaxSeg;
        default: return std::nullopt;
        }
    }
    return std::nullopt;
}

}  // namespace

TcpHostSocket::TcpHostSocket(tcp::TcpEngine& engine, TcpConnectionFactory& factory, tcp::SocketId id, int host_fd,
                             int domain, uint32_t uid, int32_t pid, Role role, std::vector<uint8_t>& scratch)
    : engine_(engine),
      factory_(factory),
      scratch_(scratch),
      id_(id),
      fd_(host_fd),
      domain_(domain),
      uid_(uid),
      pid_(pid),
      role_(role) {}

TcpHostSocket::~TcpHostSocket() {
    if (lent_ != nullptr) {
        lent_->socket_gone = true;
    }
    if (!closed_) {
        engine_.abort(id_, Instant{});
    }
    if (accept_ticket_.ledger) {
        accept_ticket_.ledger->forget(accept_ticket_.ticket);
    }
    if (fd_ >= 0) {
        listener_end_going();
    }
    for (const PendingAccept& p : pending_accepts_) {
        ::close(p.app_end);
    }
    if (connect_app_end_ >= 0) {
        ::close(connect_app_end_);
    }
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

int TcpHostSocket::type() const { return SOCK_STREAM; }

uint32_t TcpHostSocket::epoll_events() const {
    if (closed_ || app_closed_) {
        return 0;
    }
    uint32_t events = 0;
    switch (role_) {
    case Role::Listening:
        // The shim writes back the ticket of each connection it accepted.
        events = EPOLLIN;
        break;
    case Role::Connected:
        if (!stack_full_ && !app_eof_ && !pair_dead_) {
            events |= EPOLLIN;
        }
        break;
    case Role::Connecting:
    case Role::Unconnected:
        break;  // hang-ups only
    }
    if (app_full_) {
        events |= EPOLLOUT;
    }
    return events;
}

// ------------------------------------------------------------ data

bool TcpHostSocket::pull_from_app(Instant now) {
    if (role_ != Role::Connected || app_eof_ || closed_) {
        return false;
    }
    bool drained = false;  // the host end was found empty (EAGAIN, or a short read)
    std::vector<uint8_t>& buf = scratch_;
    for (int i = 0; i < chunks_per_event; ++i) {
        // When the engine says how much it takes in full, read exactly that
        // much (one syscall); otherwise peek, and consume only what the
        // engine took (a full buffer, or send() reporting why it cannot).
        const size_t room = pair_dead_ ? 0 : engine_.send_room(id_);
        const bool peek = room == 0;
        const size_t want = peek ? buf.size() : std::min(room, buf.size());
        const ssize_t n = ::recv(fd_, buf.data(), want, (peek ? MSG_PEEK : 0) | MSG_DONTWAIT);
        if (n < 0) {
            if ((errno == EAGAIN || errno == EWOULDBLOCK) && (exiting_ || app_closed_)) {
                // The program is exiting, or its end is gone: this is all it wrote.
                app_eof_ = true;
            } else if (errno == ECONNRESET) {
                // unix_release_sock: the app closed its end with data it
                // never read. tcp_close() resets in that case.
                unread_at_close_ = true;
                app_eof_ = true;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                app_eof_ = true;
            }
            drained = !app_eof_ && (errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        if (n == 0) {
            app_eof_ = true;
            break;
        }
        if (pair_dead_) {
            // The connection failed: what the app still wrote is lost, as
            // in Linux (its send already saw EPIPE or the error).
            (void)!::recv(fd_, buf.data(), static_cast<size_t>(n), MSG_DONTWAIT);
            continue;
        }
        auto sent = engine_.send(id_, now, wire::ByteSpan(buf.data(), static_cast<size_t>(n)));
        if (!peek && (!sent || *sent != static_cast<size_t>(n))) {
            // send_room() promised room for all of it (nothing runs in
            // between). Were it ever broken, bytes already taken from the
            // app would be gone: fail the connection loudly rather than
            // carry on with a hole in the stream.
            std::fprintf(stderr, "ustack: internal error: the engine took %zd of %zd bytes it had room for\n",
                         sent ? static_cast<ssize_t>(*sent) : -1, n);
            fail_connection(EIO);
            return false;
        }
        if (!sent) {
            if (sent.error().value == EAGAIN) {
                stack_full_ = true;
                return false;
            }
            fail_connection(sent.error().value == EPIPE ? 0 : sent.error().value);
            continue;
        }
        if (peek && *sent > 0) {
            (void)!::recv(fd_, buf.data(), *sent, MSG_DONTWAIT);
        }
        if (*sent < static_cast<size_t>(n)) {
            stack_full_ = true;
            return false;
        }
        if (!peek && static_cast<size_t>(n) < want && !exiting_ && !app_closed_) {
            drained = true;
            break;  // a short read drained the stream for now: no EAGAIN round
        }
    }
    if (app_eof_ && app_shut_wr_ && !app_closed_ && !engine_shut_wr_ && !pair_dead_) {
        // shutdown(SHUT_WR): everything before the EOF is in the engine,
        // the FIN follows it. (An EOF without that call is the app's close:
        // the hang-up comes with it, and close() decides FIN or RST.)
        engine_shut_wr_ = true;
        (void)engine_.shutdown(id_, now, tcp::ShutdownHow::Write);
    }
    return drained;
}

bool TcpHostSocket::may_send_from_app_thread() const {
    if (role_ != Role::Connected || closed_ || app_closed_ || app_eof_ || app_shutdown_ || pair_dead_ || exiting_) {
        return false;  // the pair path knows what to say (EPIPE, the error, EAGAIN while connecting)
    }
    // A stream still sending goes through the pair, so that the app's
    // copies and the host thread's segments run on two cores at once (bulk
    // upload went 13.0 → 9.5 Gbit/s with every write on the app's thread).
    // A request sent onto an idle connection gains from the direct path:
    // its latency is the wake-up saved.
    return engine_.send_queued(id_) == 0;
}

size_t TcpHostSocket::send_from_app_thread(Instant now, const iovec* iov, size_t iovcnt) {
    // Bytes the app wrote into the pair earlier (a write the shim does not
    // see: sendfile, another process sharing the socket) go first.
    if (!pull_from_app(now) || stack_full_ || app_eof_ || pair_dead_) {
        return 0;
    }
    size_t taken = 0;
    for (size_t i = 0; i < iovcnt; ++i) {
        // Only what send_room() promises: send() then takes all of it and
        // never consumes a pending error the pair path must report.
        const size_t room = engine_.send_room(id_);
        const size_t want = std::min(room, iov[i].iov_len);
        if (want == 0) {
            if (iov[i].iov_len == 0) {
                continue;
            }
            break;
        }
        auto sent = engine_.send(id_, now, wire::ByteSpan(static_cast<const uint8_t*>(iov[i].iov_base), want));
        if (!sent || *sent != want) {
            // As in pull_from_app: bytes the app was told were taken must
            // not vanish; a broken promise fails the connection loudly.
            std::fprintf(stderr, "ustack: internal error: the engine took %zd of %zu bytes it had room for\n",
                         sent ? static_cast<ssize_t>(*sent) : -1, want);
            fail_connection(EIO);
            return taken;
        }
        taken += want;
        if (want < iov[i].iov_len) {
            break;
        }
    }
    return taken;
}

void TcpHostSocket::push_to_app(Instant now) {
    if (role_ != Role::Connected || closed_ || app_full_ || peer_eof_sent_ || pair_dead_) {
        return;
    }
    // Straight from the engine's receive buffer: sendmsg() over views of
    // its contiguous pieces, then consume exactly what the kernel took
    // (one copy, into the socketpair, where a scratch buffer made three:
    // peek, send, read again to consume).
    std::array<wire::ByteSpan, spans_per_send> spans;
    std::array<iovec, spans_per_send> iov;
    if (lent_ != nullptr && lent_->got == 0) {
        // A reader waits on the empty app end with its buffer lent: the
        // first bytes go there (errors and the FIN take the pair, below).
        auto got = engine_.recv_spans(id_, spans);
        if (got && got->bytes > 0) {
            size_t copied = 0;
            size_t span = 0;
            size_t span_offset = 0;
            for (size_t i = 0; i < lent_->iovcnt && span < got->count; ++i) {
                auto* out = static_cast<uint8_t*>(lent_->iov[i].iov_base);
                size_t room = lent_->iov[i].iov_len;
                while (room > 0 && span < got->count) {
                    const size_t n = std::min(room, spans[span].size() - span_offset);
                    std::memcpy(out, spans[span].data() + span_offset, n);
                    out += n;
                    room -= n;
                    copied += n;
                    span_offset += n;
                    if (span_offset == spans[span].size()) {
                        ++span;
                        span_offset = 0;
                    }
                }
            }
            if (copied > 0) {
                engine_.recv_consume(id_, now, copied);
                lent_->got = copied;
            }
        }
    }
    // Until the engine is empty or the host end full: nothing else would
    // call again (no packet comes while the window is closed).
    for (;;) {
        auto got = engine_.recv_spans(id_, spans);
        if (!got) {
            const int err = got.error().value;
            if (err == EAGAIN || err == ENOTCONN) {
                return;
            }
            fail_connection(err);  // ECONNRESET, ETIMEDOUT, EPIPE...
            return;
        }
        if (got->bytes == 0) {
            // Peer FIN, after every byte: the app reads EOF.
            ::shutdown(fd_, SHUT_WR);
            peer_eof_sent_ = true;
            return;
        }
        for (size_t i = 0; i < got->count; ++i) {
            iov[i] = iovec{const_cast<uint8_t*>(spans[i].data()), spans[i].size()};
        }
        msghdr msg{};
        msg.msg_iov = iov.data();
        msg.msg_iovlen = got->count;
        const ssize_t n = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                app_full_ = true;
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            if (app_closed_) {
                return;  // left unread in the engine: the close resets, as Linux
            }
            // The app shut down reading (EPIPE): Linux keeps accepting and
            // drops nothing visible; we discard what it will never read.
            engine_.recv_consume(id_, now, got->bytes);
            continue;
        }
        engine_.recv_consume(id_, now, static_cast<size_t>(n));
        if (static_cast<size_t>(n) < got->bytes) {
            app_full_ = true;
            return;
        }
    }
}

void TcpHostSocket::fail_connection(int error) {
    if (error != 0 && error_ == 0) {
        error_ = error;
    }
    if (!pair_dead_) {
        pair_dead_ = true;
        // The app reads what it has, then EOF (the shim asks for the
        // error then); its writes fail with EPIPE (the shim asks too).
        ::shutdown(fd_, SHUT_RDWR);
    }
}

void TcpHostSocket::accept_connections(Instant now) {
    (void)now;
    for (;;) {
        while (!pending_accepts_.empty()) {
            PendingAccept& p = pending_accepts_.front();
            AcceptHeader header;
            header.peer.flags = header_has_address;
            header.peer.addr = htonl(p.peer.addr.to_u32());
            header.peer.port = htons(p.peer.port);
            header.ticket = p.ticket;
            if (send_with_fd(fd_, &header, sizeof header, p.app_end, MSG_DONTWAIT) < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
                    app_full_ = true;
                    return;
                }
                // The listener's app end is gone: the connection is reset
                // when the app end we drop hangs up (its ticket unanswered).
            }
            ::close(p.app_end);
            pending_accepts_.erase(pending_accepts_.begin());
            ledger_->handed_out();
        }
        auto accepted = engine_.accept(id_);
        if (!accepted) {
            return;
        }
        if (!ledger_) {
            ledger_ = std::make_shared<AcceptLedger>(fd_);
        }
        const uint32_t ticket = ledger_->issue();
        const int app_end = factory_.adopt_connection(accepted->id, domain_, uid_, pid_, AcceptTicket{ledger_, ticket});
        if (app_end < 0) {
            ledger_->forget(ticket);
            engine_.abort(accepted->id, now);
            continue;
        }
        pending_accepts_.push_back(PendingAccept{app_end, from_tcp(accepted->peer), ticket});
    }
}

// ------------------------------------------------------------ loop hooks

void TcpHostSocket::on_app_readable(Instant now) {
    if (role_ == Role::Listening) {
        // Tickets of accepted connections (AcceptLedger).
        if (!ledger_) {
            ledger_ = std::make_shared<AcceptLedger>(fd_);
        }
        ledger_->read_answers();
        return;
    }
    pull_from_app(now);
}

void TcpHostSocket::on_app_writable(Instant now) {
    app_full_ = false;
    on_stack_event(now);
}

void TcpHostSocket::drain_app(Instant now) { pull_from_app(now); }

void TcpHostSocket::on_stack_event(Instant now) {
    if (closed_) {
        return;
    }
    bool just_connected = false;
    switch (role_) {
    case Role::Unconnected:
        return;
    case Role::Listening:
        if (!app_full_) {
            accept_connections(now);
        }
        return;
    case Role::Connecting: {
        just_connected = true;
        const std::optional<tcp::TcpState> state = engine_.state(id_);
        if (!state || *state == tcp::TcpState::Closed) {
            int error = engine_.take_error(id_);
            finish_connecting(now, error != 0 ? error : ECONNREFUSED);
        } else if (*state != tcp::TcpState::SynSent && *state != tcp::TcpState::SynReceived) {
            finish_connecting(now, 0);
        }
        if (role_ != Role::Connected) {
            return;
        }
        break;
    }
    case Role::Connected:
        break;
    }
    push_to_app(now);
    bool room_again = false;
    if (stack_full_ && engine_.readiness(id_).writable) {
        stack_full_ = false;
        room_again = true;
    }
    // The app's writes arrive through EPOLLIN (on_app_readable). Here only
    // what waited for room in the engine (EPOLLIN is off meanwhile), a
    // connection just established, or a closed app's last bytes: peeking
    // every socket on every stack event cost one recv() per open socket
    // per event, O(n²) to open n connections (bench scale).
    if ((room_again || just_connected || app_closed_) && !stack_full_ && (app_closed_ || !app_eof_)) {
        pull_from_app(now);
    }
    if (!pair_dead_ && engine_.readiness(id_).error) {
        // An error with nothing left to read (a reset while idle): the
        // recv above reported it when there was; make sure it is seen.
        const std::optional<tcp::TcpState> state = engine_.state(id_);
        if (state && *state == tcp::TcpState::Closed) {
            const int err = engine_.take_error(id_);
            if (err != 0) {
                fail_connection(err);
            }
        }
    }
    maybe_release(now);
}

void TcpHostSocket::on_app_hangup(Instant now) {
    app_hung_up_ = true;
    if (closed_ || app_closed_) {
        return;
    }
    app_closed_ = true;
    settle_accept_ticket();
    if (role_ == Role::Connected && !pair_released_) {
        pull_from_app(now);
    }
    maybe_release(now);
}

void TcpHostSocket::on_process_exit(Instant now) {
    // Inproc host at program exit: the app ends are still open (the
    // process has not closed its fds yet), so no hang-up will come. End
    // each socket as the kernel would at exit: the data written, then FIN.
    if (closed_ || app_closed_) {
        return;
    }
    exiting_ = true;
    app_closed_ = true;
    settle_accept_ticket();
    if (role_ == Role::Connected && !pair_released_) {
        pull_from_app(now);
    }
    maybe_release(now);
}

void TcpHostSocket::maybe_release(Instant now) {
    if (closed_ || !app_closed_) {
        return;
    }
    if (role_ == Role::Connected && !app_eof_ && !pair_dead_) {
        return;  // still sending what the app wrote before its close
    }
    if (unread_at_close_ || never_accepted_) {
        engine_.abort(id_, now);
    } else {
        engine_.close(id_, now);
    }
    closed_ = true;
}

void TcpHostSocket::settle_accept_ticket() {
    if (!accept_ticket_.ledger) {
        return;
    }
    // The answer to an accept is written before accept() returns, so
    // before any close of the connection: if it is not there now, nobody
    // accepted it (inet_csk_listen_stop resets such connections).
    never_accepted_ = !accept_ticket_.ledger->taken(accept_ticket_.ticket);
    accept_ticket_ = AcceptTicket{};
}

void TcpHostSocket::listener_end_going() {
    if (ledger_) {
        ledger_->listener_gone();
    }
}

// ------------------------------------------------------------ connect

void TcpHostSocket::start_connecting(int app_end) {
    role_ = Role::Connecting;
    connect_app_end_ = ::dup(app_end);
    if (connect_app_end_ < 0) {
        return;
    }
    // The app end must not poll writable before the handshake ends: fill
    // its send buffer (made minimal first, then restored). One send larger
    // than the minimal buffer fills it: unix_stream_sendmsg queues what
    // fits and returns the short count instead of EAGAIN (a send of 512
    // bytes at a time took five syscalls per connect, bench crr).
    socklen_t len = sizeof saved_app_sndbuf_;
    ::getsockopt(connect_app_end_, SOL_SOCKET, SO_SNDBUF, &saved_app_sndbuf_, &len);
    const int minimal = 1;
    ::setsockopt(connect_app_end_, SOL_SOCKET, SO_SNDBUF, &minimal, sizeof minimal);
    static const uint8_t filler[16384] = {};
    for (int i = 0; i < 16; ++i) {
        const ssize_t n = ::send(connect_app_end_, filler, sizeof filler, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0) {
            break;
        }
        filler_bytes_ += static_cast<size_t>(n);
        if (static_cast<size_t>(n) < sizeof filler) {
            break;  // full
        }
    }
}

void TcpHostSocket::end_of_caller_call() {
    if (borrowed_app_end_ < 0) {
        return;
    }
    if (role_ == Role::Connecting && connect_app_end_ < 0) {
        start_connecting(borrowed_app_end_);  // still under way: the app end must not poll writable
    }
    borrowed_app_end_ = -1;
}

void TcpHostSocket::finish_connecting(Instant now, int error) {
    (void)now;
    if (error != 0) {
        fail_connect(error);
        return;
    }
    // Take back exactly the filler: the app's first bytes come after it.
    std::vector<uint8_t>& buf = scratch_;
    size_t left = filler_bytes_;
    while (left > 0) {
        const ssize_t n = ::recv(fd_, buf.data(), std::min(left, buf.size()), MSG_DONTWAIT);
        if (n <= 0) {
            break;
        }
        left -= static_cast<size_t>(n);
    }
    filler_bytes_ = 0;
    if (connect_app_end_ >= 0) {
        // Half the doubled value is what setsockopt wants to give it back.
        const int restore = std::max(saved_app_sndbuf_ / 2, 1);
        ::setsockopt(connect_app_end_, SOL_SOCKET, SO_SNDBUF, &restore, sizeof restore);
        ::close(connect_app_end_);
        connect_app_end_ = -1;
    }
    role_ = Role::Connected;
}

void TcpHostSocket::fail_connect(int error) {
    // Linux shows a failed connect as POLLIN|POLLOUT|POLLERR|POLLHUP at
    // once. An AF_UNIX end gets a socket error (sk_err = ECONNRESET, hence
    // POLLERR) only when its peer is released with unread data in its
    // queue (unix_release_sock): so the host leaves the filler unread and
    // gives its end up, all in one step. dup3 of /dev/null over fd_
    // releases the socket and keeps the number, so the loop's maps stay
    // valid; the app's last close is then found by the liveness check
    // (pair_released()). SO_ERROR and the shim's read/write still get the
    // real error (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH) from error_.
    error_ = error;
    pair_dead_ = true;
    role_ = Role::Connected;
    filler_bytes_ = 0;
    if (connect_app_end_ < 0 && borrowed_app_end_ >= 0) {
        // Refused within a caller's call, before any filler: one unread
        // byte is what makes the release below raise POLLERR.
        const uint8_t byte = 0;
        (void)!::send(borrowed_app_end_, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    borrowed_app_end_ = -1;
    if (connect_app_end_ >= 0) {
        ::close(connect_app_end_);
        connect_app_end_ = -1;
    }
    const int placeholder = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (placeholder >= 0 && ::dup3(placeholder, fd_, O_CLOEXEC) >= 0) {
        pair_released_ = true;
    } else {
        ::shutdown(fd_, SHUT_RDWR);  // no POLLERR, but the error is still kept
    }
    if (placeholder >= 0) {
        ::close(placeholder);
    }
}

Result<void> TcpHostSocket::connect_with_app_end(Instant now, Endpoint remote, int app_end, bool fill_later) {
    if (role_ == Role::Listening) {
        return fail(EISCONN);
    }
    if (role_ == Role::Connected && pair_dead_ && error_ != 0) {
        return fail(std::exchange(error_, 0));
    }
    auto r = engine_.connect(id_, now, to_tcp(remote));
    if (!r && r.error().value == EINPROGRESS && role_ == Role::Unconnected) {
        if (app_end >= 0 && fill_later) {
            role_ = Role::Connecting;
            borrowed_app_end_ = app_end;
        } else if (app_end >= 0) {
            start_connecting(app_end);
        } else {
            role_ = Role::Connecting;
        }
        return r;
    }
    if (r && role_ == Role::Unconnected) {
        // Connected at once (not with TCP over a device, but harmless).
        role_ = Role::Connected;
    }
    return r;
}

Result<void> TcpHostSocket::connect(Instant now, std::optional<Endpoint> remote) {
    if (!remote) {
        // connect(AF_UNSPEC) on a stream socket: tcp_disconnect. Not kept
        // simple enough to be right here; refused.
        return fail(EOPNOTSUPP);
    }
    return connect_with_app_end(now, *remote, -1);
}

Result<void> TcpHostSocket::listen(Instant, int backlog) {
    if (role_ == Role::Connecting || role_ == Role::Connected) {
        return fail(EINVAL);
    }
    auto r = engine_.listen(id_, backlog);
    if (r) {
        role_ = Role::Listening;
    }
    return r;
}

Result<void> TcpHostSocket::shutdown(Instant now, int how) {
    // Called before the shim shuts its end down: from now on an EOF from
    // the app is its SHUT_WR (the FIN leaves when pull_from_app() reads
    // it, after the data), and a hang-up may be the shutdown, not a close.
    app_shutdown_ = true;
    if (how == SHUT_WR || how == SHUT_RDWR) {
        app_shut_wr_ = true;
    }
    pull_from_app(now);
    const std::optional<tcp::TcpState> state = engine_.state(id_);
    if (!state || *state == tcp::TcpState::Closed) {
        return fail(ENOTCONN);  // inet_shutdown: TCP_CLOSE
    }
    return {};
}

Result<void> TcpHostSocket::bind(Instant, Endpoint local) { return engine_.bind(id_, to_tcp(local)); }

Result<Endpoint> TcpHostSocket::local_endpoint() const {
    auto r = engine_.local_endpoint(id_);
    if (!r) {
        return fail(r.error().value);
    }
    return from_tcp(*r);
}

Result<Endpoint> TcpHostSocket::remote_endpoint() const {
    auto r = engine_.remote_endpoint(id_);
    if (!r) {
        return fail(r.error().value);
    }
    return from_tcp(*r);
}

// ------------------------------------------------------------ options

Result<void> TcpHostSocket::set_option(Instant now, int level, int name, int64_t value) {
    if (level == SOL_SOCKET && name == SO_LINGER) {
        return engine_.set_linger(id_, tcp::Linger{(value >> 32) != 0, static_cast<int>(value & 0xffffffff)});
    }
    const std::optional<tcp::SockOpt> option = engine_option(level, name);
    if (!option) {
        return fail(ENOPROTOOPT);
    }
    return engine_.set_option(id_, now, *option, static_cast<int>(value));
}

Result<int64_t> TcpHostSocket::get_option(int level, int name) {
    if (level == SOL_SOCKET) {
        switch (name) {
        case SO_ERROR: {
            if (error_ != 0) {
                return int64_t{std::exchange(error_, 0)};
            }
            return int64_t{engine_.take_error(id_)};
        }
        case SO_ACCEPTCONN:
            return int64_t{role_ == Role::Listening ? 1 : 0};
        case SO_LINGER: {
            auto l = engine_.get_linger(id_);
            if (!l) {
                return fail(l.error().value);
            }
            return encode_linger(l->on, l->seconds);
        }
        default:
            break;
        }
    }
    const std::optional<tcp::SockOpt> option = engine_option(level, name);
    if (!option) {
        return fail(ENOPROTOOPT);
    }
    auto r = engine_.get_option(id_, *option);
    if (!r) {
        return fail(r.error().value);
    }
    return int64_t{*r};
}

std::string TcpHostSocket::describe() const {
    std::string line = "tcp   ";
    const std::optional<tcp::TcpState> state = engine_.state(id_);
    if (closed_) {
        line += "CLOSED";
    } else {
        line += state ? std::string(tcp::to_string(*state)) : std::string("?");
    }
    auto info = engine_.info(id_);
    line += " " + std::to_string(info ? info->recv_queued : 0);
    auto local = engine_.local_endpoint(id_);
    auto remote = engine_.remote_endpoint(id_);
    line += " " + (local ? endpoint_text(*local) : std::string("0.0.0.0:*"));
    line += " " + (remote ? endpoint_text(*remote) : std::string("*:*"));
    line += " uid=" + std::to_string(uid_) + " pid=" + std::to_string(pid_);
    line += domain_ == AF_INET6 ? " inet6" : " inet";
    // Flow-control state, for diagnosing a stalled connection.
    for (const auto& [flag, name] : {std::pair{app_closed_, " app-closed"}, std::pair{app_full_, " app-full"},
                                     std::pair{stack_full_, " stack-full"}, std::pair{app_eof_, " app-eof"},
                                     std::pair{peer_eof_sent_, " peer-eof"}, std::pair{pair_dead_, " failed"}}) {
        if (flag) {
            line += name;
        }
    }
    return line;
}

}  // namespace ustack::host
