#include "netdev/gso_coalescer.h"

#include <algorithm>
#include <cstring>

#include "stack/wire/bytes.h"
#include "stack/wire/checksum.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/ipv4.h"
#include "stack/wire/tcp.h"

namespace ustack::netdev {

namespace {

namespace tcp_flags = wire::tcp_flags;
using wire::Ipv4Repr;
using wire::TcpRepr;

constexpr size_t eth_len = wire::EthernetRepr::header_len;
constexpr uint8_t ip_proto_tcp = 6;
// Flags that never join: connection control, urgent data, and CWR (a GSO
// skb with CWR needs SKB_GSO_TCP_ECN; tcp_gso_segment clears it on all but
// the first segment).
constexpr uint8_t never_joined = tcp_flags::SYN | tcp_flags::RST | tcp_flags::URG | tcp_flags::CWR;
// Flags only the last segment of a batch may carry.
constexpr uint8_t last_only = tcp_flags::PSH | tcp_flags::FIN;

bool equal_bytes(std::span<const uint8_t> a, std::span<const uint8_t> b, size_t from, size_t to) {
    return std::memcmp(a.data() + from, b.data() + from, to - from) == 0;
}

}  // namespace

GsoCoalescer::GsoCoalescer(size_t vnet_hdr_len, size_t max_ip_len)
    : vnet_hdr_len_(vnet_hdr_len), max_ip_len_(std::min<size_t>(max_ip_len, 65535)) {
    buffer_.resize(vnet_hdr_len_ + eth_len + max_ip_len_);
}

GsoCoalescer::Layout GsoCoalescer::parse(std::span<const uint8_t> frame) {
    Layout l;
    if (frame.size() < eth_len + Ipv4Repr::header_len ||
        wire::read_u16(frame, 12) != static_cast<uint16_t>(wire::EtherType::Ipv4)) {
        return l;
    }
    const std::span<const uint8_t> ip = frame.subspan(eth_len);
    l.ip_len = size_t{static_cast<uint8_t>(ip[0] & 0x0f)} * 4;
    l.packet_len = wire::read_u16(ip, Ipv4Repr::LENGTH.start);
    const uint16_t flags_offset = wire::read_u16(ip, Ipv4Repr::FLG_OFF.start);
    if ((ip[0] >> 4) != 4 || l.ip_len < Ipv4Repr::header_len || ip[Ipv4Repr::PROTOCOL.start] != ip_proto_tcp ||
        (flags_offset & 0x3fff) != 0 || l.packet_len > ip.size() ||
        l.packet_len < l.ip_len + TcpRepr::min_header_len) {
        return l;
    }
    const std::span<const uint8_t> tcp = ip.subspan(l.ip_len);
    l.tcp_len = size_t{static_cast<uint8_t>(tcp[TcpRepr::DATA_OFF.start] >> 4)} * 4;
    if (l.tcp_len < TcpRepr::min_header_len || l.ip_len + l.tcp_len > l.packet_len) {
        return l;
    }
    l.payload_len = l.packet_len - l.ip_len - l.tcp_len;
    l.seq = wire::read_u32(tcp, TcpRepr::SEQ_NUM.start);
    l.flags = tcp[TcpRepr::FLAGS.start];
    l.ok = true;
    return l;
}

bool GsoCoalescer::same_headers(std::span<const uint8_t> frame, const Layout& l) const {
    const std::span<const uint8_t> mine(buffer_.data() + vnet_hdr_len_, frame_len_);
    if (l.ip_len != first_.ip_len || l.tcp_len != first_.tcp_len) {
        return false;
    }
    // Ethernet header; IPv4 version..TOS; flags/fragment, TTL, protocol;
    // addresses and options (not length, ident, checksum).
    const size_t ip = eth_len;
    if (!equal_bytes(frame, mine, 0, ip + Ipv4Repr::LENGTH.start) ||
        !equal_bytes(frame, mine, ip + Ipv4Repr::FLG_OFF.start, ip + Ipv4Repr::CHECKSUM.start) ||
        !equal_bytes(frame, mine, ip + Ipv4Repr::SRC_ADDR.start, ip + l.ip_len)) {
        return false;
    }
    // TCP: ports; ACK number and data offset; window; urgent pointer and
    // options (not sequence number, flags, checksum).
    const size_t tcp = ip + l.ip_len;
    return equal_bytes(frame, mine, tcp, tcp + TcpRepr::SEQ_NUM.start) &&
           equal_bytes(frame, mine, tcp + TcpRepr::ACK_NUM.start, tcp + TcpRepr::FLAGS.start) &&
           equal_bytes(frame, mine, tcp + TcpRepr::WIN_SIZE.start, tcp + TcpRepr::CHECKSUM.start) &&
           equal_bytes(frame, mine, tcp + TcpRepr::URGENT.start, tcp + l.tcp_len);
}

bool GsoCoalescer::start(std::span<const uint8_t> frame) {
    const Layout l = parse(frame);
    if (!l.ok || l.payload_len == 0 || (l.flags & never_joined) != 0 || eth_len + l.packet_len > frame.size() ||
        l.packet_len > max_ip_len_) {
        return false;
    }
    frame_len_ = eth_len + l.packet_len;  // Ethernet padding, if any, stays out
    std::memcpy(buffer_.data() + vnet_hdr_len_, frame.data(), frame_len_);
    first_ = l;
    segments_ = 1;
    payload_bytes_ = l.payload_len;
    next_seq_ = l.seq + static_cast<uint32_t>(l.payload_len);
    last_flags_ = l.flags;
    closed_ = (l.flags & last_only) != 0;
    return true;
}

bool GsoCoalescer::append(std::span<const uint8_t> frame) {
    if (segments_ == 0 || closed_) {
        return false;
    }
    const Layout l = parse(frame);
    if (!l.ok || l.payload_len == 0 || l.payload_len > first_.payload_len || l.seq != next_seq_ ||
        (l.flags & ~last_only) != (first_.flags & ~last_only) ||
        first_.ip_len + first_.tcp_len + payload_bytes_ + l.payload_len > max_ip_len_ ||
        !same_headers(frame, l)) {
        return false;
    }
    const size_t payload_at = eth_len + l.ip_len + l.tcp_len;
    std::memcpy(buffer_.data() + vnet_hdr_len_ + frame_len_, frame.data() + payload_at, l.payload_len);
    frame_len_ += l.payload_len;
    payload_bytes_ += l.payload_len;
    next_seq_ += static_cast<uint32_t>(l.payload_len);
    ++segments_;
    last_flags_ = l.flags;
    // tcp_gso_segment() gives every segment but the last exactly gso_size
    // bytes: a short one, PSH or FIN ends the batch.
    closed_ = l.payload_len < first_.payload_len || (l.flags & last_only) != 0;
    return true;
}

std::span<const uint8_t> GsoCoalescer::finish() {
    header_ = VirtioNetHdr{};
    if (segments_ >= 2) {
        const std::span<uint8_t> frame = frame_bytes();
        const std::span<uint8_t> ip = frame.subspan(eth_len);
        const size_t packet_len = first_.ip_len + first_.tcp_len + payload_bytes_;
        const size_t tcp_len = packet_len - first_.ip_len;
        wire::write_u16(ip, Ipv4Repr::LENGTH.start, static_cast<uint16_t>(packet_len));
        wire::write_u16(ip, Ipv4Repr::CHECKSUM.start, 0);
        wire::write_u16(ip, Ipv4Repr::CHECKSUM.start, wire::checksum::compute(ip.first(first_.ip_len)));
        const std::span<uint8_t> tcp = ip.subspan(first_.ip_len);
        tcp[TcpRepr::FLAGS.start] = last_flags_;
        // __tcp_v4_send_check(): th->check = ~tcp_v4_check(len, saddr,
        // daddr, 0) — the folded, uncomplemented pseudo-header sum.
        const wire::Ipv4Address src(wire::read_u32(ip, Ipv4Repr::SRC_ADDR.start));
        const wire::Ipv4Address dst(wire::read_u32(ip, Ipv4Repr::DST_ADDR.start));
        const uint16_t pseudo = static_cast<uint16_t>(
            ~wire::checksum::finish(wire::checksum::pseudo_header(src, dst, ip_proto_tcp, static_cast<uint16_t>(tcp_len))));
        wire::write_u16(tcp, TcpRepr::CHECKSUM.start, pseudo);
        header_.flags = VirtioNetHdr::flag_needs_csum;
        header_.gso_type = VirtioNetHdr::gso_tcpv4;
        header_.hdr_len = static_cast<uint16_t>(eth_len + first_.ip_len + first_.tcp_len);
        header_.gso_size = static_cast<uint16_t>(first_.payload_len);
        header_.csum_start = static_cast<uint16_t>(eth_len + first_.ip_len);
        header_.csum_offset = static_cast<uint16_t>(TcpRepr::CHECKSUM.start);
    }
    if (vnet_hdr_len_ >= VirtioNetHdr::size) {
        std::fill_n(buffer_.begin(), vnet_hdr_len_, uint8_t{0});
        header_.encode(std::span<uint8_t>(buffer_).first(VirtioNetHdr::size));
    }
    return std::span<const uint8_t>(buffer_.data(), vnet_hdr_len_ + frame_len_);
}

void GsoCoalescer::clear() {
    segments_ = 0;
    payload_bytes_ = 0;
    frame_len_ = 0;
    closed_ = false;
    first_ = Layout{};
}

bool GsoCoalescer::send(std::span<const uint8_t> frame, Writer write, DeviceStats& stats) {
    if (append(frame)) {
        return true;
    }
    flush(write, stats);
    if (start(frame)) {
        return true;
    }
    static constexpr uint8_t no_offload[VirtioNetHdr::size] = {};
    return write(std::span<const uint8_t>(no_offload, std::min(vnet_hdr_len_, sizeof no_offload)), frame, 1);
}

void GsoCoalescer::flush(Writer write, DeviceStats& stats) {
    if (empty()) {
        return;
    }
    const size_t segments = segments_;
    const std::span<const uint8_t> bytes = finish();
    if (write(bytes.first(vnet_hdr_len_), bytes.subspan(vnet_hdr_len_), segments) && segments > 1) {
        ++stats.tx_gso_frames;
    }
    clear();
}

}  // namespace ustack::netdev
