#pragma once
// Which of a listener's accepted connections the program took.
//
// The host hands each accepted connection to the program as a message on
// the listener's socketpair carrying the connection's app end (AcceptHeader,
// protocol.h). If the program closes the listener with such messages
// unread, the kernel drops the fds in them, and the connection's host end
// sees the same hang-up as when the program accepted it and closed it at
// once. Linux tells the two apart: inet_csk_listen_stop() resets the
// connections nobody accepted (tcp_disconnect), where close() of an
// accepted one sends FIN. So each message carries a ticket, the shim's
// accept() writes the ticket back on the listener's pair, and a
// connection's hang-up asks the ledger whether its ticket came back.
//
// The answer to a ticket is written before accept() returns, so it is in
// the listener's host end before the program can close the connection: a
// read of what is waiting there settles every hang-up. The ledger outlives
// its listener (the connections hold it); `listener_gone()` reads the last
// answers before the listener's host end closes. The pair's app→host
// direction carries nothing but answers: a program writes to a listener
// only through the shim, which refuses (EPIPE); raw bytes from around it
// (a raw syscall, sendfile onto a listener) would shift every later answer.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <unordered_map>

namespace ustack::host {

class AcceptLedger {
public:
    explicit AcceptLedger(int listener_host_fd) : fd_(listener_host_fd) {}

    // A ticket for a connection about to be handed out; it is outstanding
    // until taken() or forget().
    uint32_t issue();
    // Reads the answers waiting on the listener's host end (non-blocking).
    void read_answers();
    // A header went out: every `answers_read_every` the answers are read,
    // so that a burst of accepts does not fill the pair with them (a few
    // hundred 4-byte messages fill a socketpair's default buffer).
    void handed_out() {
        if (++handed_out_since_read_ >= answers_read_every) {
            read_answers();
        }
    }
    static constexpr uint32_t answers_read_every = 32;
    // Whether the program took the connection with this ticket (reads the
    // answers first). Settles the ticket: ask once.
    bool taken(uint32_t ticket);
    // The connection went without a hang-up to settle (a reset, a timeout).
    void forget(uint32_t ticket) { outstanding_.erase(ticket); }
    // The listener's host end is about to close: last answers, then none.
    void listener_gone();
    size_t outstanding() const { return outstanding_.size(); }

private:
    int fd_;
    uint32_t last_ticket_ = 0;
    // ticket → answered; answers to tickets not outstanding (a connection
    // already settled, a write that was not ours) are ignored.
    std::unordered_map<uint32_t, bool> outstanding_;
    uint8_t partial_[4] = {};  // an answer split across two reads
    size_t partial_len_ = 0;
    uint32_t handed_out_since_read_ = 0;
};

// What an accepted connection keeps of its listener's ledger.
struct AcceptTicket {
    std::shared_ptr<AcceptLedger> ledger;
    uint32_t ticket = 0;
};

}  // namespace ustack::host
