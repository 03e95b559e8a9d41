#pragma once
// The bridge between one app TCP socket and one TcpEngine socket.
//
// The app's fd is one end of an AF_UNIX SOCK_STREAM socketpair, whatever
// the socket's role (the design note proposed SOCK_SEQPACKET for
// listeners; one stream pair for every role is simpler and as exact: a
// socket bound first and then listening or connecting keeps its pair, so
// no second swap of the app's fd, and a stream recvmsg never reads past a
// message carrying fds, so one accept takes exactly one 8-byte header with
// its fd even when several processes accept on the same listener).
//
// Roles:
// - Unconnected (bound, or just created): nothing flows.
// - Connecting (SYN sent): the host holds a copy of the app end whose
//   send buffer it filled (filler bytes, written with a minimal SO_SNDBUF)
//   so that the app end does not poll writable before the handshake ends.
//   On ESTABLISHED the host reads exactly the filler and the app end turns
//   writable; on failure too, and the pair is shut down with the error
//   kept for SO_ERROR and for the shim's check when a read returns 0.
// - Connected: bytes both ways. App → stack: peek what the host end holds,
//   engine.send(), consume what the engine took (the app's backpressure is
//   the engine's send buffer: the host stops reading when it is full).
//   Stack → app: engine.recv(peek), write into the host end, consume what
//   it took (when the host end is full, the engine's window closes). Peer
//   FIN → shutdown(host end, SHUT_WR) after the data: the app reads EOF.
//   RST or a timeout → the error is kept, the pair shut down both ways.
//   The app's shutdown(SHUT_WR) on its end → EOF here after its data →
//   engine.shutdown(Write): the FIN follows the last byte.
// - Listening: engine.accept() while the host end has room; each
//   connection gets its own pair, and its app end travels to the listener's
//   app end in SCM_RIGHTS with a 16-byte AcceptHeader (peer address and a
//   ticket; the shim's accept() writes the ticket back, AcceptLedger). Any
//   process holding the listener may take it (fork, nginx workers).
//
// Close: the last app copy closed = EPOLLHUP on the host end. The host
// stops watching the fd, sends on what the app wrote last (as the engine's
// send buffer allows), then engine.close(): FIN, or RST when received
// data was never read (SO_LINGER {1,0} too), as tcp_close(), or when the
// program never accepted the connection (its ticket did not come back: it
// went with the listener or the process), as inet_csk_listen_stop().
#include <sys/types.h>
#include <sys/uio.h>

#include <cstdint>
#include <utility>
#include <vector>
#include <string>

#include "stack/host/accept_ledger.h"
#include "stack/host/host_socket.h"
#include "stack/tcp/tcp_engine.h"

namespace ustack::host {

// What a listener needs from the host to hand out an accepted connection.
class TcpConnectionFactory {
public:
    virtual ~TcpConnectionFactory() = default;
    // Creates the socketpair and the host socket of an accepted engine
    // socket, which keeps `ticket` (see AcceptLedger); returns the app end
    // (the caller owns it) or -errno.
    virtual int adopt_connection(tcp::SocketId id, int domain, uint32_t uid, int32_t pid, AcceptTicket ticket) = 0;
};

class TcpHostSocket final : public HostSocket {
public:
    enum class Role : uint8_t { Unconnected, Connecting, Connected, Listening };

    // Takes ownership of host_fd (non-blocking). `scratch` is the host's
    // buffer for moving app bytes (shared by its sockets: one thread at a
    // time works the loop, whichever thread it is).
    TcpHostSocket(tcp::TcpEngine& engine, TcpConnectionFactory& factory, tcp::SocketId id, int host_fd, int domain,
                  uint32_t uid, int32_t pid, Role role, std::vector<uint8_t>& scratch);
    ~TcpHostSocket() override;

    TcpHostSocket(const TcpHostSocket&) = delete;
    TcpHostSocket& operator=(const TcpHostSocket&) = delete;

    int host_fd() const override { return fd_; }
    uint32_t epoll_events() const override;
    bool watch_host_end() const override { return !closed_ && !app_closed_; }
    bool hangup_ambiguous() const override { return peer_eof_sent_ || pair_dead_ || app_shutdown_; }
    // The host shut only its writing side (the peer's FIN): the app's side
    // closes only with its last fd or a shutdown() it would have told us of.
    bool hangup_after_close_is_close() const override { return !pair_dead_ && !app_shutdown_; }
    bool pair_released() const override { return pair_released_; }
    // The app closed with more written than one pass reads, and the
    // engine has room: nothing else would wake us for the rest.
    bool wants_another_pass() const override {
        return !closed_ && app_closed_ && role_ == Role::Connected && !app_eof_ && !stack_full_ && !pair_dead_ &&
               !pair_released_;
    }

    void on_app_readable(Instant now) override;
    void on_app_writable(Instant now) override;
    void on_stack_event(Instant now) override;
    void on_app_hangup(Instant now) override;
    void on_process_exit(Instant now) override;
    bool finished() const override { return closed_; }
    // A finished socket whose app end is gone: hands over the host end,
    // for the host to close when it suits (-1: the destructor closes it).
    // The host end back to whoever gave it (a pair the shim keeps after a
    // failed adoption, Host::caller_adopt): the destructor leaves it open.
    int release_host_fd() {
        listener_end_going();
        return std::exchange(fd_, -1);
    }
    int take_host_fd_if_app_gone() {
        if (!app_hung_up_ || fd_ < 0) {
            return -1;
        }
        listener_end_going();
        return std::exchange(fd_, -1);
    }
    void drain_app(Instant now) override;

    Result<void> bind(Instant now, Endpoint local) override;
    Result<void> connect(Instant now, std::optional<Endpoint> remote) override;
    // connect() with a copy of the app end (the RPC's passed fd, or the new
    // pair's app end): the host fills it while the handshake runs. The
    // result is EINPROGRESS in the normal case (Reply.value for the shim).
    // fill_later (a call on the app's thread, Host::caller_call): app_end
    // is only borrowed for the call, and the filler is written at its end
    // by end_of_caller_call(), only if the handshake is still under way:
    // a local peer answers the SYN within the call, and nobody can poll an
    // end the call has not returned yet.
    Result<void> connect_with_app_end(Instant now, Endpoint remote, int app_end, bool fill_later = false);
    void end_of_caller_call();
    // An accepted connection on its way to the program through its
    // listener's pair: if its app end closes before the ticket comes back,
    // the program never took it, and it is reset.
    void await_accept(AcceptTicket ticket) { accept_ticket_ = std::move(ticket); }
    // Established, with a working pair (for reply_connected).
    bool connected() const { return role_ == Role::Connected && !pair_dead_ && !closed_; }
    Result<void> listen(Instant now, int backlog) override;
    Result<void> shutdown(Instant now, int how) override;
    Result<Endpoint> local_endpoint() const override;
    Result<Endpoint> remote_endpoint() const override;
    Result<void> set_option(Instant now, int level, int name, int64_t value) override;
    Result<int64_t> get_option(int level, int name) override;
    std::string describe() const override;
    int type() const override;

    // Inproc, on the app's thread (Host::caller_send): a send taken
    // straight into the engine instead of through the pair, when the
    // connection is healthy and the pair holds nothing the app wrote
    // before (pulled first, so the byte order is kept). Returns the bytes
    // taken, at most what the engine has room for; 0 when none were.
    // Inproc, on the app's thread (Host::caller_wait): a reader blocked on
    // an empty app end lends its buffer; the next bytes the engine has for
    // the app are copied straight into it (push_to_app) instead of going
    // through the pair (one copy and two syscalls fewer), the rest behind
    // them into the pair as usual. `got` says how many; `socket_gone` is
    // set if the socket is destroyed meanwhile (the lender must not touch
    // it then).
    struct LentBuffer {
        const iovec* iov = nullptr;
        size_t iovcnt = 0;
        size_t got = 0;
        bool socket_gone = false;
    };
    void lend_read_buffer(LentBuffer* buffer) { lent_ = buffer; }

    // Call only when may_send_from_app_thread() (which changes nothing).
    size_t send_from_app_thread(Instant now, const iovec* iov, size_t iovcnt);
    bool may_send_from_app_thread() const;

    Result<tcp::TcpInfo> info() const { return engine_.info(id_); }
    tcp::SocketId id() const { return id_; }
    Role role() const { return role_; }

    // SO_LINGER travels as one int64: on << 32 | seconds.
    static int64_t encode_linger(bool on, int seconds) {
        return (on ? (int64_t{1} << 32) : 0) | static_cast<uint32_t>(seconds);
    }

private:
    void start_connecting(int app_end);
    void fail_connect(int error);  // the handshake failed: the app end shows POLLERR
    void finish_connecting(Instant now, int error);
    // app → engine; true when it found the host end empty.
    bool pull_from_app(Instant now);
    void push_to_app(Instant now);     // engine → app
    void accept_connections(Instant now);
    void fail_connection(int error);   // keep the error, shut the pair down
    void maybe_release(Instant now);   // app gone and everything sent: engine.close()
    void settle_accept_ticket();       // the app end is gone: was it ever accepted?
    void listener_end_going();         // a listener's host end leaves us: last answers

    tcp::TcpEngine& engine_;
    TcpConnectionFactory& factory_;
    std::vector<uint8_t>& scratch_;
    tcp::SocketId id_;
    int fd_;
    int domain_;
    uint32_t uid_;
    int32_t pid_;
    Role role_;

    int connect_app_end_ = -1;    // Connecting: our copy of the app end
    int borrowed_app_end_ = -1;   // Connecting, during a caller's call: its app end (not ours)
    LentBuffer* lent_ = nullptr;  // a blocked reader's buffer (lend_read_buffer)
    size_t filler_bytes_ = 0;     // written into it, read back at the end
    int saved_app_sndbuf_ = 0;    // its SO_SNDBUF before we shrank it

    int error_ = 0;               // for SO_ERROR / the shim's EOF check
    bool stack_full_ = false;     // engine send buffer full: stop reading the app
    bool app_full_ = false;       // host end full: wait for EPOLLOUT
    bool app_eof_ = false;        // the app shut down writing (or closed)
    bool app_shutdown_ = false;   // the app called shutdown() (any how)
    bool app_shut_wr_ = false;    // ... with SHUT_WR or SHUT_RDWR
    bool engine_shut_wr_ = false; // engine.shutdown(Write) done
    bool peer_eof_sent_ = false;  // shutdown(host end, SHUT_WR) done
    bool pair_dead_ = false;      // pair shut down after a failure
    bool pair_released_ = false;  // host end given up (a failed connect): fd_ is /dev/null
    bool app_closed_ = false;     // EPOLLHUP: the last app copy is gone (or the program exits)
    bool app_hung_up_ = false;    // EPOLLHUP itself: no app end is left open
    bool exiting_ = false;        // inproc program exit: EAGAIN from the app is its end
    bool unread_at_close_ = false;  // the app closed with data unread: RST
    bool never_accepted_ = false;   // its app end went unaccepted (listener closed): RST
    bool closed_ = false;         // engine handle released

    struct PendingAccept {
        int app_end;
        Endpoint peer;
        uint32_t ticket;
    };
    // Rarely non-empty (a listener whose app end is full): a vector, since
    // an empty std::deque allocates ~600 bytes, for every connection.
    std::vector<PendingAccept> pending_accepts_;
    std::shared_ptr<AcceptLedger> ledger_;  // Listening: the tickets of what it handed out
    AcceptTicket accept_ticket_;            // accepted connection: its listener's ticket
};

}  // namespace ustack::host
