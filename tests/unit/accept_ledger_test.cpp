// AcceptLedger: which connections a listener handed out did the program
// take? The shim answers each accept() with its ticket on the listener's
// socketpair; the ledger reads those answers from the host end.
#include <gtest/gtest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>

#include "stack/host/accept_ledger.h"

namespace ustack::host {
namespace {

class AcceptLedgerTest : public ::testing::Test {
protected:
    void SetUp() override { ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, pair_), 0); }
    void TearDown() override {
        for (int fd : pair_) {
            if (fd >= 0) {
                ::close(fd);
            }
        }
    }
    // What the shim's accept() writes back.
    void answer(uint32_t ticket) { ASSERT_EQ(::send(app_end(), &ticket, sizeof ticket, 0), 4); }
    int host_end() const { return pair_[0]; }
    int app_end() const { return pair_[1]; }
    int pair_[2] = {-1, -1};
};

TEST_F(AcceptLedgerTest, ATicketAnsweredIsTakenAndOneNeverAnsweredIsNot) {
    AcceptLedger ledger(host_end());
    const uint32_t accepted = ledger.issue();
    const uint32_t queued = ledger.issue();
    EXPECT_NE(accepted, queued);
    answer(accepted);
    EXPECT_TRUE(ledger.taken(accepted));
    EXPECT_FALSE(ledger.taken(queued));
    EXPECT_EQ(ledger.outstanding(), 0u);
}

TEST_F(AcceptLedgerTest, AnswersMayComeInAnyOrderAndSplitAcrossReads) {
    // Several processes accept on one listener: their answers interleave.
    AcceptLedger ledger(host_end());
    const uint32_t first = ledger.issue();
    const uint32_t second = ledger.issue();
    const uint32_t third = ledger.issue();
    answer(third);
    const auto* bytes = reinterpret_cast<const uint8_t*>(&first);
    ASSERT_EQ(::send(app_end(), bytes, 3, 0), 3);
    ledger.read_answers();  // three bytes of the second answer wait
    ASSERT_EQ(::send(app_end(), bytes + 3, 1, 0), 1);
    EXPECT_TRUE(ledger.taken(third));
    EXPECT_TRUE(ledger.taken(first));
    EXPECT_FALSE(ledger.taken(second));
}

TEST_F(AcceptLedgerTest, AnswersOfUnknownTicketsAreIgnored) {
    AcceptLedger ledger(host_end());
    const uint32_t ticket = ledger.issue();
    answer(ticket + 100);  // not a ticket this ledger issued
    answer(0);
    EXPECT_FALSE(ledger.taken(ticket));
    EXPECT_FALSE(ledger.taken(ticket + 100));
}

TEST_F(AcceptLedgerTest, TheLastAnswersAreReadWhenTheListenerGoes) {
    // The program accepted, then closed the listener and the connection:
    // the answer is read before the listener's host end closes.
    AcceptLedger ledger(host_end());
    const uint32_t accepted = ledger.issue();
    const uint32_t dropped = ledger.issue();
    answer(accepted);
    ::close(pair_[1]);
    pair_[1] = -1;
    ledger.listener_gone();
    ::close(pair_[0]);
    pair_[0] = -1;
    EXPECT_TRUE(ledger.taken(accepted));
    EXPECT_FALSE(ledger.taken(dropped));
}

TEST_F(AcceptLedgerTest, AForgottenTicketIsNoLongerOutstanding) {
    AcceptLedger ledger(host_end());
    const uint32_t ticket = ledger.issue();
    EXPECT_EQ(ledger.outstanding(), 1u);
    ledger.forget(ticket);
    EXPECT_EQ(ledger.outstanding(), 0u);
    answer(ticket);
    EXPECT_FALSE(ledger.taken(ticket));
}

}  // namespace
}  // namespace ustack::host
