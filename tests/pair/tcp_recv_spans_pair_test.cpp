// TcpEngine::recv_spans() / recv_consume(): the zero-copy receive the host
// uses to sendmsg() straight from the receive buffer. Two stacks over the
// in-memory pair, simulated time: the bytes come out exactly, a partial
// consume (a short send) leaves the rest in place, the window opens again
// as with recv(), and the end of stream and errors read as recv()'s.
#include <gtest/gtest.h>

#include <array>
#include <cerrno>
#include <vector>

#include "stack/tcp/tcp_transport.h"
#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SocketId;
using tcp::TcpState;

struct Connected {
    Connected() {
        net.a().attach_tcp(&tcp_a);
        net.b().attach_tcp(&tcp_b);
        const SocketId l = b().open();
        EXPECT_TRUE(b().bind(l, Endpoint{wire::Ipv4Address::unspecified(), 8080}));
        EXPECT_TRUE(b().listen(l, 8));
        client = a().open();
        (void)a().connect(client, net.now(), Endpoint{addr_b, 8080});
        EXPECT_TRUE(net.run_until(
            [&] {
                if (!server) {
                    if (auto acc = b().accept(l)) {
                        server = acc->id;
                    }
                }
                return server.has_value() && a().state(client) == TcpState::Established;
            },
            Duration::from_secs(5)));
    }
    ~Connected() {
        net.a().attach_tcp(nullptr);
        net.b().attach_tcp(nullptr);
    }
    tcp::TcpEngine& a() { return tcp_a.engine(); }
    tcp::TcpEngine& b() { return tcp_b.engine(); }

    StackPair net;
    SeededRandom random_a{11};
    SeededRandom random_b{22};
    tcp::TcpTransport tcp_a{net.a(), tcp::TcpConfig{}, random_a};
    tcp::TcpTransport tcp_b{net.b(), tcp::TcpConfig{}, random_b};
    SocketId client{};
    std::optional<SocketId> server;
};

std::vector<uint8_t> data_of(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(i * 31 + (i >> 12));
    }
    return v;
}

TEST(TcpRecvSpans, MovesAStreamExactlyWithShortConsumesAndEndsWithEof) {
    Connected c;
    ASSERT_TRUE(c.server);
    const std::vector<uint8_t> data = data_of(3 << 20);  // far more than the receive buffer
    size_t sent = 0;
    std::vector<uint8_t> received;
    std::array<wire::ByteSpan, 8> spans;
    size_t round = 0;
    ASSERT_TRUE(c.net.run_until(
        [&] {
            while (sent < data.size()) {
                auto r = c.a().send(c.client, c.net.now(), wire::ByteSpan(data).subspan(sent));
                if (!r || *r == 0) {
                    break;
                }
                sent += *r;
            }
            for (;;) {
                auto got = c.b().recv_spans(*c.server, spans);
                if (!got || got->bytes == 0) {
                    break;
                }
                EXPECT_LE(got->count, spans.size());
                // Take all, or (every third round) only part of the views,
                // as a short sendmsg() would.
                size_t take = got->bytes;
                if (++round % 3 == 0 && take > 1) {
                    take = take / 2 + 1;
                }
                size_t left = take;
                for (size_t i = 0; i < got->count && left > 0; ++i) {
                    const size_t n = std::min(left, spans[i].size());
                    received.insert(received.end(), spans[i].begin(), spans[i].begin() + static_cast<long>(n));
                    left -= n;
                }
                c.b().recv_consume(*c.server, c.net.now(), take);
            }
            return received.size() == data.size();
        },
        // Without the window update recv_consume() owes the peer, the
        // sender would wait for zero-window probes (backing off from
        // 200 ms): far longer than this.
        Duration::from_secs(10)));
    EXPECT_TRUE(received == data);

    // Nothing held yet: EAGAIN, as recv().
    auto nothing = c.b().recv_spans(*c.server, spans);
    ASSERT_FALSE(nothing);
    EXPECT_EQ(nothing.error().value, EAGAIN);

    // The peer's FIN: 0 bytes, as recv() at end of stream.
    c.a().close(c.client, c.net.now());
    ASSERT_TRUE(c.net.run_until([&] { return c.b().state(*c.server) == TcpState::CloseWait; },
                                Duration::from_secs(5)));
    auto eof = c.b().recv_spans(*c.server, spans);
    ASSERT_TRUE(eof);
    EXPECT_EQ(eof->bytes, 0u);
    EXPECT_EQ(eof->count, 0u);
}

TEST(TcpRecvSpans, AResetReadsAsTheErrorOnce) {
    Connected c;
    ASSERT_TRUE(c.server);
    c.a().abort(c.client, c.net.now());
    std::array<wire::ByteSpan, 4> spans;
    ASSERT_TRUE(c.net.run_until([&] { return c.b().state(*c.server) == TcpState::Closed; }, Duration::from_secs(5)));
    auto first = c.b().recv_spans(*c.server, spans);
    ASSERT_FALSE(first);
    EXPECT_EQ(first.error().value, ECONNRESET);
    auto second = c.b().recv_spans(*c.server, spans);
    // Then what recv() says after the error: end of stream (or ENOTCONN).
    EXPECT_TRUE(second ? second->bytes == 0 : second.error().value == ENOTCONN);
    EXPECT_FALSE(c.b().recv_spans(tcp::SocketId{9999}, spans));  // EBADF
}

}  // namespace
}  // namespace ustack::testing
