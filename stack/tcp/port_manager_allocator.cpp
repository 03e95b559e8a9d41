#include "stack/tcp/port_manager_allocator.h"

namespace ustack::tcp {

namespace {

ports::OwnerFlags flags_of(const PortOwner& owner) {
    return ports::OwnerFlags{owner.reuse_addr, owner.reuse_port, owner.uid, 0};
}

}  // namespace

Result<PortLease> PortManagerAllocator::bind(wire::Ipv4Address address, uint16_t port, const PortOwner& owner) {
    return ports_.bind(ports::Protocol::Tcp, address, port, flags_of(owner));
}

Result<void> PortManagerAllocator::listen(PortLease& lease) {
    return ports_.listen(lease);
}

Result<PortLease> PortManagerAllocator::connect(wire::Ipv4Address local, const Endpoint& remote,
                                                const PortOwner& owner, FunctionRef<bool(uint16_t port)> claim) {
    return ports_.connect(local, remote.addr, remote.port, flags_of(owner), claim);
}

PortLease PortManagerAllocator::accept_child(const PortLease& listener, wire::Ipv4Address local) {
    return ports_.accept_child(listener, local);
}

void PortManagerAllocator::set_state(PortLease& lease, ports::OwnerState state) {
    if (state == ports::OwnerState::TimeWait) {
        ports_.to_time_wait(lease);
    } else {
        ports_.set_state(lease, state);
    }
}

void PortManagerAllocator::set_address(PortLease& lease, wire::Ipv4Address address) {
    ports_.set_address(lease, address);
}

void PortManagerAllocator::set_flags(PortLease& lease, bool reuse_addr, bool reuse_port) {
    ports_.set_flags(lease, reuse_addr, reuse_port);
}

void PortManagerAllocator::release(const PortLease& lease) {
    ports_.release(lease);
}

}  // namespace ustack::tcp
