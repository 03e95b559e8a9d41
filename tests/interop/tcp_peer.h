#pragma once
// The two ends of a bulk TCP transfer between the kernel and the stack.
//
// Kernel side: a python3 program (kernel_tcp_peer_argv) that connects or
// listens, sends `send_bytes` random bytes while receiving until EOF, and
// prints the count and SHA-256 of both directions.
//
// Stack side: BulkTransfer, driven from a RealtimeLoop's done() callback,
// does the same on a stack socket: pseudo-random bytes out (hashed as they
// are accepted), everything in hashed, shutdown(SHUT_WR) once all is sent.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "stack/core/time.h"
#include "stack/tcp/tcp_engine.h"
#include "tests/interop/sha256.h"

namespace ustack::testing {

// What the kernel-side program printed: "sent N HEX" and "received N HEX".
struct PeerReport {
    uint64_t sent = 0;
    std::string sent_sha256;
    uint64_t received = 0;
    std::string received_sha256;
};
std::optional<PeerReport> parse_peer_report(const std::string& out);

// argv for the kernel side. role "connect": to host:port; role "listen":
// on host:port, printing "listening" once it does. The program gives up
// (exit 3) when nothing moves for idle_timeout_s.
std::vector<std::string> kernel_tcp_peer_argv(const std::string& role, const std::string& host, uint16_t port,
                                              uint64_t send_bytes, int idle_timeout_s);

class BulkTransfer {
public:
    BulkTransfer(tcp::TcpEngine& engine, tcp::SocketId socket, uint64_t send_bytes, uint64_t seed);

    // Sends what the socket takes, reads what it has; call after every poll.
    // Returns an errno when the socket failed (ECONNRESET...), 0 otherwise.
    int pump(Instant now);
    bool all_sent() const { return sent_ == send_bytes_ && shut_down_; }
    bool eof() const { return eof_; }
    uint64_t sent() const { return sent_; }
    uint64_t received() const { return received_; }
    std::string sent_sha256() { return sent_hash_.hex_digest(); }
    std::string received_sha256() { return received_hash_.hex_digest(); }

private:
    void refill();

    tcp::TcpEngine& engine_;
    tcp::SocketId socket_;
    uint64_t send_bytes_;
    uint64_t state_;  // xorshift64* state
    std::vector<uint8_t> chunk_;
    size_t chunk_used_ = 0;  // bytes of chunk_ already accepted by send()
    uint64_t sent_ = 0;
    bool shut_down_ = false;
    uint64_t received_ = 0;
    bool eof_ = false;
    std::vector<uint8_t> rx_buffer_;
    Sha256 sent_hash_;
    Sha256 received_hash_;
};

}  // namespace ustack::testing
