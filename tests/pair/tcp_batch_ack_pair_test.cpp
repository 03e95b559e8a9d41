// Quick ACKs decided once per device read (TcpEngine::begin_input_batch /
// end_input_batch), between two stacks over the in-memory pair, simulated
// time. The client A connects, sends a request; the server B answers with
// one byte and, in some cases, closes at once (a crr server). Both of B's
// segments wait in A's device queue, so A's next poll reads them together:
// - answer alone: the quick ACK still leaves in that poll (quick-ACK mode
//   at the start of a connection, as on Linux);
// - answer and FIN: the FIN puts the connection in ping-pong mode (tcp_fin),
//   so the one ACK owed for both leaves with A's own FIN when the program
//   closes — one segment instead of a quick ACK then a FIN — or, if it
//   never closes, with the delayed-ACK timer (40 ms).
#include <gtest/gtest.h>

#include <cerrno>

#include "stack/tcp/tcp_transport.h"
#include "tests/support/stack_pair.h"

namespace ustack::testing {
namespace {

using tcp::Endpoint;
using tcp::SocketId;
using tcp::TcpState;

class BatchAck : public ::testing::Test {
protected:
    BatchAck()
        : random_a_(11), random_b_(12), tcp_a_(net_.a(), tcp::TcpConfig{}, random_a_),
          tcp_b_(net_.b(), tcp::TcpConfig{}, random_b_) {
        net_.a().attach_tcp(&tcp_a_);
        net_.b().attach_tcp(&tcp_b_);
    }
    ~BatchAck() override {
        net_.a().attach_tcp(nullptr);
        net_.b().attach_tcp(nullptr);
    }

    tcp::TcpEngine& a() { return tcp_a_.engine(); }
    tcp::TcpEngine& b() { return tcp_b_.engine(); }
    uint64_t a_sent() { return net_.device_a().stats().tx_frames; }

    // Connected, the request delivered and read by B; nothing in flight.
    void connect_and_request() {
        const SocketId listener = b().open();
        ASSERT_TRUE(b().bind(listener, Endpoint{wire::Ipv4Address::unspecified(), 5002}));
        ASSERT_TRUE(b().listen(listener, 8));
        client_ = a().open();
        ASSERT_EQ(a().connect(client_, net_.now(), Endpoint{addr_b, 5002}).error().value, EINPROGRESS);
        std::optional<SocketId> server;
        ASSERT_TRUE(net_.run_until(
            [&] {
                if (auto accepted = b().accept(listener)) {
                    server = accepted->id;
                }
                return server.has_value();
            },
            Duration::from_secs(5)));
        server_ = *server;
        const uint8_t request = 'q';
        ASSERT_EQ(*a().send(client_, net_.now(), wire::ByteSpan(&request, 1)), 1u);
        uint8_t got = 0;
        ASSERT_TRUE(net_.run_until(
            [&] {
                auto r = b().recv(server_, net_.now(), wire::MutByteSpan(&got, 1));
                return r && *r == 1;
            },
            Duration::from_secs(1)));
        net_.settle();
    }

    // B answers (and closes, when asked) without A polling in between.
    void answer(bool and_close) {
        const uint8_t response = 'r';
        ASSERT_EQ(*b().send(server_, net_.now(), wire::ByteSpan(&response, 1)), 1u);
        if (and_close) {
            b().close(server_, net_.now());
        }
        net_.b().poll(net_.now());  // both segments leave now, into A's queue
    }

    size_t read_answer() {
        uint8_t buf[4] = {};
        auto r = a().recv(client_, net_.now(), wire::MutByteSpan(buf, sizeof buf));
        return r ? *r : 0;
    }

    StackPair net_;
    SeededRandom random_a_;
    SeededRandom random_b_;
    tcp::TcpTransport tcp_a_;
    tcp::TcpTransport tcp_b_;
    SocketId client_{};
    SocketId server_{};
};

TEST_F(BatchAck, AnAnswerAloneIsAckedInTheSameRead) {
    connect_and_request();
    answer(false);
    const uint64_t before = a_sent();
    net_.a().poll(net_.now());
    EXPECT_EQ(a_sent() - before, 1u);  // the quick ACK
    EXPECT_EQ(a().counters().quick_acks_joined, 0u);
    EXPECT_EQ(read_answer(), 1u);
}

TEST_F(BatchAck, AnAnswerAndItsFinGetOneAckThatLeavesWithOurFin) {
    connect_and_request();
    answer(true);
    const uint64_t before = a_sent();
    net_.a().poll(net_.now());
    EXPECT_EQ(a_sent() - before, 0u);  // no quick ACK for the answer
    EXPECT_EQ(a().counters().quick_acks_joined, 1u);
    EXPECT_EQ(a().state(client_), TcpState::CloseWait);
    EXPECT_EQ(read_answer(), 1u);
    a().close(client_, net_.now());
    net_.a().poll(net_.now());
    EXPECT_EQ(a_sent() - before, 1u);  // the FIN, acknowledging the answer and B's FIN
    net_.settle();
    EXPECT_EQ(b().time_wait_count(), 1u);  // B went FIN_WAIT_1 → TIME_WAIT on that one segment
    EXPECT_EQ(a().counters().delayed_acks, 0u);
}

TEST_F(BatchAck, AnAnswerAndItsFinAreAckedByTheTimerIfWeNeverClose) {
    connect_and_request();
    answer(true);
    const uint64_t before = a_sent();
    net_.a().poll(net_.now());
    EXPECT_EQ(a_sent() - before, 0u);
    net_.run_for(Duration::from_millis(39));
    EXPECT_EQ(a_sent() - before, 0u);
    net_.run_for(Duration::from_millis(2));
    EXPECT_EQ(a_sent() - before, 1u);  // tcp_delack_timer, 40 ms
    EXPECT_EQ(a().counters().delayed_acks, 1u);
    EXPECT_EQ(read_answer(), 1u);
}

}  // namespace
}  // namespace ustack::testing
