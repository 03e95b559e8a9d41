#pragma once
// Test harness for the TCP engine in the style of smoltcp's socket tests:
// one engine under test, the test plays the peer. send() feeds a segment
// at the current simulated time, recv() pops the next segment the engine
// emitted, advance() moves time forward running every timer on the way.
#include <gtest/gtest.h>

#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stack/core/random.h"
#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp::testing {

namespace f = wire::tcp_flags;
using wire::SeqNumber;
using wire::TcpRepr;

inline const wire::Ipv4Address local_ip{10, 0, 0, 1};
inline const wire::Ipv4Address remote_ip{10, 0, 0, 2};
inline constexpr uint16_t local_port = 80;
inline constexpr uint16_t remote_port = 49500;
inline constexpr uint32_t remote_iss = 1000;

struct Sent {
    Instant at;
    wire::Ipv4Address src;
    wire::Ipv4Address dst;
    TcpRepr repr;
    std::vector<uint8_t> payload;

    std::string text() const { return std::string(payload.begin(), payload.end()); }
    bool has(uint8_t flag) const { return repr.has(flag); }
};

class Recorder final : public TcpOutput {
public:
    void send_segment(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst, const TcpRepr& repr,
                      wire::ByteSpan payload) override {
        segments.push_back(Sent{now, src, dst, repr, std::vector<uint8_t>(payload.begin(), payload.end())});
    }
    std::deque<Sent> segments;
};

// Deterministic segments by default: no timestamps, SACK or window
// scaling (tests that need them switch them on), MSS 1460.
inline TcpConfig test_config() {
    TcpConfig config;
    config.local_addresses = {local_ip};
    config.timestamps = false;
    config.sack = false;
    config.window_scaling = false;
    return config;
}

inline std::vector<uint8_t> bytes(std::string_view s) {
    return std::vector<uint8_t>(s.begin(), s.end());
}

inline std::vector<uint8_t> pattern(size_t n, uint32_t seed = 0) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>((i * 31 + seed * 7 + (i >> 8)) & 0xff);
    }
    return v;
}

inline const char* flag_names(uint8_t fl) {
    static thread_local std::string s;
    s.clear();
    if (fl & f::SYN) s += "SYN,";
    if (fl & f::ACK) s += "ACK,";
    if (fl & f::FIN) s += "FIN,";
    if (fl & f::RST) s += "RST,";
    if (fl & f::PSH) s += "PSH,";
    return s.c_str();
}

inline wire::TcpOptions mss_only(uint16_t mss = 1460) {
    wire::TcpOptions o;
    o.mss = mss;
    return o;
}

class Harness {
public:
    explicit Harness(TcpConfig config = test_config(), uint64_t seed = 1)
        : random(seed), engine(std::move(config), out, random) {}

    SeededRandom random;
    Recorder out;
    TcpEngine engine;
    Instant now = Instant::from_secs(100);
    Endpoint local{local_ip, local_port};
    Endpoint remote{remote_ip, remote_port};
    SeqNumber iss;  // the engine's initial sequence number (learned from its SYN / SYN-ACK)

    // ---- the peer's segments
    TcpRepr seg(uint8_t fl, SeqNumber seq, SeqNumber ack = SeqNumber(), uint16_t window = 65535) const {
        TcpRepr r;
        r.src_port = remote.port;
        r.dst_port = local.port;
        r.flags = fl;
        r.seq = seq;
        r.ack = ack;
        r.window = window;
        return r;
    }
    TcpRepr syn(uint32_t seq = remote_iss, std::optional<uint16_t> mss = 1460) const {
        TcpRepr r = seg(f::SYN, SeqNumber(seq));
        r.options.mss = mss;
        return r;
    }
    void send(const TcpRepr& r, const std::vector<uint8_t>& payload = {}) {
        engine.input(now, remote.addr, local.addr, r, payload);
    }
    void send(const TcpRepr& r, std::string_view payload) { send(r, bytes(payload)); }

    // ---- what the engine sent
    std::optional<Sent> try_recv() {
        if (out.segments.empty()) {
            return std::nullopt;
        }
        Sent s = out.segments.front();
        out.segments.pop_front();
        return s;
    }
    Sent recv() {
        auto s = try_recv();
        if (!s) {
            ADD_FAILURE() << "expected a segment, none was sent";
            return Sent{};
        }
        return *s;
    }
    void expect_nothing() {
        if (!out.segments.empty()) {
            const Sent& s = out.segments.front();
            ADD_FAILURE() << "unexpected segment " << flag_names(s.repr.flags) << " seq=" << s.repr.seq.raw()
                          << " ack=" << s.repr.ack.raw() << " len=" << s.payload.size();
        }
    }
    size_t pending() const { return out.segments.size(); }
    void clear() { out.segments.clear(); }

    // ---- time
    void advance(Duration d) { advance_to(now + d); }
    void advance_to(Instant target) {
        while (true) {
            const auto next = engine.poll_at();
            if (!next || *next > target) {
                break;
            }
            now = std::max(now, *next);
            engine.poll(now);
        }
        now = target;
        engine.poll(now);
    }

    // ---- canned openings
    SocketId listen(int backlog = 8) {
        const SocketId l = engine.open();
        EXPECT_TRUE(engine.bind(l, Endpoint{wire::Ipv4Address::unspecified(), local_port}));
        EXPECT_TRUE(engine.listen(l, backlog));
        return l;
    }
    // The peer's SYN to a listener; returns the SYN-ACK.
    Sent handshake_syn(const TcpRepr& syn_segment) {
        send(syn_segment);
        Sent synack = recv();
        iss = synack.repr.seq;
        return synack;
    }
    // Full passive open on `listener` (created if absent); returns the
    // accepted socket.
    SocketId accept_established(std::optional<TcpRepr> syn_segment = std::nullopt,
                                std::optional<SocketId> listener = std::nullopt) {
        const SocketId l = listener ? *listener : listen();
        const TcpRepr s = syn_segment ? *syn_segment : syn();
        Sent synack = handshake_syn(s);
        EXPECT_EQ(synack.repr.flags, f::SYN | f::ACK);
        TcpRepr ack = seg(f::ACK, s.seq + 1, iss + 1);
        if (s.options.timestamp && synack.repr.options.timestamp) {
            ack.options.timestamp = wire::TcpTimestamp{s.options.timestamp->value + 1,
                                                       synack.repr.options.timestamp->value};
        }
        send(ack);
        auto accepted = engine.accept(l);
        EXPECT_TRUE(accepted);
        listener_id = l;
        return accepted ? accepted->id : 0;
    }
    // Active open to `remote`, the peer answering with `synack_options`.
    SocketId connect_established(wire::TcpOptions synack_options = mss_only(), uint16_t window = 65535) {
        const SocketId s = engine.open();
        auto r = engine.connect(s, now, remote);
        EXPECT_FALSE(r);
        EXPECT_EQ(r.error().value, EINPROGRESS);
        Sent syn_sent = recv();
        EXPECT_EQ(syn_sent.repr.flags, f::SYN);
        iss = syn_sent.repr.seq;
        local.port = syn_sent.repr.src_port;
        TcpRepr synack = seg(f::SYN | f::ACK, SeqNumber(remote_iss), iss + 1, window);
        synack.options = synack_options;
        if (synack.options.timestamp && syn_sent.repr.options.timestamp) {
            synack.options.timestamp->echo = syn_sent.repr.options.timestamp->value;
        }
        send(synack);
        Sent ack = recv();
        EXPECT_EQ(ack.repr.flags, f::ACK);
        EXPECT_EQ(ack.repr.ack, SeqNumber(remote_iss + 1));
        return s;
    }

    // After accept_established()/connect_established(): the next sequence
    // numbers on each side.
    SeqNumber our_seq(uint32_t offset = 0) const { return iss + 1 + offset; }
    SeqNumber peer_seq(uint32_t offset = 0) const { return SeqNumber(remote_iss + 1 + offset); }
    // A data segment from the peer at peer_seq(offset).
    TcpRepr data(uint32_t offset, uint32_t ack_offset = 0, uint8_t extra = 0, uint16_t window = 65535) const {
        return seg(f::ACK | extra, peer_seq(offset), our_seq(ack_offset), window);
    }
    TcpRepr ack(uint32_t ack_offset, uint32_t seq_offset = 0, uint16_t window = 65535) const {
        return seg(f::ACK, peer_seq(seq_offset), our_seq(ack_offset), window);
    }

    std::string read_all(SocketId s) {
        std::string result;
        std::vector<uint8_t> buf(65536);
        while (true) {
            auto r = engine.recv(s, now, buf);
            if (!r || *r == 0) {
                break;
            }
            result.append(buf.begin(), buf.begin() + static_cast<long>(*r));
        }
        return result;
    }

    SocketId listener_id = 0;
};

// Field-by-field expectation on a segment (smoltcp's recv! with a repr).
#define EXPECT_SEGMENT(sent, fl, seq_, ack_)                                                   \
    do {                                                                                       \
        const auto& s_ = (sent);                                                               \
        EXPECT_EQ(s_.repr.flags, (fl)) << "flags " << flag_names(s_.repr.flags) << " vs "      \
                                       << flag_names(fl);                                      \
        EXPECT_EQ(s_.repr.seq, (seq_)) << "seq";                                               \
        if (((fl) & f::ACK) != 0) {                                                            \
            EXPECT_EQ(s_.repr.ack, (ack_)) << "ack";                                           \
        }                                                                                      \
    } while (0)

}  // namespace ustack::tcp::testing
