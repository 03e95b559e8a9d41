// Closing: shutdown(2) (inet_shutdown, tcp_shutdown), close(2) (tcp_close
// with its RST-on-unread-data and SO_LINGER rules), abort, listener stop
// (inet_csk_listen_stop), state changes (tcp_set_state) and the end of a
// connection (tcp_done), entering TIME_WAIT (tcp_time_wait).
#include <algorithm>
#include <cerrno>

#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {

namespace flags = wire::tcp_flags;

void TcpEngine::set_state(Conn& c, TcpState state) {
    const TcpState old = c.state;
    if (state == old) {
        return;
    }
    if (state == TcpState::Closed) {
        if (old == TcpState::Established || old == TcpState::CloseWait) {
            ++counters_.established_resets;  // TCP_MIB_ESTABRESETS
        }
        if (old == TcpState::SynSent || old == TcpState::SynReceived) {
            ++counters_.attempt_fails;
        }
        unhash(c);
        // inet_put_port() unless bind() chose the port (SOCK_BINDPORT_LOCK).
        if (c.lease) {
            if (!c.port_locked) {
                ports_.release(*c.lease);
                c.lease.reset();
            } else if (c.lease->state != ports::OwnerState::Bound && !c.orphan) {
                ports_.set_state(*c.lease, ports::OwnerState::Bound);
            }
        }
    }
    c.state = state;
}

void TcpEngine::tcp_done(Conn& c) {
    // tcp_done(): CLOSED, both directions shut, timers off; an orphan is
    // freed (at the end of the current entry point).
    set_state(c, TcpState::Closed);
    c.rcv_shutdown = true;
    c.snd_shutdown = true;
    c.retransmit_at.reset();
    c.persist_at.reset();
    c.delack_at.reset();
    c.keepalive_at.reset();
    c.finwait2_at.reset();
    c.ack_pending = false;
    c.ack_now = false;
    if (c.orphan) {
        dead_.push_back(c.id);
    }
}

void TcpEngine::done_with_error(Conn& c, int error) {
    // tcp_done_with_error(): the error is what SO_ERROR and the next
    // send/recv report; unsent data is dropped (tcp_write_queue_purge).
    c.error = error;
    c.send_buffer.consume(c.send_buffer.size());
    c.sent.clear();
    c.sacked_out = c.lost_out = c.retrans_out = 0;
    c.sacked_segments = 0;
    tcp_done(c);
}

void TcpEngine::queue_fin(Conn& c, Instant now) {
    // tcp_send_fin(): the FIN follows the queued data, past Nagle.
    c.fin_queued = true;
    transmit(c, now);
}

TimeWaitState TcpEngine::time_wait_state_of(const Conn& c) {
    TimeWaitState state;
    state.tuple = FourTuple{c.local.addr, c.remote.addr, c.local.port, c.remote.port};
    state.snd_nxt = c.snd_nxt;
    state.rcv_nxt = c.rcv_nxt;
    state.rcv_wnd = receive_window(c);
    state.rcv_wscale = c.rcv_wscale;
    if (c.ts_ok) {
        state.ts_recent = c.ts_recent;
        state.ts_recent_stamp = c.ts_recent_stamp;
    }
    return state;
}

void TcpEngine::enter_time_wait(Conn& c, Instant now) {
    // tcp_time_wait(): the connection continues as a compact record that
    // keeps what tcp_timewait_state_process() needs and holds the port with
    // the socket's flags; the socket itself is done (the application sees
    // CLOSED). With tcp_max_tw_buckets reached the table refuses, counts
    // TCPTimeWaitOverflow and releases the port: the socket just closes.
    const TimeWaitState state = time_wait_state_of(c);
    unhash(c);
    if (c.lease) {
        const ports::Reservation reservation = *c.lease;
        c.lease.reset();
        time_wait_.insert(now, state, TimeWaitSubstate::TimeWait, reservation);
    }
    tcp_done(c);
}

void TcpEngine::enter_orphan_fin_wait2(Conn& c, Instant now) {
    // tcp_close() / tcp_rcv_state_process(): an orphan whose FIN was
    // acknowledged becomes tcp_time_wait(sk, TCP_FIN_WAIT2, tcp_fin_time):
    // a record that turns into TIME_WAIT on the peer's FIN, answers data
    // with RST, and goes silently after tcp_fin_timeout.
    const TimeWaitState state = time_wait_state_of(c);
    unhash(c);
    if (c.lease) {
        const ports::Reservation reservation = *c.lease;
        c.lease.reset();
        time_wait_.insert(now, state, TimeWaitSubstate::FinWait2, reservation);
    }
    tcp_done(c);
}

void TcpEngine::close_listener(Conn& c, Instant now) {
    // inet_csk_listen_stop(): connections nobody accepted are reset
    // (tcp_disconnect); half-open ones simply go.
    std::vector<SocketId> children(c.accept_queue.begin(), c.accept_queue.end());
    for (const auto& slot : sockets_) {
        if (slot && slot->listener == c.id && !slot->in_accept_queue) {
            children.push_back(slot->id);
        }
    }
    c.accept_queue.clear();
    for (SocketId id : children) {
        Conn* child = find(id);
        if (child == nullptr) {
            continue;
        }
        touch(*child);
        if (child->synchronized() && child->state != TcpState::TimeWait) {
            send_active_reset(*child, now);
        }
        child->in_accept_queue = false;
        child->listener.reset();
        child->orphan = true;
        tcp_done(*child);
    }
    c.syn_queue = 0;
    set_state(c, TcpState::Closed);
}

void TcpEngine::reset_for_reconnect(Conn& c) {
    // What tcp_disconnect() clears so the socket can connect again.
    c.done = false;
    c.rcv_shutdown = false;
    c.snd_shutdown = false;
    c.soft_error = 0;
    c.send_buffer = RingBuffer(0);
    c.recv_buffer = RingBuffer(0);
    c.ooo.clear();
    c.sent.clear();
    c.sacked_out = c.lost_out = c.retrans_out = 0;
    c.sacked_segments = 0;
    c.fin_seq.reset();
    c.fin_queued = c.fin_sent = false;
    c.ts_ok = c.sack_ok = c.wscale_ok = false;
    c.ts_recent.reset();
    c.snd_wscale = 0;
    c.snd_wnd = c.max_snd_wnd = 0;
    c.peer_mss = 536;
    c.cc.reset();
    c.rtt = RttEstimator{};
    c.retransmits = 0;
    c.retrans_stamp.reset();
    c.probes_out = 0;
    c.synack_retransmits = 0;
    c.ca_state = CaState::Open;
    c.dupacks = 0;
    c.ack_pending = c.ack_now = c.force_retransmit = false;
    c.quick = 0;
    c.pingpong = false;
    c.ato_started = false;
    c.oow_ack_sent = false;
    c.retransmit_at.reset();
    c.persist_at.reset();
    c.delack_at.reset();
    c.keepalive_at.reset();
    c.finwait2_at.reset();
}

Result<void> TcpEngine::shutdown(SocketId id, Instant now, ShutdownHow how) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return fail(EBADF);
    }
    touch(*c);
    const bool rd = how != ShutdownHow::Write;
    const bool wr = how != ShutdownHow::Read;
    // inet_shutdown().
    if (c->phase == ConnectPhase::Connecting && c->state != TcpState::SynSent &&
        c->state != TcpState::SynReceived && c->state != TcpState::Closed) {
        c->phase = ConnectPhase::Connected;
    }
    Result<void> result;
    switch (c->state) {
    case TcpState::Closed:
        // "Hack to wake up other listeners, who can poll for EPOLLHUP":
        // the bits are set and ENOTCONN returned.
        c->rcv_shutdown = c->rcv_shutdown || rd;
        c->snd_shutdown = c->snd_shutdown || wr;
        result = fail(ENOTCONN);
        break;
    case TcpState::Listen:
        if (rd) {
            // disconnect(): the listener stops.
            close_listener(*c, now);
            c->phase = ConnectPhase::Unconnected;
        }
        break;
    case TcpState::SynSent:
        // disconnect() on a connecting socket: back to a fresh CLOSED one.
        set_state(*c, TcpState::Closed);
        reset_for_reconnect(*c);
        c->phase = ConnectPhase::Unconnected;
        break;
    default:
        c->rcv_shutdown = c->rcv_shutdown || rd;
        if (wr && !c->snd_shutdown) {
            c->snd_shutdown = true;
            // tcp_shutdown() → tcp_close_state(): FIN after the data.
            if (c->state == TcpState::Established || c->state == TcpState::SynReceived) {
                set_state(*c, TcpState::FinWait1);
                queue_fin(*c, now);
            } else if (c->state == TcpState::CloseWait) {
                set_state(*c, TcpState::LastAck);
                queue_fin(*c, now);
            }
        }
        break;
    }
    finish();
    return result;
}

void TcpEngine::close(SocketId id, Instant now) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return;
    }
    touch(*c);
    // __tcp_close().
    c->orphan = true;
    c->rcv_shutdown = true;
    c->snd_shutdown = true;
    if (c->state == TcpState::Listen) {
        close_listener(*c, now);
        tcp_done(*c);
        finish();
        return;
    }
    // "We need to flush the recv. buffs. We do this only on the descriptor
    // close, not protocol-sourced closes, because the reader process may
    // not have drained the data yet!"
    const size_t data_was_unread = c->recv_buffer.size();
    c->recv_buffer.consume(data_was_unread);
    if (c->state == TcpState::Closed) {
        tcp_done(*c);
    } else if (data_was_unread > 0) {
        // RFC 2525 §2.17: "As a result, the receiving TCP must send a RST".
        ++counters_.aborts_on_close;
        const bool synchronized = c->synchronized();
        set_state(*c, TcpState::Closed);
        if (synchronized) {
            send_active_reset(*c, now);
        }
        tcp_done(*c);
    } else if (c->linger.on && c->linger.seconds == 0) {
        // "Check zero linger _after_ checking for unread data":
        // tcp_disconnect() resets a synchronized connection.
        ++counters_.aborts_on_data;
        const bool need_reset = c->synchronized() && c->state != TcpState::LastAck &&
                                c->state != TcpState::Closing && c->state != TcpState::TimeWait;
        if (need_reset || c->state == TcpState::SynReceived) {
            send_active_reset(*c, now);
        }
        tcp_done(*c);
    } else {
        // tcp_close_state(): the next state and whether a FIN is due.
        switch (c->state) {
        case TcpState::SynSent:
            tcp_done(*c);
            break;
        case TcpState::SynReceived:
        case TcpState::Established:
            set_state(*c, TcpState::FinWait1);
            queue_fin(*c, now);
            break;
        case TcpState::CloseWait:
            set_state(*c, TcpState::LastAck);
            queue_fin(*c, now);
            break;
        default:
            break;  // FIN already sent
        }
    }
    // An orphan already in FIN_WAIT2 lives tcp_fin_timeout, as a record.
    if (c->state == TcpState::FinWait2) {
        enter_orphan_fin_wait2(*c, now);
    }
    finish();
}

void TcpEngine::abort(SocketId id, Instant now) {
    Conn* c = find_app(id);
    if (c == nullptr) {
        return;
    }
    c->linger = Linger{true, 0};
    close(id, now);
}

}  // namespace ustack::tcp
