#include "stack/stack.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "stack/wire/arp.h"
#include "stack/wire/ethernet.h"
#include "stack/wire/icmpv4.h"

namespace ustack {

namespace {

constexpr size_t eth_len = wire::EthernetRepr::header_len;
constexpr size_t ip_len = wire::Ipv4Repr::header_len;
// RFC 1812 §4.3.2.3: an ICMP error quotes as much of the offending packet
// as fits in 576 bytes.
constexpr size_t icmp_error_max_quote = 576 - ip_len - wire::IcmpRepr::header_len;
constexpr size_t max_echo_replies_held = 1024;

// Linux icmp_err_convert[]: ICMP destination-unreachable code → errno.
int unreachable_errno(uint8_t code) {
    switch (static_cast<wire::IcmpUnreachCode>(code)) {
    case wire::IcmpUnreachCode::NetUnreachable:
    case wire::IcmpUnreachCode::NetUnknown:
    case wire::IcmpUnreachCode::NetProhibited:
        return ENETUNREACH;
    case wire::IcmpUnreachCode::ProtoUnreachable:
        return ENOPROTOOPT;
    case wire::IcmpUnreachCode::PortUnreachable:
        return ECONNREFUSED;
    case wire::IcmpUnreachCode::FragNeeded:
        return EMSGSIZE;
    case wire::IcmpUnreachCode::SourceRouteFailed:
        return EOPNOTSUPP;
    case wire::IcmpUnreachCode::HostUnknown:
        return EHOSTDOWN;
    default:
        return EHOSTUNREACH;
    }
}

Counter counter_for(wire::ParseError e, Counter truncated, Counter bad_length, Counter bad_checksum,
                    Counter other) {
    switch (e) {
    case wire::ParseError::Truncated:
        return truncated;
    case wire::ParseError::BadLength:
        return bad_length;
    case wire::ParseError::BadChecksum:
        return bad_checksum;
    default:
        return other;
    }
}

}  // namespace

std::optional<std::string> StackConfig::validate() const {
    if (address.prefix_len > 32) {
        return std::string("address: prefix length must be 0..32");
    }
    if (address.address.is_unspecified() || address.address.is_multicast() || address.address.is_broadcast() ||
        address.address.is_loopback()) {
        return std::string("address: must be a unicast, non-loopback IPv4 address");
    }
    if (gateway && !address.contains(*gateway)) {
        return std::string("gateway: must be inside the connected subnet ") + address.to_string();
    }
    if (default_ttl == 0) {
        return std::string("default_ttl: must be 1..255");
    }
    if (tunables.ip_local_port_range_low == 0 || tunables.ip_local_port_range_low > tunables.ip_local_port_range_high) {
        return std::string("ip_local_port_range: need 1 <= low <= high <= 65535");
    }
    return std::nullopt;
}

Stack::Stack(StackConfig config, netdev::NetDev& device, Random& random)
    : config_(std::move(config)),
      device_(device),
      random_(random),
      tunables_(config_.tunables),
      ports_(tunables_, random_),
      arp_(config_.arp),
      reassembler_(config_.reassembly),
      udp_(config_.udp, *this, ports_, counters_, random_),
      next_ip_ident_(static_cast<uint16_t>(random_.next_u32())),
      icmp_tokens_(config_.icmp_errors_burst) {}

// ---------------------------------------------------------------- input path

size_t Stack::poll(Instant now) {
    size_t frames = 0;
    process_loopback(now);
    if (tcp_ != nullptr) {
        tcp_->begin_input_batch();
    }
    // Frames lent by the device (no copy): each is done with before the
    // next receive_view() call reuses its buffer.
    while (auto frame = device_.receive_view(now)) {
        ++frames;
        counters_.add(Counter::rx_frames);
        // CHECKSUM_UNNECESSARY or CHECKSUM_PARTIAL (a local kernel's frame
        // that never crossed a wire): skb_csum_unnecessary(), not summed.
        const wire::L4Checksum check =
            frame->checksum == netdev::RxChecksum::none ? wire::L4Checksum::verify : wire::L4Checksum::trusted;
        process_frame(now, frame->bytes, check);
    }
    if (tcp_ != nullptr) {
        tcp_->end_input_batch(now);
    }
    run_timers(now);
    // Segments the device held to join them (GSO) leave now: nothing sent
    // in this round may wait for the next.
    device_.flush(now);
    return frames;
}

void Stack::poll_without_device(Instant now) {
    process_loopback(now);
    run_timers(now);
    device_.flush(now);
}

void Stack::process_loopback(Instant now) {
    // Packets we sent ourselves since the last poll. Only what is queued
    // now, so a reply to a looped packet waits a turn.
    for (size_t n = loopback_.size(); n > 0; --n) {
        Frame packet = std::move(loopback_.front());
        loopback_.pop_front();
        process_ipv4(now, packet, true, wire::L4Checksum::verify);
    }
}

void Stack::flush(Instant now) { device_.flush(now); }

std::optional<Instant> Stack::poll_at() const {
    std::optional<Instant> earliest;
    auto consider = [&](std::optional<Instant> t) {
        if (t && (!earliest || *t < *earliest)) {
            earliest = t;
        }
    };
    if (!loopback_.empty() || device_.has_pending_tx()) {
        // As soon as possible. A held segment means something transmitted
        // outside poll() without flush(): the next poll() writes it.
        consider(Instant::zero());
    }
    consider(arp_.poll_at());
    consider(reassembler_.poll_at());
    consider(device_.next_arrival());
    if (tcp_ != nullptr) {
        consider(tcp_->poll_at());
    }
    return earliest;
}

void Stack::run_timers(Instant now) {
    ip::ArpCache::Timers timers = arp_.poll(now);
    counters_.add(Counter::arp_entries_expired, timers.expired);
    for (wire::Ipv4Address ip : timers.retry) {
        send_arp(now, wire::ArpOperation::Request, wire::MacAddress{}, ip, wire::MacAddress::broadcast());
    }
    for (ip::ArpCache::Failed& failed : timers.failed) {
        // Linux: neigh failure → ip_link_failure → ICMP host unreachable
        // delivered locally; a connecting socket sees EHOSTUNREACH.
        for (Frame& frame : failed.frames) {
            counters_.add(Counter::drop_tx_arp_failed);
            report_error(now, wire::ByteSpan(frame).subspan(eth_len), EHOSTUNREACH, 0);
        }
    }
    for (const ip::Ipv4Reassembler::Expired& expired : reassembler_.poll(now)) {
        counters_.add(Counter::drop_ip_frag_timeout);
        if (expired.have_first) {
            // RFC 792: time exceeded, code 1 (fragment reassembly), only
            // when fragment zero arrived, quoting its header and 8 bytes.
            Frame quote(ip_len + expired.first_bytes.size());
            wire::Ipv4Repr header = expired.header;
            header.payload_len = static_cast<uint16_t>(expired.first_bytes.size());
            header.emit(quote);
            std::copy(expired.first_bytes.begin(), expired.first_bytes.end(), quote.begin() + ip_len);
            send_icmp_error(now, quote, expired.header, wire::IcmpType::TimeExceeded, 1);
        }
    }
    if (tcp_ != nullptr) {
        tcp_->poll(now);
    }
}

void Stack::process_frame(Instant now, wire::ByteSpan bytes, wire::L4Checksum check) {
    auto frame = wire::parse_ethernet(bytes);
    if (!frame) {
        counters_.add(Counter::drop_eth_truncated);
        return;
    }
    const wire::EthernetRepr& eth = frame->repr;
    if (eth.src == device_.mac()) {
        counters_.add(Counter::drop_eth_own_source);
        return;
    }
    if (eth.dst != device_.mac() && !eth.dst.is_broadcast()) {
        // A real link carries the kernel's IPv6 MLD/ND multicast; keep it
        // apart from frames for another unicast MAC (a filter problem).
        counters_.add(eth.dst.is_multicast() ? Counter::drop_eth_multicast : Counter::drop_eth_not_for_us);
        return;
    }
    switch (eth.ethertype) {
    case static_cast<uint16_t>(wire::EtherType::Arp):
        process_arp(now, frame->payload);
        break;
    case static_cast<uint16_t>(wire::EtherType::Ipv4):
        process_ipv4(now, frame->payload, false, check);
        break;
    default:
        counters_.add(Counter::drop_eth_unknown_type);
        break;
    }
}

void Stack::process_arp(Instant now, wire::ByteSpan payload) {
    auto parsed = wire::parse_arp(payload);
    if (!parsed) {
        counters_.add(parsed.error() == wire::ParseError::Unsupported ? Counter::drop_arp_unsupported
                                                                      : Counter::drop_arp_malformed);
        return;
    }
    const wire::ArpRepr& arp = *parsed;
    if (arp.sender_ip.is_unspecified() && arp.operation == wire::ArpOperation::Request) {
        // RFC 5227 probe: answer if it is for us, learn nothing.
        if (arp.target_ip == config_.address.address) {
            send_arp(now, wire::ArpOperation::Reply, arp.sender_mac, arp.sender_ip, arp.sender_mac);
        }
        return;
    }
    const bool for_us = arp.target_ip == config_.address.address;
    if (arp.sender_mac.is_multicast() || arp.sender_ip == config_.address.address) {
        counters_.add(Counter::drop_arp_malformed);
        return;
    }
    // RFC 826 "merge": refresh a known sender; create an entry only when
    // the packet is addressed to us.
    for (Frame& frame : arp_.update(arp.sender_ip, arp.sender_mac, now, for_us)) {
        (void)send_frame(now, frame);
    }
    if (!for_us) {
        counters_.add(Counter::drop_arp_not_for_us);
        return;
    }
    if (arp.operation == wire::ArpOperation::Request) {
        send_arp(now, wire::ArpOperation::Reply, arp.sender_mac, arp.sender_ip, arp.sender_mac);
    }
}

void Stack::process_ipv4(Instant now, wire::ByteSpan bytes, bool from_loopback, wire::L4Checksum check) {
    auto parsed = wire::parse_ipv4(bytes);
    if (!parsed) {
        switch (parsed.error()) {
        case wire::ParseError::BadVersion:
            counters_.add(Counter::drop_ip_bad_version);
            break;
        default:
            counters_.add(counter_for(parsed.error(), Counter::drop_ip_truncated, Counter::drop_ip_bad_length,
                                      Counter::drop_ip_bad_checksum, Counter::drop_ip_bad_length));
            break;
        }
        return;
    }
    const wire::Ipv4Repr& header = parsed->repr;
    const bool to_us = header.dst == config_.address.address;
    const bool broadcast = header.dst.is_broadcast() ||
                           (config_.address.prefix_len < 31 && header.dst == config_.address.subnet_broadcast());
    if (!to_us && !broadcast) {
        counters_.add(Counter::drop_ip_not_for_us);
        return;
    }
    // Linux ip_route_input_slow: martian sources are dropped.
    if (header.src.is_broadcast() || header.src.is_multicast() || header.src.is_loopback() ||
        (header.src == config_.address.address && !from_loopback)) {
        counters_.add(Counter::drop_ip_martian_source);
        return;
    }
    const wire::ByteSpan raw_packet = bytes.first(parsed->header_len + parsed->payload.size());
    if (header.is_fragment()) {
        ip::Ipv4Reassembler::Outcome outcome = reassembler_.add(now, *parsed);
        if (outcome.dropped) {
            counters_.add(*outcome.dropped);
            return;
        }
        if (!outcome.header) {
            return;  // waiting for more fragments
        }
        counters_.add(Counter::ip_reassembled);
        // Quote for ICMP errors: a rebuilt header plus the start of the data.
        Frame whole(ip_len + outcome.payload.size());
        outcome.header->emit(whole);
        std::copy(outcome.payload.begin(), outcome.payload.end(), whole.begin() + ip_len);
        // Reassembled: verified whatever a fragment's device said (no
        // partial checksum spans fragments).
        deliver(now, *outcome.header, wire::ByteSpan(whole).subspan(ip_len), whole, wire::L4Checksum::verify);
        return;
    }
    deliver(now, header, parsed->payload, raw_packet, check);
}

void Stack::deliver(Instant now, const wire::Ipv4Repr& header, wire::ByteSpan payload, wire::ByteSpan raw_packet,
                    wire::L4Checksum check) {
    counters_.add(Counter::ip_packets_in);
    const bool broadcast = header.dst != config_.address.address;
    switch (header.protocol) {
    case static_cast<uint8_t>(wire::IpProtocol::Icmp):
        process_icmp(now, header, payload);
        break;
    case static_cast<uint8_t>(wire::IpProtocol::Udp):
        // (A trusted NEEDS_CSUM datagram is quoted with its partial UDP
        // checksum, as Linux's icmp_send() quotes the skb as it is: no
        // receiver checks a quoted checksum.)
        if (udp_.input(header, payload, broadcast, check) == udp::UdpLayer::InputResult::NoSocket && !broadcast) {
            send_icmp_error(now, raw_packet, header, wire::IcmpType::DstUnreachable,
                            static_cast<uint8_t>(wire::IcmpUnreachCode::PortUnreachable));
        }
        break;
    case static_cast<uint8_t>(wire::IpProtocol::Tcp):
        if (broadcast) {
            counters_.add(Counter::drop_ip_not_for_us);  // RFC 1122 §4.2.3.10
        } else if (tcp_ == nullptr) {
            counters_.add(Counter::drop_tcp_no_handler);
        } else {
            tcp_->input(now, header, payload, check);
        }
        break;
    default:
        counters_.add(Counter::drop_ip_unknown_protocol);
        if (!broadcast) {
            send_icmp_error(now, raw_packet, header, wire::IcmpType::DstUnreachable,
                            static_cast<uint8_t>(wire::IcmpUnreachCode::ProtoUnreachable));
        }
        break;
    }
}

void Stack::process_icmp(Instant now, const wire::Ipv4Repr& header, wire::ByteSpan message) {
    auto parsed = wire::parse_icmpv4(message);
    if (!parsed) {
        counters_.add(counter_for(parsed.error(), Counter::drop_icmp_malformed, Counter::drop_icmp_malformed,
                                  Counter::drop_icmp_bad_checksum, parsed.error() == wire::ParseError::Unsupported
                                                                       ? Counter::drop_icmp_unsupported
                                                                       : Counter::drop_icmp_malformed));
        return;
    }
    const wire::IcmpRepr& icmp = *parsed;
    switch (icmp.type) {
    case wire::IcmpType::EchoRequest: {
        if (header.dst != config_.address.address) {
            counters_.add(Counter::drop_icmp_broadcast_echo);  // icmp_echo_ignore_broadcasts=1
            return;
        }
        wire::IcmpRepr reply = icmp;
        reply.type = wire::IcmpType::EchoReply;
        reply.code = 0;
        ip::Ipv4SendParams params;
        params.src = config_.address.address;
        params.dst = header.src;
        params.protocol = static_cast<uint8_t>(wire::IpProtocol::Icmp);
        params.ttl = config_.default_ttl;
        if (send_ipv4(now, params, reply.buffer_len(), [&](wire::MutByteSpan buf) { reply.emit(buf); })) {
            counters_.add(Counter::icmp_echo_replies_sent);
        }
        return;
    }
    case wire::IcmpType::EchoReply: {
        if (!ping_idents_.contains(icmp.ident)) {
            counters_.add(Counter::drop_icmp_unclaimed_reply);
            return;
        }
        if (echo_replies_.size() >= max_echo_replies_held) {
            echo_replies_.pop_front();
        }
        echo_replies_.push_back(
            EchoReply{header.src, icmp.ident, icmp.seq_no, std::vector<uint8_t>(icmp.data.begin(), icmp.data.end()), now});
        return;
    }
    case wire::IcmpType::DstUnreachable:
        report_error(now, icmp.data, unreachable_errno(icmp.code), icmp.next_hop_mtu);
        return;
    case wire::IcmpType::TimeExceeded:
        report_error(now, icmp.data, EHOSTUNREACH, 0);
        return;
    }
}

void Stack::report_error(Instant now, wire::ByteSpan quoted_packet, int error, uint16_t mtu) {
    // The quote is an IP header of ours plus at least 8 bytes; its checksum
    // may have been altered on the way, so only the structure is checked.
    if (quoted_packet.size() < ip_len) {
        counters_.add(Counter::drop_icmp_malformed);
        return;
    }
    const size_t header_len = size_t{static_cast<uint8_t>(quoted_packet[0] & 0x0f)} * 4;
    if ((quoted_packet[0] >> 4) != 4 || header_len < ip_len || quoted_packet.size() < header_len + 8) {
        counters_.add(Counter::drop_icmp_malformed);
        return;
    }
    wire::Ipv4Repr quoted;
    quoted.src = wire::Ipv4Address(wire::read_u32(quoted_packet, wire::Ipv4Repr::SRC_ADDR.start));
    quoted.dst = wire::Ipv4Address(wire::read_u32(quoted_packet, wire::Ipv4Repr::DST_ADDR.start));
    quoted.protocol = quoted_packet[wire::Ipv4Repr::PROTOCOL.start];
    if (quoted.src != config_.address.address) {
        counters_.add(Counter::drop_icmp_malformed);  // not about a packet of ours
        return;
    }
    const wire::ByteSpan quoted_payload = quoted_packet.subspan(header_len);
    switch (quoted.protocol) {
    case static_cast<uint8_t>(wire::IpProtocol::Udp):
        udp_.icmp_error(quoted, quoted_payload, error);
        break;
    case static_cast<uint8_t>(wire::IpProtocol::Tcp):
        if (tcp_ != nullptr) {
            tcp_->icmp_error(now, quoted, quoted_payload, error, mtu);
            counters_.add(Counter::icmp_errors_received);
        }
        break;
    default:
        break;
    }
}

// ---------------------------------------------------------------- output path

bool Stack::is_local_address(wire::Ipv4Address addr) const { return addr == config_.address.address; }

wire::Ipv4Address Stack::source_for(wire::Ipv4Address) const { return config_.address.address; }

Result<wire::Ipv4Address> Stack::next_hop_for(wire::Ipv4Address dst) const {
    if (dst.is_broadcast() || config_.address.contains(dst)) {
        return dst;
    }
    if (config_.gateway) {
        return *config_.gateway;
    }
    return fail(ENETUNREACH);
}

Result<void> Stack::send_ipv4(Instant now, const ip::Ipv4SendParams& params, size_t l4_len,
                              FunctionRef<void(wire::MutByteSpan)> write_l4) {
    if (l4_len > 65535 - ip_len) {
        return fail(EMSGSIZE);
    }
    const bool to_self = params.dst == config_.address.address;
    wire::Ipv4Address next_hop = params.dst;
    if (!to_self) {
        auto hop = next_hop_for(params.dst);
        if (!hop) {
            counters_.add(Counter::drop_tx_no_route);
            return fail(hop.error().value);
        }
        next_hop = *hop;
    }
    wire::Ipv4Repr header;
    header.src = params.src.is_unspecified() ? config_.address.address : params.src;
    header.dst = params.dst;
    header.protocol = params.protocol;
    header.ttl = params.ttl;
    header.tos = params.tos;
    header.ident = next_ip_ident_++;
    header.dont_fragment = params.dont_fragment;
    counters_.add(Counter::ip_packets_out);

    const size_t mtu = device_.mtu();
    if (to_self) {
        Frame packet(ip_len + l4_len);
        header.payload_len = static_cast<uint16_t>(l4_len);
        header.emit(packet);
        write_l4(wire::MutByteSpan(packet).subspan(ip_len));
        loopback_.push_back(std::move(packet));
        return {};
    }
    if (ip_len + l4_len <= mtu) {
        Frame frame(eth_len + ip_len + l4_len);
        header.payload_len = static_cast<uint16_t>(l4_len);
        header.emit(wire::MutByteSpan(frame).subspan(eth_len));
        write_l4(wire::MutByteSpan(frame).subspan(eth_len + ip_len));
        return transmit(now, next_hop, std::move(frame));
    }
    if (params.dont_fragment) {
        return fail(EMSGSIZE);
    }
    // RFC 791 fragmentation: every fragment but the last carries a
    // multiple of 8 payload bytes.
    std::vector<uint8_t> l4(l4_len);
    write_l4(l4);
    const size_t chunk = ((mtu - ip_len) / 8) * 8;
    for (size_t offset = 0; offset < l4_len; offset += chunk) {
        const size_t len = std::min(chunk, l4_len - offset);
        wire::Ipv4Repr fragment = header;
        fragment.payload_len = static_cast<uint16_t>(len);
        fragment.fragment_offset = static_cast<uint16_t>(offset);
        fragment.more_fragments = offset + len < l4_len;
        Frame frame(eth_len + ip_len + len);
        fragment.emit(wire::MutByteSpan(frame).subspan(eth_len));
        std::memcpy(frame.data() + eth_len + ip_len, l4.data() + offset, len);
        counters_.add(Counter::ip_frags_created);
        if (auto sent = transmit(now, next_hop, std::move(frame)); !sent) {
            return sent;
        }
    }
    return {};
}

Result<void> Stack::transmit(Instant now, wire::Ipv4Address next_hop, Frame frame) {
    wire::EthernetRepr eth;
    eth.src = device_.mac();
    eth.ethertype = static_cast<uint16_t>(wire::EtherType::Ipv4);
    if (next_hop.is_broadcast() ||
        (config_.address.prefix_len < 31 && next_hop == config_.address.subnet_broadcast())) {
        eth.dst = wire::MacAddress::broadcast();
        eth.emit(frame);
        return send_frame(now, frame);
    }
    if (auto mac = arp_.lookup(next_hop, now)) {
        eth.dst = *mac;
        eth.emit(frame);
        return send_frame(now, frame);
    }
    eth.emit(frame);  // destination filled in when ARP resolves
    switch (arp_.enqueue(next_hop, std::move(frame), now)) {
    case ip::ArpCache::EnqueueResult::SendRequest:
        send_arp(now, wire::ArpOperation::Request, wire::MacAddress{}, next_hop, wire::MacAddress::broadcast());
        return {};
    case ip::ArpCache::EnqueueResult::Queued:
        return {};
    case ip::ArpCache::EnqueueResult::Dropped:
        counters_.add(Counter::drop_tx_arp_queue_full);
        return fail(ENOBUFS);
    }
    return {};
}

Result<void> Stack::send_frame(Instant now, wire::ByteSpan frame) {
    if (!device_.send(now, frame)) {
        counters_.add(Counter::drop_tx_device);
        return fail(ENOBUFS);
    }
    counters_.add(Counter::tx_frames);
    return {};
}

void Stack::send_arp(Instant now, wire::ArpOperation op, wire::MacAddress target_mac, wire::Ipv4Address target_ip,
                     wire::MacAddress eth_dst) {
    wire::ArpRepr arp;
    arp.operation = op;
    arp.sender_mac = device_.mac();
    arp.sender_ip = config_.address.address;
    arp.target_mac = target_mac;
    arp.target_ip = target_ip;
    // 28 bytes of ARP padded to Ethernet's 60-byte minimum, as Linux does.
    Frame frame(60, 0);
    wire::EthernetRepr eth{eth_dst, device_.mac(), static_cast<uint16_t>(wire::EtherType::Arp)};
    eth.emit(frame);
    arp.emit(wire::MutByteSpan(frame).subspan(eth_len));
    if (send_frame(now, frame)) {
        counters_.add(op == wire::ArpOperation::Request ? Counter::arp_requests_sent : Counter::arp_replies_sent);
    }
}

void Stack::announce(Instant now) {
    // Gratuitous ARP (RFC 5227 §3): a request with sender = target = us.
    send_arp(now, wire::ArpOperation::Request, wire::MacAddress{}, config_.address.address,
             wire::MacAddress::broadcast());
}

bool Stack::icmp_error_allowed(Instant now) {
    const double elapsed = static_cast<double>((now - icmp_refilled_at_).micros()) / 1e6;
    icmp_refilled_at_ = now;
    icmp_tokens_ = std::min<double>(config_.icmp_errors_burst, icmp_tokens_ + elapsed * config_.icmp_errors_per_sec);
    if (icmp_tokens_ < 1.0) {
        return false;
    }
    icmp_tokens_ -= 1.0;
    return true;
}

void Stack::send_icmp_error(Instant now, wire::ByteSpan offending_packet, const wire::Ipv4Repr& offending,
                            wire::IcmpType type, uint8_t code) {
    // RFC 1122 §3.2.2: never about an ICMP error, a broadcast, a non-first
    // fragment, or a packet whose source is not a unicast host.
    if (offending.fragment_offset != 0 || offending.dst.is_broadcast() || offending.dst.is_multicast() ||
        offending.src.is_unspecified()) {
        return;
    }
    if (offending.protocol == static_cast<uint8_t>(wire::IpProtocol::Icmp) && offending_packet.size() > ip_len) {
        const size_t header_len = size_t{static_cast<uint8_t>(offending_packet[0] & 0x0f)} * 4;
        if (offending_packet.size() > header_len) {
            const uint8_t icmp_type = offending_packet[header_len];
            const bool is_query = icmp_type == static_cast<uint8_t>(wire::IcmpType::EchoRequest) ||
                                  icmp_type == static_cast<uint8_t>(wire::IcmpType::EchoReply);
            if (!is_query) {
                return;
            }
        }
    }
    if (!icmp_error_allowed(now)) {
        counters_.add(Counter::icmp_errors_rate_limited);
        return;
    }
    wire::IcmpRepr icmp;
    icmp.type = type;
    icmp.code = code;
    icmp.data = offending_packet.first(std::min(offending_packet.size(), icmp_error_max_quote));
    ip::Ipv4SendParams params;
    params.src = config_.address.address;
    params.dst = offending.src;
    params.protocol = static_cast<uint8_t>(wire::IpProtocol::Icmp);
    params.ttl = config_.default_ttl;
    if (send_ipv4(now, params, icmp.buffer_len(), [&](wire::MutByteSpan buf) { icmp.emit(buf); })) {
        counters_.add(Counter::icmp_errors_sent);
    }
}

Result<void> Stack::send_echo_request(Instant now, wire::Ipv4Address dst, uint16_t ident, uint16_t seq_no,
                                      wire::ByteSpan data) {
    wire::IcmpRepr echo;
    echo.type = wire::IcmpType::EchoRequest;
    echo.ident = ident;
    echo.seq_no = seq_no;
    echo.data = data;
    ping_idents_.insert(ident);
    ip::Ipv4SendParams params;
    params.src = config_.address.address;
    params.dst = dst;
    params.protocol = static_cast<uint8_t>(wire::IpProtocol::Icmp);
    params.ttl = config_.default_ttl;
    return send_ipv4(now, params, echo.buffer_len(), [&](wire::MutByteSpan buf) { echo.emit(buf); });
}

std::vector<EchoReply> Stack::take_echo_replies() {
    std::vector<EchoReply> replies(std::make_move_iterator(echo_replies_.begin()),
                                   std::make_move_iterator(echo_replies_.end()));
    echo_replies_.clear();
    return replies;
}

}  // namespace ustack
