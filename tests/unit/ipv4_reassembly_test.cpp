#include "stack/ip/ipv4_reassembly.h"

#include <gtest/gtest.h>

namespace ustack::ip {
namespace {

struct Fragment {
    wire::Ipv4Packet packet;
    std::vector<uint8_t> bytes;
};

std::vector<uint8_t> datagram(size_t n) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) {
        v[i] = static_cast<uint8_t>(i * 13 + 1);
    }
    return v;
}

// Keeps the payload bytes alive alongside the packet view.
struct Fragments {
    std::vector<std::vector<uint8_t>> storage;
    wire::Ipv4Packet make(const std::vector<uint8_t>& whole, size_t offset, size_t len, bool more,
                          uint16_t ident = 9) {
        storage.emplace_back(whole.begin() + static_cast<long>(offset),
                             whole.begin() + static_cast<long>(offset + len));
        wire::Ipv4Packet p;
        p.repr.src = wire::Ipv4Address(10, 0, 0, 2);
        p.repr.dst = wire::Ipv4Address(10, 0, 0, 1);
        p.repr.protocol = 17;
        p.repr.ident = ident;
        p.repr.payload_len = static_cast<uint16_t>(len);
        p.repr.more_fragments = more;
        p.repr.fragment_offset = static_cast<uint16_t>(offset);
        p.header_len = 20;
        p.payload = storage.back();
        return p;
    }
};

TEST(Ipv4Reassembly, InOrderAndOutOfOrderGiveTheSameDatagram) {
    const auto whole = datagram(3000);
    for (bool reverse : {false, true}) {
        Ipv4Reassembler r;
        Fragments f;
        std::vector<wire::Ipv4Packet> parts{f.make(whole, 0, 1480, true), f.make(whole, 1480, 1480, true),
                                            f.make(whole, 2960, 40, false)};
        if (reverse) {
            std::reverse(parts.begin(), parts.end());
        }
        Ipv4Reassembler::Outcome last;
        for (const auto& p : parts) {
            last = r.add(Instant::zero(), p);
            EXPECT_FALSE(last.dropped);
        }
        ASSERT_TRUE(last.header);
        EXPECT_EQ(last.header->payload_len, 3000);
        EXPECT_FALSE(last.header->is_fragment());
        EXPECT_EQ(last.payload, whole);
        EXPECT_EQ(r.datagrams(), 0u);
        EXPECT_EQ(r.bytes_held(), 0u);
    }
}

TEST(Ipv4Reassembly, OverlapDiscardsTheWholeDatagram) {
    const auto whole = datagram(3000);
    Ipv4Reassembler r;
    Fragments f;
    EXPECT_FALSE(r.add(Instant::zero(), f.make(whole, 0, 1480, true)).dropped);
    auto overlap = r.add(Instant::zero(), f.make(whole, 1400, 1480, true));
    EXPECT_EQ(overlap.dropped, Counter::drop_ip_frag_overlap);
    EXPECT_EQ(r.datagrams(), 0u);
}

TEST(Ipv4Reassembly, ExactDuplicateIsIgnoredAlone) {
    const auto whole = datagram(1600);
    Ipv4Reassembler r;
    Fragments f;
    EXPECT_FALSE(r.add(Instant::zero(), f.make(whole, 0, 1480, true)).dropped);
    EXPECT_TRUE(r.add(Instant::zero(), f.make(whole, 0, 1480, true)).dropped);
    auto done = r.add(Instant::zero(), f.make(whole, 1480, 120, false));
    ASSERT_TRUE(done.header);
    EXPECT_EQ(done.payload, whole);
}

TEST(Ipv4Reassembly, NonFinalFragmentMustBeAMultipleOfEight) {
    const auto whole = datagram(100);
    Ipv4Reassembler r;
    Fragments f;
    EXPECT_EQ(r.add(Instant::zero(), f.make(whole, 0, 13, true)).dropped, Counter::drop_ip_bad_length);
}

TEST(Ipv4Reassembly, DatagramOver65535IsRefused) {
    std::vector<uint8_t> big(65600);
    Ipv4Reassembler r;
    Fragments f;
    EXPECT_EQ(r.add(Instant::zero(), f.make(big, 65512, 88, false)).dropped, Counter::drop_ip_frag_too_big);
}

TEST(Ipv4Reassembly, TimesOutAfterThirtySecondsReportingTheFirstFragment) {
    const auto whole = datagram(3000);
    Ipv4Reassembler r;
    Fragments f;
    r.add(Instant::from_secs(100), f.make(whole, 0, 1480, true));
    EXPECT_EQ(r.poll_at(), Instant::from_secs(130));
    EXPECT_TRUE(r.poll(Instant::from_secs(129)).empty());
    auto expired = r.poll(Instant::from_secs(130));
    ASSERT_EQ(expired.size(), 1u);
    EXPECT_TRUE(expired[0].have_first);
    EXPECT_EQ(expired[0].first_bytes, std::vector<uint8_t>(whole.begin(), whole.begin() + 8));
    EXPECT_EQ(r.bytes_held(), 0u);
}

TEST(Ipv4Reassembly, MemoryCeilingEvictsTheOldestDatagram) {
    ReassemblyConfig config;
    config.max_bytes = 4000;
    Ipv4Reassembler r(config);
    const auto whole = datagram(3000);
    Fragments f;
    r.add(Instant::from_secs(1), f.make(whole, 0, 1480, true, 1));
    r.add(Instant::from_secs(2), f.make(whole, 0, 1480, true, 2));
    EXPECT_EQ(r.datagrams(), 2u);
    // A third needs 1480 more than fits: the oldest (ident 1) goes.
    EXPECT_FALSE(r.add(Instant::from_secs(3), f.make(whole, 0, 1480, true, 3)).dropped);
    EXPECT_EQ(r.datagrams(), 2u);
    EXPECT_LE(r.bytes_held(), 4000u);
}

}  // namespace
}  // namespace ustack::ip
