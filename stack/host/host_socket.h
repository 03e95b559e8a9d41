#pragma once
// One application socket as the host sees it: the host end of the app's
// socketpair on one side, a stack socket on the other. The host's event
// loop calls the on_* hooks; the control RPC calls the socket operations.
// Each transport implements it: UdpHostSocket now; TcpHostSocket when the
// TCP engine is attached (see the TODO(tcp) notes below for its shape).
//
// Contract with the loop (one thread at a time, under the host's loop
// lock: the host thread, or an inproc app thread working the loop itself,
// Host::caller_wait; no locking inside):
// - on_app_readable: the host end has messages (EPOLLIN). Read a bounded
//   number, then return; the loop is level-triggered.
// - on_app_writable: the host end has room again (EPOLLOUT, only asked for
//   while epoll_events() includes it).
// - on_stack_event: move what the stack has for the app (data, errors,
//   state changes) into the host end. Called when the socket may have
//   changed, not for every socket on every event: when the TCP engine
//   lists it (TcpEngine::take_ready: input, ICMP, timers), after an fd
//   event or an RPC on it, when it is new, and for UDP sockets on every
//   pass (the UDP layer keeps no ready list). Spurious calls are harmless;
//   a missing one is a hang, so a socket that needs another call without
//   any of those happening says so (wants_another_pass()).
// - on_app_hangup: EPOLLHUP: the last copy of the app end was closed. This
//   is close(2) of the socket.
// - finished(): the loop may destroy the object (its fd is then closed).
//
// TODO(tcp): TcpHostSocket (SOCK_STREAM socketpair for a connection,
// SOCK_SEQPACKET for a listener):
// - connection data: on_app_readable → engine.send() as far as the send
//   buffer allows (stop reading the host end when it is full: that is the
//   app's backpressure); on_stack_event → the engine's receive buffer sent
//   into the host end while it has room (recv_spans, then recv_consume of
//   what the kernel took); FIN from the peer → shutdown(host_end, SHUT_WR);
//   app shutdown(SHUT_WR) (EPOLLRDHUP on the host end) → engine.shutdown.
// - non-blocking connect: connect() returns EINPROGRESS; until the
//   handshake ends the app end must not poll writable. Before handing the
//   app end over, the host fills it from the app side (one write on the app
//   end larger than its minimal SO_SNDBUF: the kernel queues what fits) so
//   it is unwritable; on
//   ESTABLISHED the host reads and discards exactly those filler bytes and
//   the app end turns writable; on failure the host shuts the pair down and
//   keeps the error for getsockopt(SO_ERROR) (get_option) and for the
//   shim's read-returned-0 check (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH,
//   ECONNRESET).
// - listener: on_stack_event → engine.accept() while possible; for each
//   new connection create its socketpair + TcpHostSocket, and send on the
//   listener's host end one message {DatagramHeader with the peer address}
//   carrying the connection's app end in SCM_RIGHTS. The shim's
//   accept/accept4 is a recvmsg of that message (any process holding the
//   listener may take it, as with a kernel listener); poll on the listener
//   is readable exactly when a connection is queued.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "stack/core/expected.h"
#include "stack/core/time.h"
#include "stack/udp/udp_layer.h"

namespace ustack::host {

// An IPv4 address and port (udp::Endpoint and tcp::Endpoint have the same shape).
using Endpoint = udp::Endpoint;

class HostSocket {
public:
    virtual ~HostSocket() = default;

    // The host end of the socketpair (owned; closed by the destructor).
    virtual int host_fd() const = 0;
    // The epoll events the loop must watch on host_fd() right now.
    virtual uint32_t epoll_events() const = 0;

    virtual void on_app_readable(Instant now) = 0;
    virtual void on_app_writable(Instant now) = 0;
    virtual void on_stack_event(Instant now) = 0;
    virtual void on_app_hangup(Instant now) = 0;
    virtual bool finished() const = 0;
    // false: the loop stops watching host_fd() (not even for EPOLLHUP),
    // e.g. a TCP socket whose app is gone, still sending what it wrote.
    virtual bool watch_host_end() const { return true; }
    // true when an EPOLLHUP may come from the host's own shutdown of its
    // end (both directions shut) rather than from the app's last close:
    // the host then checks that the app end is really gone.
    virtual bool hangup_ambiguous() const { return false; }
    // true when a hang-up that comes right after the app closed one of its
    // fds of this socket can only be that close (then the liveness check
    // is skipped): nothing but the app's shutdown() (which the host hears
    // of first) would shut its side of the pair.
    virtual bool hangup_after_close_is_close() const { return false; }
    // true once the socket gave up its end of the pair (host_fd() is then a
    // placeholder): no epoll events come any more, and the loop learns of
    // the app's last close only by checking that the app end is gone.
    virtual bool pair_released() const { return false; }
    // true when on_stack_event() stopped with work left that no event will
    // announce (a closed app's last bytes, read in bounded chunks from an
    // end the loop no longer watches): the loop calls it again soon.
    virtual bool wants_another_pass() const { return false; }
    // The program is exiting (inproc host): end the socket as its close
    // would (a TCP connection sends what it has, then its FIN).
    virtual void on_process_exit(Instant now) { (void)now; }
    // Processes everything the app wrote so far. The host calls it before
    // every socket call of the control RPC, so that the call sees the
    // effect of the sends that preceded it (an autobind by sendto, the
    // destinations of datagrams sent before connect()).
    virtual void drain_app(Instant now) = 0;

    // Socket calls (control RPC). Linux errno values as errors.
    virtual Result<void> bind(Instant now, Endpoint local) = 0;
    // nullopt: connect(AF_UNSPEC), i.e. dissolve the association.
    virtual Result<void> connect(Instant now, std::optional<Endpoint> remote) = 0;
    virtual Result<void> listen(Instant, int /*backlog*/) { return fail(EOPNOTSUPP); }
    virtual Result<void> shutdown(Instant, int /*how*/) { return fail(EOPNOTSUPP); }
    virtual Result<Endpoint> local_endpoint() const = 0;
    virtual Result<Endpoint> remote_endpoint() const = 0;
    // SOL_SOCKET options the stack owns (SO_REUSEADDR, SO_REUSEPORT,
    // SO_RCVBUF, SO_ERROR...). ENOPROTOOPT for the others: the shim keeps
    // those itself or applies them to the app end.
    virtual Result<void> set_option(Instant now, int level, int name, int64_t value) = 0;
    virtual Result<int64_t> get_option(int level, int name) = 0;

    // One line for `ustackctl ss`.
    virtual std::string describe() const = 0;
    virtual int type() const = 0;  // SOCK_DGRAM / SOCK_STREAM
};

}  // namespace ustack::host
