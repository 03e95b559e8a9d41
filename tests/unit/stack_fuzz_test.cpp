// Malformed input must be counted and dropped, never crash or corrupt
// state: tens of thousands of random and mutated frames go into a stack,
// which must still answer a ping afterwards. Run under SANITIZE=1 this is
// the ASan/UBSan check of every parser and of the input path.
#include <gtest/gtest.h>

#include "netdev/pair.h"
#include "stack/stack.h"
#include "stack/wire/arp.h"
#include "stack/wire/icmpv4.h"
#include "stack/wire/tcp.h"
#include "stack/wire/udp.h"

namespace ustack {
namespace {

const wire::MacAddress our_mac{{0x02, 0, 0, 0, 0, 0x01}};
const wire::MacAddress peer_mac{{0x02, 0, 0, 0, 0, 0x02}};
const wire::Ipv4Address our_ip{10, 1, 0, 1};
const wire::Ipv4Address peer_ip{10, 1, 0, 2};

using Frame = std::vector<uint8_t>;

Frame ethernet(wire::EtherType type, size_t payload_len) {
    Frame frame(14 + payload_len);
    wire::EthernetRepr{our_mac, peer_mac, static_cast<uint16_t>(type)}.emit(frame);
    return frame;
}

Frame ip_frame(uint8_t protocol, const std::vector<uint8_t>& l4, uint16_t ident = 1, bool mf = false,
               uint16_t offset = 0) {
    Frame frame = ethernet(wire::EtherType::Ipv4, 20 + l4.size());
    wire::Ipv4Repr ip;
    ip.src = peer_ip;
    ip.dst = our_ip;
    ip.protocol = protocol;
    ip.payload_len = static_cast<uint16_t>(l4.size());
    ip.ident = ident;
    ip.more_fragments = mf;
    ip.fragment_offset = offset;
    ip.emit(wire::MutByteSpan(frame).subspan(14));
    std::copy(l4.begin(), l4.end(), frame.begin() + 34);
    return frame;
}

std::vector<Frame> templates() {
    std::vector<Frame> out;
    {
        Frame f = ethernet(wire::EtherType::Arp, 28);
        wire::ArpRepr arp{wire::ArpOperation::Request, peer_mac, peer_ip, {}, our_ip};
        arp.emit(wire::MutByteSpan(f).subspan(14));
        out.push_back(f);
        arp.operation = wire::ArpOperation::Reply;
        arp.target_mac = our_mac;
        arp.emit(wire::MutByteSpan(f).subspan(14));
        out.push_back(f);
    }
    const std::vector<uint8_t> data(40, 0x5a);
    {
        wire::IcmpRepr echo;
        echo.type = wire::IcmpType::EchoRequest;
        echo.ident = 3;
        echo.seq_no = 4;
        echo.data = data;
        std::vector<uint8_t> l4(echo.buffer_len());
        echo.emit(l4);
        out.push_back(ip_frame(1, l4));
    }
    for (uint16_t port : {5353, 4444}) {  // bound, unbound
        std::vector<uint8_t> l4(8 + data.size());
        wire::UdpRepr{1234, port}.emit(l4, peer_ip, our_ip, data);
        out.push_back(ip_frame(17, l4));
    }
    {
        wire::TcpRepr syn;
        syn.src_port = 40000;
        syn.dst_port = 80;
        syn.seq = wire::SeqNumber(1000);
        syn.flags = wire::tcp_flags::SYN;
        syn.window = 65535;
        syn.options.mss = 1460;
        syn.options.window_scale = 7;
        syn.options.sack_permitted = true;
        syn.options.timestamp = wire::TcpTimestamp{1, 0};
        std::vector<uint8_t> l4(syn.header_len());
        syn.emit(l4, peer_ip, our_ip, {});
        out.push_back(ip_frame(6, l4));
    }
    {
        // Fragments of one UDP datagram, and an ICMP error quoting one of ours.
        std::vector<uint8_t> chunk(64, 0x11);
        out.push_back(ip_frame(17, chunk, 77, true, 0));
        out.push_back(ip_frame(17, chunk, 77, true, 64));
        out.push_back(ip_frame(17, chunk, 77, false, 128));
        std::vector<uint8_t> quoted(28);
        wire::Ipv4Repr ours;
        ours.src = our_ip;
        ours.dst = peer_ip;
        ours.protocol = 17;
        ours.payload_len = 8;
        ours.emit(quoted);
        wire::IcmpRepr unreach;
        unreach.type = wire::IcmpType::DstUnreachable;
        unreach.code = 3;
        unreach.data = quoted;
        std::vector<uint8_t> l4(unreach.buffer_len());
        unreach.emit(l4);
        out.push_back(ip_frame(1, l4));
    }
    return out;
}

Frame mutate(Frame frame, SeededRandom& rng) {
    const uint32_t kind = rng.below(6);
    if (frame.empty()) {
        return frame;
    }
    switch (kind) {
    case 0: {  // flip a few bits
        const uint32_t flips = 1 + rng.below(4);
        for (uint32_t i = 0; i < flips; ++i) {
            frame[rng.below(static_cast<uint32_t>(frame.size()))] ^= static_cast<uint8_t>(1u << rng.below(8));
        }
        break;
    }
    case 1:  // truncate anywhere
        frame.resize(rng.below(static_cast<uint32_t>(frame.size())));
        break;
    case 2: {  // lie in a header length or offset field (IP len, IHL, UDP len, TCP offset)
        static constexpr size_t fields[] = {16, 17, 14, 20, 21, 38, 39, 46};
        const size_t at = fields[rng.below(std::size(fields))];
        if (at < frame.size()) {
            frame[at] = static_cast<uint8_t>(rng.next_u32());
        }
        break;
    }
    case 3: {  // append garbage
        const uint32_t extra = rng.below(1600);
        for (uint32_t i = 0; i < extra; ++i) {
            frame.push_back(static_cast<uint8_t>(rng.next_u32()));
        }
        break;
    }
    case 4: {  // overwrite a run of bytes with 0x00 or 0xff
        const size_t start = rng.below(static_cast<uint32_t>(frame.size()));
        const size_t len = std::min<size_t>(frame.size() - start, 1 + rng.below(8));
        std::fill_n(frame.begin() + static_cast<long>(start), len, rng.chance(0.5) ? 0x00 : 0xff);
        break;
    }
    default: {  // TCP options area garbage (bad option lengths)
        for (size_t i = 54; i < frame.size() && i < 74; ++i) {
            frame[i] = static_cast<uint8_t>(rng.next_u32());
        }
        break;
    }
    }
    return frame;
}

TEST(StackFuzz, RandomAndMutatedFramesAreCountedAndDroppedWithoutCrashing) {
    netdev::DevicePair pair = netdev::make_device_pair(our_mac, peer_mac, 1500);
    SeededRandom stack_random(1);
    StackConfig config;
    config.address = wire::Ipv4Cidr{our_ip, 24};
    config.icmp_errors_per_sec = 1000000;  // let every error path run
    config.icmp_errors_burst = 1000000;
    Stack stack(config, *pair.a, stack_random);
    const auto sock = stack.udp().open();
    ASSERT_TRUE(stack.udp().bind(sock, {wire::Ipv4Address::unspecified(), 5353}));

    SeededRandom rng(20261124);
    const std::vector<Frame> valid = templates();
    Instant now = Instant::from_secs(1);
    constexpr int random_frames = 10000;
    constexpr int mutated_frames = 20000;
    std::vector<uint8_t> sink(70000);
    int injected = 0;
    for (int i = 0; i < random_frames + mutated_frames; ++i) {
        Frame frame;
        if (i < random_frames) {
            frame.resize(rng.below(1515));
            for (auto& byte : frame) {
                byte = static_cast<uint8_t>(rng.next_u32());
            }
            // Half of them addressed to us so they get past the MAC filter.
            if (frame.size() >= 14 && rng.chance(0.5)) {
                std::copy(our_mac.bytes.begin(), our_mac.bytes.end(), frame.begin());
                frame[12] = 0x08;
                frame[13] = rng.chance(0.5) ? 0x00 : 0x06;
            }
        } else {
            frame = mutate(valid[rng.below(static_cast<uint32_t>(valid.size()))], rng);
        }
        if (frame.size() > 1514) {
            frame.resize(1514);
        }
        ASSERT_TRUE(pair.b->send(now, frame));
        ++injected;
        now += Duration::from_micros(50);
        stack.poll(now);
        while (stack.udp().recv_from(sock, sink)) {
        }
        while (pair.b->receive(now)) {
        }
    }
    stack.poll(now + Duration::from_secs(60));  // reassembly and ARP timers
    EXPECT_EQ(stack.counters().get(Counter::rx_frames), static_cast<uint64_t>(injected));
    EXPECT_GT(stack.counters().total_drops(), static_cast<uint64_t>(injected) / 2);
    EXPECT_GT(stack.counters().get(Counter::drop_ip_bad_checksum), 0u);
    EXPECT_GT(stack.counters().get(Counter::drop_ip_truncated) + stack.counters().get(Counter::drop_ip_bad_length), 0u);
    EXPECT_GT(stack.counters().get(Counter::drop_udp_bad_checksum) + stack.counters().get(Counter::drop_udp_malformed), 0u);
    EXPECT_GT(stack.counters().get(Counter::drop_eth_not_for_us), 0u);
    EXPECT_GT(stack.counters().get(Counter::drop_arp_malformed) + stack.counters().get(Counter::drop_arp_unsupported), 0u);

    // Still healthy: a valid echo request gets its reply.
    now += Duration::from_secs(61);
    while (pair.b->receive(now)) {
    }
    ASSERT_TRUE(pair.b->send(now, valid[2]));
    stack.poll(now);
    bool got_reply = false;
    while (auto out = pair.b->receive(now)) {
        auto eth = wire::parse_ethernet(*out);
        if (!eth || eth->repr.ethertype != 0x0800) {
            continue;  // ARP request for the peer first
        }
        auto ip = wire::parse_ipv4(eth->payload);
        ASSERT_TRUE(ip);
        auto icmp = wire::parse_icmpv4(ip->payload);
        ASSERT_TRUE(icmp);
        got_reply = icmp->type == wire::IcmpType::EchoReply && icmp->ident == 3;
    }
    if (!got_reply) {
        // The reply waits for ARP (the cache may have aged out): answer it.
        Frame arp_reply = valid[1];
        ASSERT_TRUE(pair.b->send(now, arp_reply));
        stack.poll(now);
        while (auto out = pair.b->receive(now)) {
            auto eth = wire::parse_ethernet(*out);
            if (eth && eth->repr.ethertype == 0x0800) {
                auto ip = wire::parse_ipv4(eth->payload);
                auto icmp = ip ? wire::parse_icmpv4(ip->payload) : decltype(wire::parse_icmpv4({})){
                                                                       make_unexpected(wire::ParseError::Truncated)};
                got_reply = icmp && icmp->type == wire::IcmpType::EchoReply;
            }
        }
    }
    EXPECT_TRUE(got_reply);
}

}  // namespace
}  // namespace ustack
