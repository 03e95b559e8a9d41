#pragma once
// Every local-port decision the TCP engine makes goes through this
// interface: bind, listen's re-check, connect's ephemeral port, accepted
// children, state changes and release. Two implementations:
//  - SimplePortAllocator (here): a small self-contained default;
//  - PortManagerAllocator (port_manager_allocator.h): the Linux rules of
//    ports::PortManager (SEMANTICS.md), which a stack should use.
// A lease is a ports::Reservation value: the holder keeps it to change or
// release its port later.
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "stack/core/expected.h"
#include "stack/core/function_ref.h"
#include "stack/core/random.h"
#include "stack/ports/port_manager.h"
#include "stack/tcp/tcp_types.h"

namespace ustack::tcp {

using PortLease = ports::Reservation;

struct PortOwner {
    bool reuse_addr = false;  // SO_REUSEADDR
    bool reuse_port = false;  // SO_REUSEPORT
    uint32_t uid = 0;
};

class PortAllocator {
public:
    virtual ~PortAllocator() = default;
    // bind(2) for `address` (or 0.0.0.0) and `port` (0: pick one).
    // Errors: EADDRINUSE.
    virtual Result<PortLease> bind(wire::Ipv4Address address, uint16_t port, const PortOwner& owner) = 0;
    // listen(2)'s re-check with the socket now listening. Errors: EADDRINUSE.
    virtual Result<void> listen(PortLease& lease) = 0;
    // connect(2) on a socket without a port. `claim(port)` says whether the
    // 4-tuple (local, port, remote) is free; it may take over a TIME_WAIT
    // entry. Errors: EADDRNOTAVAIL.
    virtual Result<PortLease> connect(wire::Ipv4Address local, const Endpoint& remote, const PortOwner& owner,
                                      FunctionRef<bool(uint16_t port)> claim) = 0;
    // A connection accepted on `listener`, owning the port on `local`.
    virtual PortLease accept_child(const PortLease& listener, wire::Ipv4Address local) = 0;
    virtual void set_state(PortLease& lease, ports::OwnerState state) = 0;
    // connect() fixed the local address of a socket bound to 0.0.0.0.
    virtual void set_address(PortLease& lease, wire::Ipv4Address address) = 0;
    // SO_REUSEADDR / SO_REUSEPORT changed after bind.
    virtual void set_flags(PortLease& lease, bool reuse_addr, bool reuse_port) = 0;
    virtual void release(const PortLease& lease) = 0;
};

// The default: per port a list of owners; a bind conflicts with an owner
// on an overlapping address unless both set SO_REUSEADDR and the owner is
// not listening, or both set SO_REUSEPORT. Ephemeral ports come from
// [32768, 60999] from a random start. Deliberately simple: the Linux rules
// are the port manager's.
class SimplePortAllocator final : public PortAllocator {
public:
    explicit SimplePortAllocator(Random& random, uint16_t low = 32768, uint16_t high = 60999);

    Result<PortLease> bind(wire::Ipv4Address address, uint16_t port, const PortOwner& owner) override;
    Result<void> listen(PortLease& lease) override;
    Result<PortLease> connect(wire::Ipv4Address local, const Endpoint& remote, const PortOwner& owner,
                              FunctionRef<bool(uint16_t port)> claim) override;
    PortLease accept_child(const PortLease& listener, wire::Ipv4Address local) override;
    void set_state(PortLease& lease, ports::OwnerState state) override;
    void set_address(PortLease& lease, wire::Ipv4Address address) override;
    void set_flags(PortLease& lease, bool reuse_addr, bool reuse_port) override;
    void release(const PortLease& lease) override;

    size_t owners(uint16_t port) const;

private:
    bool conflicts(const PortLease& candidate, const PortLease* ignore) const;
    void add(const PortLease& lease);
    void remove(const PortLease& lease);
    void replace(PortLease& lease, const PortLease& updated);

    Random& random_;
    uint16_t low_;
    uint16_t high_;
    std::unordered_map<uint16_t, std::vector<PortLease>> owners_;
};

}  // namespace ustack::tcp
