// Received checksums the device vouches for (netdev::RxChecksum, Linux's
// skb->ip_summed): a NEEDS_CSUM frame (CHECKSUM_PARTIAL, from the local
// kernel) and a DATA_VALID frame (CHECKSUM_UNNECESSARY) reach TCP and UDP
// without being summed; the same bytes from a device that vouches for
// nothing are verified, and a bad checksum is dropped and counted. Every
// frame here carries a checksum field that is simply wrong (neither the
// real checksum nor the pseudo-header sum): accepted only when flagged,
// which shows nothing summed it.
#include <gtest/gtest.h>

#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "netdev/pcap_writer.h"
#include "netdev/virtio_net_hdr.h"
#include "stack/stack.h"
#include "stack/tcp/tcp_transport.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"
#include "stack/wire/udp.h"

namespace ustack::netdev {
namespace {

using Bytes = std::vector<uint8_t>;

constexpr size_t eth_len = wire::EthernetRepr::header_len;
constexpr size_t ip_len = wire::Ipv4Repr::header_len;
constexpr uint16_t l4_start = eth_len + ip_len;  // csum_start of every frame here
const wire::MacAddress kernel_mac{{0x02, 0, 0, 0, 0, 0x01}};
const wire::MacAddress stack_mac{{0x02, 0, 0, 0, 0, 0x02}};
const wire::Ipv4Address kernel_ip{10, 0, 0, 1};
const wire::Ipv4Address stack_ip{10, 0, 0, 2};
constexpr uint16_t tcp_port = 8080;
constexpr uint16_t udp_port = 7000;
constexpr uint16_t wrong_checksum = 0x1234;

// An Ethernet + IPv4 frame around `l4`, the L4 checksum field replaced by
// `wrong_checksum` (at `checksum_at` within l4).
Bytes frame_around(uint8_t protocol, const Bytes& l4, size_t checksum_at) {
    Bytes frame(l4_start + l4.size());
    wire::EthernetRepr eth{stack_mac, kernel_mac, static_cast<uint16_t>(wire::EtherType::Ipv4)};
    eth.emit(frame);
    wire::Ipv4Repr ip;
    ip.src = kernel_ip;
    ip.dst = stack_ip;
    ip.protocol = protocol;
    ip.ttl = 64;
    ip.payload_len = static_cast<uint16_t>(l4.size());
    ip.emit(wire::MutByteSpan(frame).subspan(eth_len));
    std::copy(l4.begin(), l4.end(), frame.begin() + l4_start);
    wire::write_u16(frame, l4_start + checksum_at, wrong_checksum);
    return frame;
}

Bytes syn_with_wrong_checksum() {
    wire::TcpRepr syn;
    syn.src_port = 40000;
    syn.dst_port = tcp_port;
    syn.seq = wire::SeqNumber(1000);
    syn.flags = wire::tcp_flags::SYN;
    syn.window = 65535;
    Bytes l4(syn.header_len());
    syn.emit(l4, kernel_ip, stack_ip, {});
    return frame_around(static_cast<uint8_t>(wire::IpProtocol::Tcp), l4, wire::TcpRepr::CHECKSUM.start);
}

Bytes udp_with_wrong_checksum() {
    const Bytes payload{'h', 'e', 'l', 'l', 'o'};
    wire::UdpRepr udp{40001, udp_port};
    Bytes l4(wire::UdpRepr::header_len + payload.size());
    udp.emit(l4, kernel_ip, stack_ip, payload);
    return frame_around(static_cast<uint8_t>(wire::IpProtocol::Udp), l4, wire::UdpRepr::CHECKSUM.start);
}

// A device that lends scripted frames with what it "knows" of their
// checksum, as TAP and AF_PACKET do with offloads; records what the stack
// sends.
class ScriptedDevice final : public NetDev {
public:
    void push(Bytes frame, RxChecksum checksum, uint16_t csum_offset = 0) {
        queue_.push_back(Scripted{std::move(frame), checksum, csum_offset});
    }
    std::optional<RxFrame> receive_view(Instant) override {
        if (queue_.empty()) {
            return std::nullopt;
        }
        lent_ = std::move(queue_.front());
        queue_.pop_front();
        ++stats_.rx_frames;
        const bool partial = lent_.checksum == RxChecksum::partial;
        return RxFrame{lent_.bytes, lent_.checksum, partial ? l4_start : uint16_t{0},
                       partial ? lent_.csum_offset : uint16_t{0}};
    }
    std::optional<Frame> receive(Instant now) override {
        auto lent = receive_view(now);
        if (!lent) {
            return std::nullopt;
        }
        complete_rx_checksum(*lent);
        return Frame(lent->bytes.begin(), lent->bytes.end());
    }
    bool send(Instant, std::span<const uint8_t> frame) override {
        sent.emplace_back(frame.begin(), frame.end());
        return true;
    }
    size_t mtu() const override { return 1500; }
    wire::MacAddress mac() const override { return stack_mac; }
    const DeviceStats& stats() const override { return stats_; }

    std::vector<Bytes> sent;

private:
    struct Scripted {
        Bytes bytes;
        RxChecksum checksum = RxChecksum::none;
        uint16_t csum_offset = 0;
    };
    std::deque<Scripted> queue_;
    Scripted lent_;
    DeviceStats stats_;
};

// A device that only implements receive(): the NetDev default lends its
// frames as RxChecksum::none (the in-memory pair, the fault injector).
class CopyingDevice final : public NetDev {
public:
    void push(Bytes frame) { queue_.push_back(std::move(frame)); }
    std::optional<Frame> receive(Instant) override {
        if (queue_.empty()) {
            return std::nullopt;
        }
        Frame f = std::move(queue_.front());
        queue_.pop_front();
        return f;
    }
    bool send(Instant, std::span<const uint8_t>) override { return true; }
    size_t mtu() const override { return 1500; }
    wire::MacAddress mac() const override { return stack_mac; }
    const DeviceStats& stats() const override { return stats_; }

private:
    std::deque<Bytes> queue_;
    DeviceStats stats_;
};

// A stack with a TCP listener on tcp_port and a UDP socket on udp_port.
struct Receiver {
    explicit Receiver(NetDev& device) : stack(config(), device, random) {
        stack.attach_tcp(&tcp);
        const tcp::SocketId listener = tcp.engine().open();
        EXPECT_TRUE(tcp.engine().bind(listener, tcp::Endpoint{wire::Ipv4Address::unspecified(), tcp_port}));
        EXPECT_TRUE(tcp.engine().listen(listener, 8));
        udp_socket = stack.udp().open();
        EXPECT_TRUE(stack.udp().bind(udp_socket, udp::Endpoint{wire::Ipv4Address::unspecified(), udp_port}));
    }
    ~Receiver() { stack.attach_tcp(nullptr); }
    static StackConfig config() {
        StackConfig c;
        c.address = wire::Ipv4Cidr{stack_ip, 24};
        return c;
    }
    uint64_t tcp_segments_taken() const { return tcp.engine().counters().segments_in; }
    uint64_t udp_datagrams_taken() const { return stack.counters().get(Counter::udp_datagrams_in); }

    SeededRandom random{7};
    Stack stack;
    tcp::TcpTransport tcp{stack, tcp::TcpConfig{}, random};
    udp::SocketId udp_socket{};
};

TEST(RxChecksumTrust, NeedsCsumFramesReachTcpAndUdpUnsummed) {
    ScriptedDevice device;
    Receiver rx(device);
    device.push(syn_with_wrong_checksum(), RxChecksum::partial, wire::TcpRepr::CHECKSUM.start);
    device.push(udp_with_wrong_checksum(), RxChecksum::partial, wire::UdpRepr::CHECKSUM.start);
    rx.stack.poll(Instant::zero());
    EXPECT_EQ(rx.tcp_segments_taken(), 1u);
    EXPECT_EQ(rx.tcp.counters().bad_checksum, 0u);
    EXPECT_EQ(rx.udp_datagrams_taken(), 1u);
    EXPECT_EQ(rx.stack.counters().get(Counter::drop_udp_bad_checksum), 0u);
    uint8_t buf[16];
    auto got = rx.stack.udp().recv_from(rx.udp_socket, buf);
    ASSERT_TRUE(got);
    EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), got->copied), "hello");
}

TEST(RxChecksumTrust, DataValidFramesReachTcpAndUdpUnsummed) {
    ScriptedDevice device;
    Receiver rx(device);
    device.push(syn_with_wrong_checksum(), RxChecksum::unnecessary);
    device.push(udp_with_wrong_checksum(), RxChecksum::unnecessary);
    rx.stack.poll(Instant::zero());
    EXPECT_EQ(rx.tcp_segments_taken(), 1u);
    EXPECT_EQ(rx.tcp.counters().bad_checksum, 0u);
    EXPECT_EQ(rx.udp_datagrams_taken(), 1u);
}

TEST(RxChecksumTrust, TheSameBytesUnflaggedAreDroppedAndCounted) {
    ScriptedDevice device;
    Receiver rx(device);
    device.push(syn_with_wrong_checksum(), RxChecksum::none);
    device.push(udp_with_wrong_checksum(), RxChecksum::none);
    rx.stack.poll(Instant::zero());
    EXPECT_EQ(rx.tcp_segments_taken(), 0u);
    EXPECT_EQ(rx.tcp.counters().bad_checksum, 1u);
    EXPECT_EQ(rx.udp_datagrams_taken(), 0u);
    EXPECT_EQ(rx.stack.counters().get(Counter::drop_udp_bad_checksum), 1u);
    EXPECT_TRUE(device.sent.empty());  // no SYN-ACK, no ICMP
}

TEST(RxChecksumTrust, ADeviceWithoutReceiveViewIsVerifiedAsBefore) {
    // The in-memory pair and the wrappers implement receive() only: the
    // default receive_view() lends those frames unvouched for.
    CopyingDevice device;
    Receiver rx(device);
    device.push(syn_with_wrong_checksum());
    device.push(udp_with_wrong_checksum());
    rx.stack.poll(Instant::zero());
    EXPECT_EQ(rx.tcp.counters().bad_checksum, 1u);
    EXPECT_EQ(rx.stack.counters().get(Counter::drop_udp_bad_checksum), 1u);

    // And a good checksum still passes that way.
    Bytes good = syn_with_wrong_checksum();
    wire::write_u16(good, l4_start + wire::TcpRepr::CHECKSUM.start, 0);
    const uint32_t pseudo = wire::checksum::pseudo_header(kernel_ip, stack_ip, 6,
                                                          static_cast<uint16_t>(good.size() - l4_start));
    wire::write_u16(good, l4_start + wire::TcpRepr::CHECKSUM.start,
                    wire::checksum::finish(wire::checksum::accumulate(wire::ByteSpan(good).subspan(l4_start), pseudo)));
    device.push(good);
    rx.stack.poll(Instant::zero());
    EXPECT_EQ(rx.tcp_segments_taken(), 1u);
}

TEST(RxChecksumTrust, AReassembledPacketIsVerifiedWhateverItsFragmentsSaid) {
    // Two fragments of a UDP datagram with a wrong checksum, both flagged
    // DATA_VALID: the whole packet is checked anyway (a vouched-for
    // fragment says nothing about the datagram).
    ScriptedDevice device;
    Receiver rx(device);
    Bytes whole = udp_with_wrong_checksum();  // 8 + 5 bytes of UDP
    const Bytes l4(whole.begin() + l4_start, whole.end());
    for (int part = 0; part < 2; ++part) {
        const size_t offset = part == 0 ? 0 : 8;
        const size_t len = part == 0 ? 8 : l4.size() - 8;
        Bytes frame(l4_start + len);
        wire::EthernetRepr eth{stack_mac, kernel_mac, static_cast<uint16_t>(wire::EtherType::Ipv4)};
        eth.emit(frame);
        wire::Ipv4Repr ip;
        ip.src = kernel_ip;
        ip.dst = stack_ip;
        ip.protocol = 17;
        ip.ttl = 64;
        ip.ident = 99;
        ip.payload_len = static_cast<uint16_t>(len);
        ip.fragment_offset = static_cast<uint16_t>(offset);
        ip.more_fragments = part == 0;
        ip.emit(wire::MutByteSpan(frame).subspan(eth_len));
        std::copy(l4.begin() + static_cast<long>(offset), l4.begin() + static_cast<long>(offset + len),
                  frame.begin() + l4_start);
        device.push(frame, RxChecksum::unnecessary);
    }
    rx.stack.poll(Instant::zero());
    EXPECT_EQ(rx.stack.counters().get(Counter::ip_reassembled), 1u);
    EXPECT_EQ(rx.stack.counters().get(Counter::drop_udp_bad_checksum), 1u);
    EXPECT_EQ(rx.udp_datagrams_taken(), 0u);
}

// The device side: what a virtio-net header makes of a received frame.
TEST(RxChecksumTrust, VirtioHeaderFlagsBecomeRxChecksum) {
    const Bytes frame = syn_with_wrong_checksum();
    VirtioNetHdr needs_csum;
    needs_csum.flags = VirtioNetHdr::flag_needs_csum;
    needs_csum.csum_start = l4_start;
    needs_csum.csum_offset = wire::TcpRepr::CHECKSUM.start;
    {
        DeviceStats stats;
        Bytes bytes = frame;
        const RxFrame rx = accept_offloaded(needs_csum, bytes, stats);
        EXPECT_EQ(rx.checksum, RxChecksum::partial);
        EXPECT_EQ(rx.csum_start, l4_start);
        EXPECT_EQ(rx.csum_offset, wire::TcpRepr::CHECKSUM.start);
        EXPECT_EQ(bytes, frame) << "a trusted partial checksum is left as it came";
        EXPECT_EQ(stats.rx_checksums_trusted, 1u);
        EXPECT_EQ(stats.rx_checksums_completed, 0u);
    }
    {
        // Offsets that do not name the TCP checksum field: completed here
        // (summed) and then verified by the stack like any frame.
        VirtioNetHdr elsewhere = needs_csum;
        elsewhere.csum_offset = 10;
        DeviceStats stats;
        Bytes bytes = frame;
        const RxFrame rx = accept_offloaded(elsewhere, bytes, stats);
        EXPECT_EQ(rx.checksum, RxChecksum::none);
        EXPECT_NE(bytes, frame);
        EXPECT_EQ(stats.rx_checksums_completed, 1u);
        EXPECT_EQ(stats.rx_checksums_trusted, 0u);
    }
    {
        VirtioNetHdr valid;
        valid.flags = VirtioNetHdr::flag_data_valid;
        DeviceStats stats;
        Bytes bytes = frame;
        EXPECT_EQ(accept_offloaded(valid, bytes, stats).checksum, RxChecksum::unnecessary);
        EXPECT_EQ(bytes, frame);
        EXPECT_EQ(stats.rx_checksums_trusted, 1u);
    }
    {
        DeviceStats stats;
        Bytes bytes = frame;
        EXPECT_EQ(accept_offloaded(VirtioNetHdr{}, bytes, stats).checksum, RxChecksum::none);
        EXPECT_EQ(stats.rx_checksums_trusted + stats.rx_checksums_completed, 0u);
    }
}

TEST(RxChecksumTrust, PartialChecksumMustNameTheL4FieldOfAnUnfragmentedPacket) {
    const Bytes tcp = syn_with_wrong_checksum();
    const Bytes udp = udp_with_wrong_checksum();
    EXPECT_TRUE(partial_checksum_is_l4(tcp, l4_start, wire::TcpRepr::CHECKSUM.start));
    EXPECT_TRUE(partial_checksum_is_l4(udp, l4_start, wire::UdpRepr::CHECKSUM.start));
    EXPECT_FALSE(partial_checksum_is_l4(tcp, l4_start, wire::UdpRepr::CHECKSUM.start));
    EXPECT_FALSE(partial_checksum_is_l4(udp, l4_start, wire::TcpRepr::CHECKSUM.start));
    EXPECT_FALSE(partial_checksum_is_l4(tcp, l4_start + 4, wire::TcpRepr::CHECKSUM.start - 4));
    Bytes fragment = udp;
    wire::write_u16(fragment, eth_len + wire::Ipv4Repr::FLG_OFF.start, 0x2000);  // MF
    EXPECT_FALSE(partial_checksum_is_l4(fragment, l4_start, wire::UdpRepr::CHECKSUM.start));
    Bytes truncated = tcp;
    truncated.resize(l4_start + 10);
    EXPECT_FALSE(partial_checksum_is_l4(truncated, l4_start, wire::TcpRepr::CHECKSUM.start));
}

TEST(RxChecksumTrust, APcapOfAPartialFrameShowsTheRealChecksum) {
    // The capture completes the checksum (the only place the receive path
    // sums such a frame); the stack still takes it.
    auto scripted = std::make_unique<ScriptedDevice>();
    ScriptedDevice& device = *scripted;
    Bytes syn = syn_with_wrong_checksum();
    // What the kernel leaves under CHECKSUM_PARTIAL: the pseudo-header sum.
    const uint16_t tcp_len = static_cast<uint16_t>(syn.size() - l4_start);
    wire::write_u16(syn, l4_start + wire::TcpRepr::CHECKSUM.start,
                    static_cast<uint16_t>(~wire::checksum::finish(
                        wire::checksum::pseudo_header(kernel_ip, stack_ip, 6, tcp_len))));
    device.push(syn, RxChecksum::partial, wire::TcpRepr::CHECKSUM.start);
    std::FILE* capture = std::tmpfile();
    ASSERT_NE(capture, nullptr);
    auto writer = PcapWriter::from_stream(std::move(scripted), capture, /*close_on_destroy=*/false);
    ASSERT_TRUE(writer);
    {
        Receiver rx(**writer);
        rx.stack.poll(Instant::zero());
        EXPECT_EQ(rx.tcp_segments_taken(), 1u);
        EXPECT_EQ(rx.tcp.counters().bad_checksum, 0u);
    }
    writer->reset();
    std::fflush(capture);
    std::rewind(capture);
    Bytes file(PcapFormat::global_header_len + PcapFormat::record_header_len + syn.size());
    ASSERT_EQ(std::fread(file.data(), 1, file.size(), capture), file.size());
    std::fclose(capture);
    const wire::ByteSpan recorded =
        wire::ByteSpan(file).subspan(PcapFormat::global_header_len + PcapFormat::record_header_len);
    auto parsed = wire::parse_tcp(recorded.subspan(l4_start), kernel_ip, stack_ip);
    EXPECT_TRUE(parsed.has_value()) << "the recorded TCP checksum verifies";
}

}  // namespace
}  // namespace ustack::netdev
