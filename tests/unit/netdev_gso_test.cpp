// Device offloads: the virtio-net header's bytes, checksum completion, and
// the GSO coalescer — which segments join into one frame and which do not,
// and that the kernel's segmentation of a joined frame (tcp_gso_segment,
// re-done here) gives back exactly the segments the engine emitted.
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "netdev/gso_coalescer.h"
#include "netdev/virtio_net_hdr.h"
#include "stack/core/random.h"
#include "stack/stack.h"
#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"

namespace ustack::netdev {
namespace {

namespace tf = wire::tcp_flags;
using Bytes = std::vector<uint8_t>;

constexpr wire::MacAddress mac_a{{0x02, 0, 0, 0, 0, 0x0a}};
constexpr wire::MacAddress mac_b{{0x02, 0, 0, 0, 0, 0x0b}};
const wire::Ipv4Address ip_a(10, 0, 0, 1);
const wire::Ipv4Address ip_b(10, 0, 0, 2);
constexpr size_t mss = 1448;

struct SegmentSpec {
    uint32_t seq = 1000;
    size_t payload_len = mss;
    uint8_t flags = tf::ACK;
    uint16_t src_port = 40000;
    uint32_t ack = 5000;
    uint16_t ident = 1;
    bool sack_block = false;
};

// An Ethernet + IPv4 + TCP frame as the stack emits it (timestamps on,
// checksums complete); payload byte i of the stream is (seq + i) & 0xff.
Bytes tcp_frame(const SegmentSpec& s) {
    wire::TcpRepr tcp;
    tcp.src_port = s.src_port;
    tcp.dst_port = 80;
    tcp.seq = wire::SeqNumber(s.seq);
    tcp.ack = wire::SeqNumber(s.ack);
    tcp.flags = s.flags;
    tcp.window = 512;
    tcp.options.timestamp = wire::TcpTimestamp{777, 555};
    if (s.sack_block) {
        tcp.options.sack_count = 1;
        tcp.options.sack_blocks[0] = {wire::SeqNumber(s.ack + 100), wire::SeqNumber(s.ack + 200)};
    }
    Bytes payload(s.payload_len);
    for (size_t i = 0; i < payload.size(); ++i) {
        payload[i] = static_cast<uint8_t>((s.seq + i) & 0xff);
    }
    const size_t tcp_len = tcp.header_len() + payload.size();
    wire::Ipv4Repr ip;
    ip.src = ip_a;
    ip.dst = ip_b;
    ip.protocol = 6;
    ip.payload_len = static_cast<uint16_t>(tcp_len);
    ip.ident = s.ident;
    ip.dont_fragment = true;
    Bytes frame(14 + 20 + tcp_len);
    wire::EthernetRepr{mac_b, mac_a, static_cast<uint16_t>(wire::EtherType::Ipv4)}.emit(frame);
    ip.emit(wire::MutByteSpan(frame).subspan(14));
    tcp.emit(wire::MutByteSpan(frame).subspan(34), ip_a, ip_b, payload);
    return frame;
}

// What the kernel does with a GSO frame (inet_gso_segment +
// tcp_gso_segment, with the checksum finished as a device would): every
// segment gets a copy of the headers, its own sequence number, total
// length, IP ident (first + i), IP checksum; PSH and FIN only on the last;
// a full TCP checksum.
std::vector<Bytes> kernel_segment(std::span<const uint8_t> frame, const VirtioNetHdr& h) {
    std::vector<Bytes> out;
    const size_t headers = h.hdr_len;
    const size_t ip_len = size_t{static_cast<uint8_t>(frame[14] & 0x0f)} * 4;
    const uint32_t seq0 = wire::read_u32(frame, 14 + ip_len + 4);
    const uint16_t ident0 = wire::read_u16(frame, 14 + 4);
    const uint8_t flags = frame[14 + ip_len + 13];
    size_t offset = headers;
    for (size_t i = 0; offset < frame.size(); ++i) {
        const size_t len = std::min<size_t>(h.gso_size, frame.size() - offset);
        const bool last = offset + len == frame.size();
        Bytes seg(frame.begin(), frame.begin() + static_cast<long>(headers));
        seg.insert(seg.end(), frame.begin() + static_cast<long>(offset), frame.begin() + static_cast<long>(offset + len));
        const wire::MutByteSpan ip = wire::MutByteSpan(seg).subspan(14);
        wire::write_u16(ip, 2, static_cast<uint16_t>(seg.size() - 14));
        wire::write_u16(ip, 4, static_cast<uint16_t>(ident0 + i));
        wire::write_u16(ip, 10, 0);
        wire::write_u16(ip, 10, wire::checksum::compute(ip.first(ip_len)));
        const wire::MutByteSpan tcp = ip.subspan(ip_len);
        wire::write_u32(tcp, 4, seq0 + static_cast<uint32_t>(offset - headers));
        tcp[13] = last ? flags : static_cast<uint8_t>(flags & ~(tf::PSH | tf::FIN));
        wire::write_u16(tcp, 16, 0);
        wire::write_u16(tcp, 16, wire::checksum::finish(wire::checksum::accumulate(
                                     tcp, wire::checksum::pseudo_header(ip_a, ip_b, 6, static_cast<uint16_t>(tcp.size())))));
        out.push_back(std::move(seg));
        offset += len;
    }
    return out;
}

// Feeds frames to a coalescer the way a device does and returns what it
// would write: (header, frame) per write.
struct Written {
    VirtioNetHdr header;
    Bytes frame;
    size_t segments = 0;
};
std::vector<Written> coalesce(const std::vector<Bytes>& frames, size_t max_ip_len = 65535) {
    GsoCoalescer gso(VirtioNetHdr::size, max_ip_len);
    std::vector<Written> out;
    auto flush = [&] {
        if (gso.empty()) {
            return;
        }
        const size_t segments = gso.segments();
        const std::span<const uint8_t> bytes = gso.finish();
        out.push_back({*VirtioNetHdr::decode(bytes), Bytes(bytes.begin() + VirtioNetHdr::size, bytes.end()), segments});
        EXPECT_EQ(out.back().header, gso.header());
        gso.clear();
    };
    for (const Bytes& f : frames) {
        if (gso.append(f)) {
            continue;
        }
        flush();
        if (!gso.start(f)) {
            out.push_back({VirtioNetHdr{}, f, 1});
        }
    }
    flush();
    return out;
}

std::vector<Bytes> run(uint32_t seq, size_t count, size_t len = mss) {
    std::vector<Bytes> frames;
    for (size_t i = 0; i < count; ++i) {
        SegmentSpec s;
        s.seq = seq + static_cast<uint32_t>(i * len);
        s.payload_len = len;
        s.ident = static_cast<uint16_t>(1 + i);
        frames.push_back(tcp_frame(s));
    }
    return frames;
}

TEST(VirtioNetHdr, EncodesLittleEndianFieldsInOrder) {
    VirtioNetHdr h;
    h.flags = VirtioNetHdr::flag_needs_csum;
    h.gso_type = VirtioNetHdr::gso_tcpv4;
    h.hdr_len = 66;
    h.gso_size = 1448;
    h.csum_start = 34;
    h.csum_offset = 16;
    Bytes bytes(VirtioNetHdr::size);
    h.encode(bytes);
    EXPECT_EQ(bytes, (Bytes{0x01, 0x01, 66, 0, 0xa8, 0x05, 34, 0, 16, 0}));
    EXPECT_EQ(VirtioNetHdr::decode(bytes), h);
    EXPECT_FALSE(VirtioNetHdr::decode(Bytes(9)).has_value());
    EXPECT_TRUE(h.needs_csum());
    EXPECT_TRUE(h.is_gso());
}

TEST(VirtioNetHdr, CompletesAPartialChecksumAsSkbChecksumHelp) {
    Bytes frame = tcp_frame({});
    const Bytes original = frame;
    // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum.
    const uint16_t tcp_len = static_cast<uint16_t>(frame.size() - 34);
    wire::write_u16(frame, 34 + 16,
                    static_cast<uint16_t>(~wire::checksum::finish(wire::checksum::pseudo_header(ip_a, ip_b, 6, tcp_len))));
    ASSERT_NE(frame, original);
    ASSERT_TRUE(complete_partial_checksum(frame, 34, 16));
    EXPECT_EQ(frame, original);
    // Offsets outside the frame: refused, frame untouched.
    EXPECT_FALSE(complete_partial_checksum(frame, static_cast<uint16_t>(frame.size()), 0));
    EXPECT_FALSE(complete_partial_checksum(frame, 34, static_cast<uint16_t>(frame.size())));
    EXPECT_EQ(frame, original);

    DeviceStats stats;
    VirtioNetHdr h;
    h.flags = VirtioNetHdr::flag_needs_csum;
    h.gso_type = VirtioNetHdr::gso_tcpv4;
    h.csum_start = 34;
    h.csum_offset = 16;
    wire::write_u16(frame, 34 + 16, 0x1234);  // garbage is fine: the TCP field is left to whoever needs it
    const Bytes lent = frame;
    const RxFrame rx = accept_offloaded(h, frame, stats);
    EXPECT_EQ(stats.rx_gso_frames, 1u);
    // The TCP checksum field of an unfragmented IPv4 packet: trusted, not
    // summed (tests/unit/rx_checksum_trust_test.cpp has the rest).
    EXPECT_EQ(rx.checksum, RxChecksum::partial);
    EXPECT_EQ(stats.rx_checksums_trusted, 1u);
    EXPECT_EQ(stats.rx_checksums_completed, 0u);
    EXPECT_EQ(frame, lent);
    auto ip = wire::parse_ipv4(wire::ByteSpan(frame).subspan(14));
    ASSERT_TRUE(ip);
}

TEST(GsoCoalescer, JoinsARunIntoOneFrameTheKernelCutsBackIntoTheSameSegments) {
    std::vector<Bytes> frames = run(1000, 4);
    // The last one short and with PSH, as the engine sends the tail.
    SegmentSpec tail;
    tail.seq = 1000 + 4 * mss;
    tail.payload_len = 300;
    tail.flags = tf::ACK | tf::PSH;
    tail.ident = 5;
    frames.push_back(tcp_frame(tail));

    const std::vector<Written> out = coalesce(frames);
    ASSERT_EQ(out.size(), 1u);
    const Written& w = out[0];
    EXPECT_EQ(w.segments, 5u);
    EXPECT_EQ(w.header.flags, VirtioNetHdr::flag_needs_csum);
    EXPECT_EQ(w.header.gso_type, VirtioNetHdr::gso_tcpv4);
    EXPECT_EQ(w.header.gso_size, mss);
    EXPECT_EQ(w.header.csum_start, 34);
    EXPECT_EQ(w.header.csum_offset, 16);
    EXPECT_EQ(w.header.hdr_len, 14 + 20 + 32);  // timestamps: 12 bytes of options
    EXPECT_EQ(w.frame.size(), 66 + 4 * mss + 300);
    // The IPv4 header is valid for the whole packet; the TCP checksum field
    // holds the pseudo-header sum over the whole TCP length.
    auto ip = wire::parse_ipv4(wire::ByteSpan(w.frame).subspan(14));
    ASSERT_TRUE(ip);
    EXPECT_EQ(ip->repr.payload_len, w.frame.size() - 34);
    EXPECT_EQ(wire::read_u16(w.frame, 34 + 16),
              static_cast<uint16_t>(~wire::checksum::finish(wire::checksum::pseudo_header(
                  ip_a, ip_b, 6, static_cast<uint16_t>(w.frame.size() - 34)))));
    EXPECT_EQ(w.frame[34 + 13], tf::ACK | tf::PSH);

    const std::vector<Bytes> segments = kernel_segment(w.frame, w.header);
    ASSERT_EQ(segments.size(), frames.size());
    for (size_t i = 0; i < frames.size(); ++i) {
        EXPECT_EQ(segments[i], frames[i]) << "segment " << i;
    }

    // A local receiver takes the frame whole (as a GRO packet): with the
    // checksum completed it is one valid 6 KiB segment.
    Bytes whole = w.frame;
    ASSERT_TRUE(complete_partial_checksum(whole, w.header.csum_start, w.header.csum_offset));
    auto tcp = wire::parse_tcp(wire::ByteSpan(whole).subspan(34), ip_a, ip_b);
    ASSERT_TRUE(tcp);
    EXPECT_EQ(tcp->payload.size(), 4 * mss + 300);
    EXPECT_EQ(tcp->repr.seq, wire::SeqNumber(1000));
}

TEST(GsoCoalescer, ASingleSegmentGoesOutUnchangedWithAnEmptyHeader) {
    const std::vector<Bytes> frames = run(1000, 1);
    const std::vector<Written> out = coalesce(frames);
    ASSERT_EQ(out.size(), 1u);
    EXPECT_EQ(out[0].header, VirtioNetHdr{});
    EXPECT_EQ(out[0].frame, frames[0]);
}

TEST(GsoCoalescer, WhatNeverStartsABatch) {
    GsoCoalescer gso;
    SegmentSpec pure_ack;
    pure_ack.payload_len = 0;
    EXPECT_FALSE(gso.start(tcp_frame(pure_ack)));
    for (uint8_t flag : {tf::SYN, tf::RST, tf::URG, tf::CWR}) {
        SegmentSpec s;
        s.flags = static_cast<uint8_t>(tf::ACK | flag);
        EXPECT_FALSE(gso.start(tcp_frame(s))) << int{flag};
    }
    Bytes arp(60, 0);
    arp[12] = 0x08;
    arp[13] = 0x06;
    EXPECT_FALSE(gso.start(arp));
    Bytes fragment = tcp_frame({});
    wire::write_u16(fragment, 14 + 6, 0x2000);  // MF
    EXPECT_FALSE(gso.start(fragment));
    Bytes truncated = tcp_frame({});
    truncated.resize(100);  // IPv4 length says more
    EXPECT_FALSE(gso.start(truncated));
    EXPECT_TRUE(gso.empty());
    EXPECT_FALSE(gso.append(tcp_frame({})));  // nothing to join
}

// Each case: two full segments, then one that must not join the batch.
struct NoJoinCase {
    const char* name;
    SegmentSpec third;
};

TEST(GsoCoalescer, WhatDoesNotJoin) {
    const uint32_t next = 1000 + 2 * mss;
    std::vector<NoJoinCase> cases;
    {
        SegmentSpec s;
        s.seq = next;
        s.src_port = 40001;
        cases.push_back({"another flow", s});
    }
    {
        SegmentSpec s;
        s.seq = next + 1;
        cases.push_back({"a gap", s});
    }
    {
        SegmentSpec s;
        s.seq = next - mss;
        cases.push_back({"a retransmission", s});
    }
    {
        SegmentSpec s;
        s.seq = next;
        s.flags = tf::ACK | tf::RST;
        cases.push_back({"RST", s});
    }
    {
        SegmentSpec s;
        s.seq = next;
        s.flags = tf::SYN | tf::ACK;
        cases.push_back({"SYN", s});
    }
    {
        SegmentSpec s;
        s.seq = next;
        s.sack_block = true;
        cases.push_back({"options of another length", s});
    }
    {
        SegmentSpec s;
        s.seq = next;
        s.ack = 6000;
        cases.push_back({"another ACK number", s});
    }
    {
        SegmentSpec s;
        s.seq = next;
        s.payload_len = mss + 1;
        cases.push_back({"longer than gso_size", s});
    }
    {
        SegmentSpec s;
        s.seq = next;
        s.payload_len = 0;
        cases.push_back({"no payload", s});
    }
    for (const NoJoinCase& c : cases) {
        std::vector<Bytes> frames = run(1000, 2);
        frames.push_back(tcp_frame(c.third));
        const std::vector<Written> out = coalesce(frames);
        ASSERT_EQ(out.size(), 2u) << c.name;
        EXPECT_EQ(out[0].segments, 2u) << c.name;
        EXPECT_EQ(out[1].segments, 1u) << c.name;
        EXPECT_EQ(out[1].frame, frames[2]) << c.name;
    }
}

TEST(GsoCoalescer, PshFinOrAShortSegmentEndsTheBatch) {
    for (uint8_t flag : {tf::PSH, tf::FIN}) {
        std::vector<Bytes> frames = run(1000, 2);
        SegmentSpec s;
        s.seq = 1000 + 2 * mss;
        s.ident = 3;  // run() gave 1 and 2
        s.flags = static_cast<uint8_t>(tf::ACK | flag);
        frames.push_back(tcp_frame(s));
        s.seq += mss + (flag == tf::FIN ? 1 : 0);
        s.flags = tf::ACK;
        frames.push_back(tcp_frame(s));
        const std::vector<Written> out = coalesce(frames);
        ASSERT_EQ(out.size(), 2u);
        EXPECT_EQ(out[0].segments, 3u);
        EXPECT_EQ(out[0].frame[34 + 13], tf::ACK | flag);  // the last segment's flags
        EXPECT_EQ(kernel_segment(out[0].frame, out[0].header)[2], frames[2]);
        EXPECT_EQ(out[1].frame, frames[3]);
    }
    std::vector<Bytes> frames = run(1000, 2);
    frames.push_back(run(1000 + 2 * mss, 1, 100)[0]);
    frames.push_back(run(1000 + 2 * mss + 100, 1, 100)[0]);
    const std::vector<Written> out = coalesce(frames);
    ASSERT_EQ(out.size(), 2u);
    EXPECT_EQ(out[0].segments, 3u);
    EXPECT_EQ(out[1].segments, 1u);
}

TEST(GsoCoalescer, NeverMoreThan64KiBOfIp) {
    // 100 segments of 1448 bytes: 45 fit in 65 535 bytes of IP packet
    // (52 bytes of headers + 45 * 1448 = 65 212).
    const std::vector<Bytes> frames = run(1000, 100);
    const std::vector<Written> out = coalesce(frames);
    ASSERT_EQ(out.size(), 3u);
    EXPECT_EQ(out[0].segments, 45u);
    EXPECT_EQ(out[1].segments, 45u);
    EXPECT_EQ(out[2].segments, 10u);
    size_t segments = 0;
    for (const Written& w : out) {
        EXPECT_LE(w.frame.size() - 14, 65535u);
        for (const Bytes& s : kernel_segment(w.frame, w.header)) {
            // Byte for byte, IP ident included: each batch starts at its
            // first segment's ident and the engine's are consecutive.
            EXPECT_EQ(s, frames[segments]) << "segment " << segments;
            ++segments;
        }
    }
    EXPECT_EQ(segments, frames.size());
    // A smaller limit: what the caller asked.
    EXPECT_EQ(coalesce(run(1000, 10), 20 + 32 + 3 * mss).front().segments, 3u);
}

// A device that holds every frame until flush(), as an offloading device
// holds segments to join them.
class HoldingDevice final : public NetDev {
public:
    bool send(Instant, std::span<const uint8_t> frame) override {
        held.emplace_back(frame.begin(), frame.end());
        return true;
    }
    void flush(Instant) override {
        written.insert(written.end(), held.begin(), held.end());
        held.clear();
    }
    bool has_pending_tx() const override { return !held.empty(); }
    std::optional<Frame> receive(Instant) override { return std::nullopt; }
    size_t mtu() const override { return 1500; }
    wire::MacAddress mac() const override { return mac_a; }
    const DeviceStats& stats() const override { return stats_; }

    std::vector<Bytes> held;
    std::vector<Bytes> written;

private:
    DeviceStats stats_;
};

TEST(StackFlush, NothingSentStaysHeldPastAPollAndPollAtSaysSo) {
    HoldingDevice device;
    SeededRandom random(1);
    StackConfig config;
    config.address = wire::Ipv4Cidr{ip_a, 24};
    Stack stack(config, device, random);
    const Instant t0 = Instant::from_secs(1);
    // Sent outside poll(): an ARP request for the echo's next hop.
    ASSERT_TRUE(stack.send_echo_request(t0, ip_b, 1, 1, Bytes(8, 0)));
    ASSERT_EQ(device.held.size(), 1u);
    EXPECT_TRUE(device.written.empty());
    // The loop is told to poll at once, and the poll writes it.
    ASSERT_TRUE(stack.poll_at().has_value());
    EXPECT_LE(*stack.poll_at(), t0);
    stack.poll(t0);
    EXPECT_TRUE(device.held.empty());
    EXPECT_EQ(device.written.size(), 1u);
    // Stack::flush() for callers that send outside poll() with no poll after.
    stack.announce(t0);
    stack.flush(t0);
    EXPECT_TRUE(device.held.empty());
    EXPECT_EQ(device.written.size(), 2u);
}

}  // namespace
}  // namespace ustack::netdev
