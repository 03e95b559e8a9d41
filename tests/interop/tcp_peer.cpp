#include "tests/interop/tcp_peer.h"

#include <cerrno>
#include <sstream>

namespace ustack::testing {
namespace {

// Sends os.urandom data in 1 MiB writes from a thread while the main
// thread receives until EOF; both directions hashed as they pass.
constexpr const char* peer_program = R"PY(
import hashlib, os, socket, sys, threading
role, host, port, send_bytes, idle = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if role == "listen":
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(1)
    listener.settimeout(idle)
    print("listening", flush=True)
    conn, _ = listener.accept()
else:
    conn = socket.create_connection((host, port), timeout=idle)
conn.settimeout(idle)
sent_hash, received_hash = hashlib.sha256(), hashlib.sha256()
failure = []
def send_all():
    try:
        left = send_bytes
        while left > 0:
            chunk = os.urandom(min(1 << 20, left))
            sent_hash.update(chunk)
            conn.sendall(chunk)
            left -= len(chunk)
        conn.shutdown(socket.SHUT_WR)
    except Exception as e:
        failure.append("send: %r" % e)
sender = threading.Thread(target=send_all)
sender.start()
received = 0
buffer = bytearray(1 << 20)
view = memoryview(buffer)
try:
    while True:
        n = conn.recv_into(buffer)
        if n == 0:
            break
        received_hash.update(view[:n])
        received += n
except Exception as e:
    failure.append("receive after %d bytes: %r" % (received, e))
sender.join()
conn.close()
print("sent %d %s" % (send_bytes, sent_hash.hexdigest()))
print("received %d %s" % (received, received_hash.hexdigest()), flush=True)
if failure:
    print("; ".join(failure), file=sys.stderr)
    sys.exit(3)
)PY";

}  // namespace

std::vector<std::string> kernel_tcp_peer_argv(const std::string& role, const std::string& host, uint16_t port,
                                              uint64_t send_bytes, int idle_timeout_s) {
    return {"python3",         "-c", peer_program, role, host, std::to_string(port), std::to_string(send_bytes),
            std::to_string(idle_timeout_s)};
}

std::optional<PeerReport> parse_peer_report(const std::string& out) {
    PeerReport report;
    bool have_sent = false;
    bool have_received = false;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
        std::istringstream fields(line);
        std::string word;
        fields >> word;
        if (word == "sent") {
            have_sent = static_cast<bool>(fields >> report.sent >> report.sent_sha256);
        } else if (word == "received") {
            have_received = static_cast<bool>(fields >> report.received >> report.received_sha256);
        }
    }
    if (!have_sent || !have_received) {
        return std::nullopt;
    }
    return report;
}

BulkTransfer::BulkTransfer(tcp::TcpEngine& engine, tcp::SocketId socket, uint64_t send_bytes, uint64_t seed)
    : engine_(engine),
      socket_(socket),
      send_bytes_(send_bytes),
      state_(seed | 1),
      chunk_(256 * 1024),
      chunk_used_(chunk_.size()),
      rx_buffer_(256 * 1024) {}

void BulkTransfer::refill() {
    // xorshift64*: fast, and the kernel side hashes whatever arrives.
    for (size_t i = 0; i + 8 <= chunk_.size(); i += 8) {
        state_ ^= state_ >> 12;
        state_ ^= state_ << 25;
        state_ ^= state_ >> 27;
        const uint64_t v = state_ * 0x2545f4914f6cdd1dULL;
        for (int b = 0; b < 8; ++b) {
            chunk_[i + static_cast<size_t>(b)] = static_cast<uint8_t>(v >> (8 * b));
        }
    }
    chunk_used_ = 0;
}

int BulkTransfer::pump(Instant now) {
    while (sent_ < send_bytes_) {
        if (chunk_used_ == chunk_.size()) {
            refill();
        }
        const size_t want = static_cast<size_t>(
            std::min<uint64_t>(chunk_.size() - chunk_used_, send_bytes_ - sent_));
        const wire::ByteSpan piece(chunk_.data() + chunk_used_, want);
        auto taken = engine_.send(socket_, now, piece);
        if (!taken) {
            if (taken.error().value == EAGAIN) {
                break;
            }
            return taken.error().value;
        }
        if (*taken == 0) {
            break;
        }
        sent_hash_.update(piece.first(*taken));
        chunk_used_ += *taken;
        sent_ += *taken;
    }
    if (sent_ == send_bytes_ && !shut_down_) {
        if (auto r = engine_.shutdown(socket_, now, tcp::ShutdownHow::Write); !r) {
            return r.error().value;
        }
        shut_down_ = true;
    }
    while (!eof_) {
        auto got = engine_.recv(socket_, now, rx_buffer_);
        if (!got) {
            if (got.error().value == EAGAIN) {
                break;
            }
            return got.error().value;
        }
        if (*got == 0) {
            eof_ = true;
            break;
        }
        received_hash_.update(std::span<const uint8_t>(rx_buffer_.data(), *got));
        received_ += *got;
    }
    return 0;
}

}  // namespace ustack::testing
