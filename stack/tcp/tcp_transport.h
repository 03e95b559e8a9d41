#pragma once
// The TCP engine plugged into a Stack (TransportHandler): segments from
// the IPv4 layer are parsed (checksum, options) and demultiplexed; ICMP
// errors are mapped to the quoted 4-tuple; the engine's segments go out
// through ip::Ipv4Output with DF set (path MTU discovery). Ports come from
// the stack's PortManager, so TCP and UDP share one set of bind rules,
// and the stack's live Tunables drive TIME_WAIT and friends.
//
//   Stack stack(config, device, random);
//   TcpTransport tcp(stack, TcpConfig{}, random);
//   stack.attach_tcp(&tcp);   // (and attach_tcp(nullptr) before tcp goes)
//   ... stack.poll(now) drives tcp.poll(now); use tcp.engine() for sockets.
//
// Only the inline constructor below touches Stack, so stack/tcp links on
// its own (without stack.cpp) whatever the sanitizers instrument.
#include <cstdint>
#include <optional>
#include <utility>

#include "stack/ip/ipv4_output.h"
#include "stack/ports/port_manager.h"
#include "stack/stack.h"
#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {

struct TcpTransportCounters {
    uint64_t malformed = 0;       // truncated or bad options
    uint64_t bad_checksum = 0;
    uint64_t not_unicast = 0;     // to a broadcast/multicast address (tcp_v4_rcv drops them)
    uint64_t send_errors = 0;     // the IP layer refused a segment (no route...)
};

class TcpTransport final : public TransportHandler, private TcpOutput {
public:
    // Takes the stack's address, MTU, port manager and live tunables.
    TcpTransport(Stack& stack, TcpConfig config, Random& random)
        : TcpTransport(static_cast<ip::Ipv4Output&>(stack), stack.ports(), config_for(stack, std::move(config)),
                       random) {}
    // The pieces explicitly.
    TcpTransport(ip::Ipv4Output& ip, ports::PortManager& ports, TcpConfig config, Random& random);

    // `config` with the stack's address, MTU and tunables filled in.
    static TcpConfig config_for(Stack& stack, TcpConfig config) {
        config.local_addresses = {stack.config().address.address};
        config.mtu = static_cast<uint32_t>(stack.mtu());
        config.tunables = &stack.tunables();
        return config;
    }
    ~TcpTransport() override;
    TcpTransport(const TcpTransport&) = delete;
    TcpTransport& operator=(const TcpTransport&) = delete;

    TcpEngine& engine() { return engine_; }
    const TcpEngine& engine() const { return engine_; }
    const TcpTransportCounters& counters() const { return counters_; }

    // TransportHandler
    void input(Instant now, const wire::Ipv4Repr& ip, wire::ByteSpan segment, wire::L4Checksum check) override;
    void icmp_error(Instant now, const wire::Ipv4Repr& quoted_ip, wire::ByteSpan quoted_payload, int error,
                    uint16_t next_hop_mtu) override;
    void poll(Instant now) override;
    std::optional<Instant> poll_at() const override;
    void begin_input_batch() override { engine_.begin_input_batch(); }
    void end_input_batch(Instant now) override { engine_.end_input_batch(now); }

private:
    void send_segment(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst, const wire::TcpRepr& repr,
                      wire::ByteSpan payload) override;

    ip::Ipv4Output& ip_;
    ports::PortManager& ports_;
    TcpEngine engine_;
    TcpTransportCounters counters_;
};

}  // namespace ustack::tcp
