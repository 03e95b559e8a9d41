#pragma once
// PortAllocator over ports::PortManager: the Linux bind/listen/connect
// rules of SEMANTICS.md for the TCP engine. A stack passes its one
// PortManager here so TCP and UDP share it.
#include "stack/ports/port_manager.h"
#include "stack/tcp/port_allocator.h"

namespace ustack::tcp {

class PortManagerAllocator final : public PortAllocator {
public:
    explicit PortManagerAllocator(ports::PortManager& ports) : ports_(ports) {}

    Result<PortLease> bind(wire::Ipv4Address address, uint16_t port, const PortOwner& owner) override;
    Result<void> listen(PortLease& lease) override;
    Result<PortLease> connect(wire::Ipv4Address local, const Endpoint& remote, const PortOwner& owner,
                              FunctionRef<bool(uint16_t port)> claim) override;
    PortLease accept_child(const PortLease& listener, wire::Ipv4Address local) override;
    void set_state(PortLease& lease, ports::OwnerState state) override;
    void set_address(PortLease& lease, wire::Ipv4Address address) override;
    void set_flags(PortLease& lease, bool reuse_addr, bool reuse_port) override;
    void release(const PortLease& lease) override;

private:
    ports::PortManager& ports_;
};

}  // namespace ustack::tcp
