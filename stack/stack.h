#pragma once
// One network interface's worth of stack: Ethernet, ARP, IPv4 (with
// fragmentation and reassembly), ICMP, UDP, and a slot for TCP. Pure: no
// syscalls, time passed in, frames in and out through a NetDev.
//
// Drive it like smoltcp's Interface: call poll(now) whenever the device is
// readable or poll_at() has passed.
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_set>
#include <vector>

#include "netdev/netdev.h"
#include "stack/core/counters.h"
#include "stack/core/random.h"
#include "stack/core/time.h"
#include "stack/core/tunables.h"
#include "stack/ip/arp_cache.h"
#include "stack/ip/ipv4_output.h"
#include "stack/ip/ipv4_reassembly.h"
#include "stack/ports/port_manager.h"
#include "stack/udp/udp_layer.h"
#include "stack/wire/arp.h"
#include "stack/wire/checksum.h"
#include "stack/wire/icmpv4.h"
#include "stack/wire/ipv4.h"

namespace ustack {

struct StackConfig {
    wire::Ipv4Cidr address;                  // our address and connected subnet
    std::optional<wire::Ipv4Address> gateway;  // default route, if any
    uint8_t default_ttl = 64;                // Linux ip_default_ttl
    ip::ArpConfig arp;
    ip::ReassemblyConfig reassembly;
    udp::UdpConfig udp;
    Tunables tunables;  // TIME_WAIT, port range, tw_reuse...: changeable at run time
    // ICMP error rate limit, a token bucket like Linux's icmp_global_allow
    // (net.ipv4.icmp_msgs_per_sec / icmp_msgs_burst).
    uint32_t icmp_errors_per_sec = 1000;
    uint32_t icmp_errors_burst = 50;

    // Names the setting that is wrong, or nullopt when the config is usable.
    std::optional<std::string> validate() const;
};

// A transport protocol that is not built in (TCP) plugs in through this.
class TransportHandler {
public:
    virtual ~TransportHandler() = default;
    // A segment for a local address, its checksum not yet verified:
    // `check` says whether it must be (verify) or the device vouched for
    // it (trusted: a partial checksum may sit in the field).
    virtual void input(Instant now, const wire::Ipv4Repr& ip, wire::ByteSpan segment, wire::L4Checksum check) = 0;
    // An ICMP error (or a local ARP failure) about a packet we sent:
    // quoted header and at least the first 8 bytes of its payload.
    virtual void icmp_error(Instant now, const wire::Ipv4Repr& quoted_ip, wire::ByteSpan quoted_payload,
                            int error, uint16_t next_hop_mtu) = 0;
    virtual void poll(Instant now) = 0;
    virtual std::optional<Instant> poll_at() const = 0;
    // Around the frames one device read gave (Stack::poll): what the
    // protocol may decide once for the whole batch (TCP: a quick ACK).
    virtual void begin_input_batch() {}
    virtual void end_input_batch(Instant /*now*/) {}
};

struct EchoReply {
    wire::Ipv4Address from;
    uint16_t ident = 0;
    uint16_t seq_no = 0;
    std::vector<uint8_t> data;
    Instant received_at;
};

class Stack final : public ip::Ipv4Output {
public:
    Stack(StackConfig config, netdev::NetDev& device, Random& random);

    // Processes every frame due at now and every timer that has expired.
    // Returns the number of frames taken from the device.
    size_t poll(Instant now);
    // poll() without reading the device: looped-back packets, timers and
    // the frames held back for GSO. For a caller that reads the device
    // only when its own poll says so (the host: epoll), so that no read
    // is a syscall ending in EAGAIN.
    void poll_without_device(Instant now);
    // When poll() must next run even if no frame arrives.
    std::optional<Instant> poll_at() const;
    // Writes frames the device holds back to join them (TCP segmentation
    // offload); poll() ends with it. Call it after sending outside poll()
    // when no poll() follows.
    void flush(Instant now);

    udp::UdpLayer& udp() { return udp_; }
    // Live settings: change them with tunables().set(name, value), which
    // validates and names the setting on error.
    Tunables& tunables() { return tunables_; }
    ports::PortManager& ports() { return ports_; }
    void attach_tcp(TransportHandler* tcp) { tcp_ = tcp; }

    // Gratuitous ARP announcing our address (sent once at start).
    void announce(Instant now);
    // ICMP echo (ping) from the stack itself.
    Result<void> send_echo_request(Instant now, wire::Ipv4Address dst, uint16_t ident, uint16_t seq_no,
                                   wire::ByteSpan data);
    std::vector<EchoReply> take_echo_replies();

    const Counters& counters() const { return counters_; }
    const ip::ArpCache& arp_cache() const { return arp_; }
    const StackConfig& config() const { return config_; }
    wire::MacAddress mac() const { return device_.mac(); }

    // ip::Ipv4Output
    Result<void> send_ipv4(Instant now, const ip::Ipv4SendParams& params, size_t l4_len,
                           FunctionRef<void(wire::MutByteSpan)> write_l4) override;
    wire::Ipv4Address source_for(wire::Ipv4Address dst) const override;
    bool is_local_address(wire::Ipv4Address addr) const override;
    size_t mtu() const override { return device_.mtu(); }

private:
    using Frame = std::vector<uint8_t>;

    // `check`: what the device vouched for about the TCP/UDP checksum
    // (trusted only for an unfragmented packet straight from the device).
    void process_frame(Instant now, wire::ByteSpan frame, wire::L4Checksum check);
    void process_arp(Instant now, wire::ByteSpan payload);
    void process_ipv4(Instant now, wire::ByteSpan packet, bool from_loopback, wire::L4Checksum check);
    void deliver(Instant now, const wire::Ipv4Repr& header, wire::ByteSpan payload, wire::ByteSpan raw_packet,
                 wire::L4Checksum check);
    void process_icmp(Instant now, const wire::Ipv4Repr& header, wire::ByteSpan message);
    void report_error(Instant now, wire::ByteSpan quoted_packet, int error, uint16_t mtu);
    void send_icmp_error(Instant now, wire::ByteSpan offending_packet, const wire::Ipv4Repr& offending,
                         wire::IcmpType type, uint8_t code);
    bool icmp_error_allowed(Instant now);
    void send_arp(Instant now, wire::ArpOperation op, wire::MacAddress target_mac, wire::Ipv4Address target_ip,
                  wire::MacAddress eth_dst);
    // Hands an Ethernet frame (destination MAC still blank) toward next_hop.
    Result<void> transmit(Instant now, wire::Ipv4Address next_hop, Frame frame);
    Result<void> send_frame(Instant now, wire::ByteSpan frame);
    Result<wire::Ipv4Address> next_hop_for(wire::Ipv4Address dst) const;
    void run_timers(Instant now);
    void process_loopback(Instant now);

    StackConfig config_;
    netdev::NetDev& device_;
    Random& random_;
    Counters counters_;
    Tunables tunables_;
    ports::PortManager ports_;
    ip::ArpCache arp_;
    ip::Ipv4Reassembler reassembler_;
    udp::UdpLayer udp_;
    TransportHandler* tcp_ = nullptr;
    uint16_t next_ip_ident_;
    std::deque<Frame> loopback_;  // IPv4 packets to ourselves, delivered on the next poll
    std::unordered_set<uint16_t> ping_idents_;
    std::deque<EchoReply> echo_replies_;
    // ICMP error token bucket.
    double icmp_tokens_;
    Instant icmp_refilled_at_;
};

}  // namespace ustack
