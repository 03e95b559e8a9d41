// tcp_timewait_state_process() and tcp_twsk_unique() rules on the compact
// TIME_WAIT table, with explicit times.
#include "stack/tcp/time_wait_table.h"

#include <gtest/gtest.h>

#include <map>

namespace ustack::tcp {
namespace {

using Action = TimeWaitVerdict::Action;
namespace flags = wire::tcp_flags;

const wire::Ipv4Address local{10, 0, 0, 1};
const wire::Ipv4Address remote{10, 0, 0, 2};

struct TwFixture {
    Tunables tunables;
    SeededRandom random{3};
    ports::PortManager ports{tunables, random};
    SequenceSecrets secrets{random};
    TimeWaitTable table{tunables, ports, secrets, random};
    Instant t0 = Instant::from_secs(100);

    FourTuple tuple(uint16_t lport = 40000, uint16_t rport = 80) const { return {local, remote, lport, rport}; }

    // A closed outgoing connection: snd_nxt 1000, rcv_nxt 5000, TSval 700 from the peer.
    TimeWaitTable::Handle add(Instant now, bool timestamps = true,
                              TimeWaitSubstate substate = TimeWaitSubstate::TimeWait, uint16_t lport = 40000) {
        auto r = ports.connect(local, remote, 80, {}, [&](uint16_t) { return true; });
        EXPECT_TRUE(r);
        ports::Reservation res = *r;
        // Use a fixed port: rebuild the reservation on lport.
        ports.release(res);
        auto bound = ports.bind(ports::Protocol::Tcp, local, lport, {});
        EXPECT_TRUE(bound);
        TimeWaitState s;
        s.tuple = tuple(lport);
        s.snd_nxt = wire::SeqNumber(1000);
        s.rcv_nxt = wire::SeqNumber(5000);
        s.rcv_wnd = 65535;
        if (timestamps) {
            s.ts_recent = 700;
            s.ts_recent_stamp = now;
        }
        EXPECT_TRUE(table.insert(now, s, substate, *bound));
        return *table.find(s.tuple);
    }
};

wire::TcpRepr segment(uint32_t seq, uint8_t f, std::optional<uint32_t> tsval = std::nullopt, uint32_t ack = 1000) {
    wire::TcpRepr s;
    s.src_port = 80;
    s.dst_port = 40000;
    s.seq = wire::SeqNumber(seq);
    s.ack = wire::SeqNumber(ack);
    s.flags = f;
    s.window = 1000;
    if (tsval) {
        s.options.timestamp = wire::TcpTimestamp{*tsval, 0};
    }
    return s;
}

TEST(TimeWait, ExpiresExactlyAfterTimeWaitAndReleasesThePort) {
    TwFixture f;
    ASSERT_FALSE(f.tunables.set("time_wait", "60000"));
    f.add(f.t0);
    EXPECT_EQ(f.ports.owner_count(ports::Protocol::Tcp, 40000), 1u);
    EXPECT_EQ(f.table.poll_at(), f.t0 + Duration::from_secs(60));
    f.table.poll(f.t0 + Duration::from_secs(60) - Duration::from_micros(1));
    EXPECT_TRUE(f.table.find(f.tuple()));
    f.table.poll(f.t0 + Duration::from_secs(60));
    EXPECT_FALSE(f.table.find(f.tuple()));
    EXPECT_EQ(f.table.counters().expired, 1u);
    EXPECT_EQ(f.ports.owner_count(ports::Protocol::Tcp, 40000), 0u);
}

TEST(TimeWait, OneSecondTimeWaitIsASetting) {
    TwFixture f;
    ASSERT_FALSE(f.tunables.set("time_wait", "1000"));
    f.add(f.t0);
    f.table.poll(f.t0 + Duration::from_millis(999));
    EXPECT_EQ(f.table.size(), 1u);
    f.table.poll(f.t0 + Duration::from_millis(1000));
    EXPECT_EQ(f.table.size(), 0u);
}

TEST(TimeWait, TimeWaitOwnerKeepsBlockingAPlainBind) {
    TwFixture f;
    f.add(f.t0);
    auto plain = f.ports.bind(ports::Protocol::Tcp, wire::Ipv4Address::unspecified(), 40000, {});
    ASSERT_FALSE(plain);
    EXPECT_EQ(plain.error().value, EADDRINUSE);
}

TEST(TimeWait, RetransmittedFinIsAckedAndRestartsTheTimer) {
    TwFixture f;
    auto h = f.add(f.t0);
    const Instant later = f.t0 + Duration::from_secs(30);
    // The peer's FIN was at 4999 (rcv_nxt 5000 counts it).
    auto v = f.table.process(h, later, segment(4999, flags::FIN | flags::ACK, 800), 0);
    EXPECT_EQ(v.action, Action::Ack);
    EXPECT_EQ(f.table.poll_at(), later + Duration::from_secs(60));
    const wire::TcpRepr ack = f.table.ack_for(h, later);
    EXPECT_EQ(ack.seq, wire::SeqNumber(1000));
    EXPECT_EQ(ack.ack, wire::SeqNumber(5000));
    EXPECT_EQ(ack.flags, flags::ACK);
    ASSERT_TRUE(ack.options.timestamp);
    EXPECT_EQ(ack.options.timestamp->echo, 700u);
    // TSval: the millisecond clock plus the offset the connection had, the
    // keyed hash of the address pair (not stored in the record).
    EXPECT_EQ(ack.options.timestamp->value,
              static_cast<uint32_t>(later.millis()) + f.secrets.ts_offset(local, remote));
}

TEST(TimeWait, InWindowRstKillsTheEntryWithRfc1337Off) {
    TwFixture f;
    auto h = f.add(f.t0);
    auto v = f.table.process(h, f.t0 + Duration::from_secs(1), segment(5000, flags::RST, 800), 0);
    EXPECT_EQ(v.action, Action::Killed);
    EXPECT_FALSE(f.table.find(f.tuple()));
    EXPECT_EQ(f.table.counters().killed_by_rst, 1u);
}

TEST(TimeWait, InWindowRstIsIgnoredWithRfc1337On) {
    TwFixture f;
    ASSERT_FALSE(f.tunables.set("net.ipv4.tcp_rfc1337", "1"));
    auto h = f.add(f.t0);
    auto v = f.table.process(h, f.t0 + Duration::from_secs(1), segment(5000, flags::RST, 800), 0);
    EXPECT_EQ(v.action, Action::Drop);
    EXPECT_TRUE(f.table.find(f.tuple()));
}

TEST(TimeWait, PawsRejectsAnOldDuplicate) {
    TwFixture f;
    auto h = f.add(f.t0);
    // TSval 600 < ts_recent 700: an old duplicate from the previous incarnation.
    auto v = f.table.process(h, f.t0 + Duration::from_secs(1), segment(5000, flags::ACK, 600), 0);
    EXPECT_TRUE(v.paws_rejected);
    EXPECT_EQ(v.action, Action::Ack);  // answered with a (rate-limited) ACK
    EXPECT_EQ(f.table.counters().paws_rejected, 1u);
    // An old SYN is refused too: it is not a new connection.
    auto syn = f.table.process(h, f.t0 + Duration::from_secs(2), segment(9000, flags::SYN, 600), 0);
    EXPECT_NE(syn.action, Action::Syn);
}

TEST(TimeWait, NewerSynReopensWithIsnAboveTheOldSequenceSpace) {
    TwFixture f;
    auto h = f.add(f.t0);
    auto v = f.table.process(h, f.t0 + Duration::from_secs(5), segment(9000, flags::SYN, 900), 0);
    EXPECT_EQ(v.action, Action::Syn);
    EXPECT_EQ(v.isn, wire::SeqNumber(1000 + 65535 + 2));
}

TEST(TimeWait, SynWithLowerSeqButNewerTimestampReopens) {
    TwFixture f;
    auto h = f.add(f.t0);
    auto v = f.table.process(h, f.t0 + Duration::from_secs(5), segment(10, flags::SYN, 701), 0);
    EXPECT_EQ(v.action, Action::Syn);
}

TEST(TimeWait, SynWithLowerSeqAndNoTimestampsGetsAnAck) {
    TwFixture f;
    auto h = f.add(f.t0, /*timestamps=*/false);
    auto v = f.table.process(h, f.t0 + Duration::from_secs(5), segment(10, flags::SYN), 0);
    EXPECT_EQ(v.action, Action::Ack);
    EXPECT_TRUE(f.table.find(f.tuple()));
}

TEST(TimeWait, OutOfWindowAcksAreRateLimited) {
    TwFixture f;
    auto h = f.add(f.t0);
    const Instant t = f.t0 + Duration::from_secs(1);
    EXPECT_EQ(f.table.process(h, t, segment(7000, flags::ACK, 800), 0).action, Action::Ack);
    EXPECT_EQ(f.table.process(h, t + Duration::from_millis(100), segment(7000, flags::ACK, 800), 0).action,
              Action::Drop);
    EXPECT_EQ(f.table.process(h, t + Duration::from_millis(500), segment(7000, flags::ACK, 800), 0).action,
              Action::Ack);
    EXPECT_EQ(f.table.counters().acks_rate_limited, 1u);
}

TEST(TimeWait, OrphanedFinWait2DataIsResetAndFinEntersTimeWait) {
    {
        TwFixture f;
        auto h = f.add(f.t0, true, TimeWaitSubstate::FinWait2);
        auto v = f.table.process(h, f.t0 + Duration::from_secs(1), segment(5000, flags::ACK | flags::PSH, 800), 10);
        EXPECT_EQ(v.action, Action::Reset);
        EXPECT_FALSE(f.table.find(f.tuple()));
    }
    {
        TwFixture f;
        ASSERT_FALSE(f.tunables.set("tcp_fin_timeout", "30000"));
        auto h = f.add(f.t0, true, TimeWaitSubstate::FinWait2);
        EXPECT_EQ(f.table.poll_at(), f.t0 + Duration::from_secs(30));
        const Instant t = f.t0 + Duration::from_secs(1);
        auto v = f.table.process(h, t, segment(5000, flags::FIN | flags::ACK, 800), 0);
        EXPECT_EQ(v.action, Action::Ack);
        EXPECT_EQ(f.table.ack_for(h, t).ack, wire::SeqNumber(5001));
        EXPECT_EQ(f.table.poll_at(), t + Duration::from_secs(60));  // now a real TIME_WAIT
    }
    {
        TwFixture f;
        ASSERT_FALSE(f.tunables.set("tcp_fin_timeout", "30000"));
        f.add(f.t0, true, TimeWaitSubstate::FinWait2);
        f.table.poll(f.t0 + Duration::from_secs(30));
        EXPECT_EQ(f.table.size(), 0u);  // the peer never closed: gone after tcp_fin_timeout
    }
}

TEST(TimeWait, ReuseNeedsTwReuseTimestampsAndTheDelay) {
    for (int setting : {0, 1, 2}) {
        TwFixture f;
        ASSERT_FALSE(f.tunables.set("tcp_tw_reuse", std::to_string(setting)));
        f.add(f.t0);
        EXPECT_FALSE(f.table.take_for_reuse(f.tuple(), f.t0 + Duration::from_millis(500), false)) << setting;
        auto reused = f.table.take_for_reuse(f.tuple(), f.t0 + Duration::from_millis(1001), false);
        EXPECT_EQ(reused.has_value(), setting == 1) << "2 means loopback only; ustack never is";
        if (reused) {
            EXPECT_EQ(reused->write_seq, wire::SeqNumber(1000 + 65537));
            EXPECT_EQ(reused->ts_recent, 700u);
            EXPECT_FALSE(f.table.find(f.tuple()));
            EXPECT_EQ(f.table.counters().recycled, 1u);
        }
    }
}

TEST(TimeWait, ReuseNeverWithoutTimestamps) {
    TwFixture f;
    ASSERT_FALSE(f.tunables.set("tcp_tw_reuse", "1"));
    f.add(f.t0, /*timestamps=*/false);
    EXPECT_FALSE(f.table.take_for_reuse(f.tuple(), f.t0 + Duration::from_secs(10), false));
    EXPECT_FALSE(f.table.take_for_reuse(f.tuple(), f.t0 + Duration::from_secs(10), true));
}

TEST(TimeWait, ExplicitlyBoundSocketReusesWhateverTwReuseSays) {
    TwFixture f;
    ASSERT_FALSE(f.tunables.set("tcp_tw_reuse", "0"));
    f.add(f.t0);
    auto reused = f.table.take_for_reuse(f.tuple(), f.t0 + Duration::from_millis(1), true);
    ASSERT_TRUE(reused);  // tcp_twsk_unique with twp == NULL
    EXPECT_EQ(reused->write_seq, wire::SeqNumber(1000 + 65537));
}

TEST(TimeWait, MaxBucketsOverflowSkipsTimeWait) {
    TwFixture f;
    ASSERT_FALSE(f.tunables.set("tcp_max_tw_buckets", "2"));
    f.add(f.t0, true, TimeWaitSubstate::TimeWait, 40000);
    f.add(f.t0, true, TimeWaitSubstate::TimeWait, 40001);
    auto bound = f.ports.bind(ports::Protocol::Tcp, local, 40002, {});
    ASSERT_TRUE(bound);
    TimeWaitState s;
    s.tuple = f.tuple(40002);
    EXPECT_FALSE(f.table.insert(f.t0, s, TimeWaitSubstate::TimeWait, *bound));
    EXPECT_EQ(f.table.counters().overflow, 1u);
    EXPECT_EQ(f.ports.owner_count(ports::Protocol::Tcp, 40002), 0u);  // the port is free at once
}

TEST(TimeWait, KillMatchingDropsEntriesByEitherEnd) {
    TwFixture f;
    f.add(f.t0, true, TimeWaitSubstate::TimeWait, 40000);
    f.add(f.t0, true, TimeWaitSubstate::TimeWait, 40001);
    EXPECT_EQ(f.table.kill_matching(local, 40001), 1u);
    EXPECT_EQ(f.table.kill_matching(remote, 80), 1u);
    EXPECT_EQ(f.table.size(), 0u);
}

// kill_if (the engine's kill_time_wait, `ss -K`): any predicate on the
// 4-tuple; the ports are released and the kills counted.
TEST(TimeWait, KillIfDropsWhatThePredicateMatches) {
    TwFixture f;
    f.add(f.t0, true, TimeWaitSubstate::TimeWait, 40000);
    f.add(f.t0, true, TimeWaitSubstate::TimeWait, 40001);
    f.add(f.t0, true, TimeWaitSubstate::TimeWait, 40002);
    EXPECT_EQ(f.table.kill_if([](const FourTuple& t) { return t.local_port >= 40001; }), 2u);
    EXPECT_EQ(f.table.size(), 1u);
    EXPECT_EQ(f.ports.owner_count(ports::Protocol::Tcp, 40001), 0u);
    EXPECT_EQ(f.ports.owner_count(ports::Protocol::Tcp, 40000), 1u);
    EXPECT_EQ(f.table.counters().killed_by_admin, 2u);
}

// fin_wait2_count(): orphaned FIN_WAIT2 records, until their FIN turns
// them into TIME_WAIT or they go.
TEST(TimeWait, FinWait2CountFollowsTheSubstate) {
    TwFixture f;
    auto h = f.add(f.t0, true, TimeWaitSubstate::FinWait2, 40000);
    f.add(f.t0, true, TimeWaitSubstate::FinWait2, 40001);
    f.add(f.t0, true, TimeWaitSubstate::TimeWait, 40002);
    EXPECT_EQ(f.table.fin_wait2_count(), 2u);
    EXPECT_EQ(f.table.substate(h), TimeWaitSubstate::FinWait2);
    f.table.process(h, f.t0 + Duration::from_secs(1), segment(5000, flags::FIN | flags::ACK, 800), 0);
    EXPECT_EQ(f.table.substate(h), TimeWaitSubstate::TimeWait);
    EXPECT_EQ(f.table.fin_wait2_count(), 1u);
    EXPECT_EQ(f.table.kill_matching(local, 40001), 1u);
    EXPECT_EQ(f.table.fin_wait2_count(), 0u);
    EXPECT_EQ(f.table.size(), 2u);
}

TEST(TimeWait, IndexStaysConsistentUnderRandomInsertAndRemove) {
    Tunables tunables;
    tunables.tcp_max_tw_buckets = 1u << 30;
    SeededRandom random(9);
    ports::PortManager ports(tunables, random);
    SequenceSecrets secrets(random);
    TimeWaitTable table(tunables, ports, secrets, random);
    std::map<uint32_t, bool> model;  // key = (lport << 16 | rport)
    Instant now = Instant::from_secs(1);
    for (int i = 0; i < 50000; ++i) {
        const auto lport = static_cast<uint16_t>(1 + random.below(300));
        const auto rport = static_cast<uint16_t>(1 + random.below(50));
        const FourTuple t{local, remote, lport, rport};
        const uint32_t k = uint32_t{lport} << 16 | rport;
        if (random.chance(0.6)) {
            ports::Reservation res;
            res.address = local;
            res.port = lport;
            TimeWaitState s;
            s.tuple = t;
            ASSERT_TRUE(table.insert(now, s, TimeWaitSubstate::TimeWait, res));
            model[k] = true;
        } else if (auto h = table.find(t)) {
            table.kill(*h);
            model.erase(k);
        } else {
            ASSERT_FALSE(model.contains(k));
        }
        now += Duration::from_micros(10);
    }
    ASSERT_EQ(table.size(), model.size());
    for (const auto& [k, present] : model) {
        EXPECT_TRUE(table.find(FourTuple{local, remote, static_cast<uint16_t>(k >> 16), static_cast<uint16_t>(k)}));
    }
}

TEST(TimeWait, AMillionEntriesAtUnderSixtyFourBytesEach) {
    Tunables tunables;
    tunables.tcp_max_tw_buckets = 2000000;
    SeededRandom random(5);
    ports::PortManager ports(tunables, random);
    SequenceSecrets secrets(random);
    TimeWaitTable table(tunables, ports, secrets, random);
    const Instant now = Instant::from_secs(1);
    for (uint32_t i = 0; i < 1000000; ++i) {
        ports::Reservation res;
        res.address = local;
        res.port = static_cast<uint16_t>(32768 + i % 28000);
        TimeWaitState s;
        s.tuple = FourTuple{local, wire::Ipv4Address(10, 1, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8)),
                            res.port, static_cast<uint16_t>(1 + (i & 0xff))};
        ASSERT_TRUE(table.insert(now, s, TimeWaitSubstate::TimeWait, res));
    }
    ASSERT_EQ(table.size(), 1000000u);
    const double per_entry = static_cast<double>(table.memory_bytes()) / 1e6;
    std::printf("TIME_WAIT table: %.1f bytes per entry at 1M entries (+ %zu bytes of port table)\n", per_entry,
                ports.memory_bytes());
    EXPECT_LE(per_entry, 65.0) << "record 56 B + a 4-byte index slot at load >= 1/2 (64.6 measured)";
    table.poll(now + Duration::from_secs(60));
    EXPECT_EQ(table.size(), 0u);
    EXPECT_EQ(ports.owner_count(ports::Protocol::Tcp, 32768), 0u);
}

}  // namespace
}  // namespace ustack::tcp
