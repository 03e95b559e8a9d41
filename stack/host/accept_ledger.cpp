#include "stack/host/accept_ledger.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace ustack::host {

uint32_t AcceptLedger::issue() {
    // Ticket 0 is never issued: a zeroed header answers nothing.
    if (++last_ticket_ == 0) {
        ++last_ticket_;
    }
    outstanding_[last_ticket_] = false;
    return last_ticket_;
}

void AcceptLedger::read_answers() {
    handed_out_since_read_ = 0;
    if (fd_ < 0) {
        return;
    }
    uint8_t buf[4096];
    for (;;) {
        const ssize_t n = ::recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;  // EAGAIN, or the app end is gone and everything read
        }
        size_t at = 0;
        const auto got = static_cast<size_t>(n);
        while (at < got) {
            const size_t take = std::min(sizeof partial_ - partial_len_, got - at);
            std::memcpy(partial_ + partial_len_, buf + at, take);
            partial_len_ += take;
            at += take;
            if (partial_len_ == sizeof partial_) {
                uint32_t ticket = 0;
                std::memcpy(&ticket, partial_, sizeof ticket);
                partial_len_ = 0;
                if (auto it = outstanding_.find(ticket); it != outstanding_.end()) {
                    it->second = true;
                }
            }
        }
    }
}

bool AcceptLedger::taken(uint32_t ticket) {
    auto it = outstanding_.find(ticket);
    if (it == outstanding_.end()) {
        return false;
    }
    if (!it->second) {
        read_answers();
    }
    const bool answered = it->second;
    outstanding_.erase(it);
    return answered;
}

void AcceptLedger::listener_gone() {
    read_answers();
    fd_ = -1;
}

}  // namespace ustack::host
