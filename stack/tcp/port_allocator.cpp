#include "stack/tcp/port_allocator.h"

#include <algorithm>
#include <cerrno>

namespace ustack::tcp {

namespace {

bool same_lease(const PortLease& a, const PortLease& b) {
    return a.address == b.address && a.port == b.port && a.state == b.state && a.reuse_addr == b.reuse_addr &&
           a.reuse_port == b.reuse_port && a.from_bind == b.from_bind && a.uid == b.uid;
}

PortLease make_lease(wire::Ipv4Address address, uint16_t port, const PortOwner& owner, ports::OwnerState state,
                     bool from_bind) {
    PortLease lease;
    lease.address = address;
    lease.port = port;
    lease.protocol = ports::Protocol::Tcp;
    lease.state = state;
    lease.reuse_addr = owner.reuse_addr;
    lease.reuse_port = owner.reuse_port;
    lease.from_bind = from_bind;
    lease.uid = owner.uid;
    return lease;
}

}  // namespace

SimplePortAllocator::SimplePortAllocator(Random& random, uint16_t low, uint16_t high)
    : random_(random), low_(low), high_(high) {}

bool SimplePortAllocator::conflicts(const PortLease& candidate, const PortLease* ignore) const {
    auto it = owners_.find(candidate.port);
    if (it == owners_.end()) {
        return false;
    }
    bool ignored = false;
    for (const PortLease& other : it->second) {
        if (ignore != nullptr && !ignored && same_lease(other, *ignore)) {
            ignored = true;  // the candidate's own entry (listen re-check)
            continue;
        }
        const bool overlap =
            other.address.is_unspecified() || candidate.address.is_unspecified() || other.address == candidate.address;
        if (!overlap) {
            continue;
        }
        const bool both_reuse_addr = candidate.reuse_addr && other.reuse_addr &&
                                     other.state != ports::OwnerState::Listening &&
                                     candidate.state != ports::OwnerState::Listening;
        const bool both_reuse_port = candidate.reuse_port && other.reuse_port &&
                                     (other.state == ports::OwnerState::TimeWait || other.uid == candidate.uid);
        if (!both_reuse_addr && !both_reuse_port) {
            return true;
        }
    }
    return false;
}

void SimplePortAllocator::add(const PortLease& lease) {
    owners_[lease.port].push_back(lease);
}

void SimplePortAllocator::remove(const PortLease& lease) {
    auto it = owners_.find(lease.port);
    if (it == owners_.end()) {
        return;
    }
    auto& list = it->second;
    auto found = std::find_if(list.begin(), list.end(), [&](const PortLease& l) { return same_lease(l, lease); });
    if (found != list.end()) {
        list.erase(found);
    }
    if (list.empty()) {
        owners_.erase(it);
    }
}

void SimplePortAllocator::replace(PortLease& lease, const PortLease& updated) {
    remove(lease);
    lease = updated;
    add(lease);
}

Result<PortLease> SimplePortAllocator::bind(wire::Ipv4Address address, uint16_t port, const PortOwner& owner) {
    if (port != 0) {
        PortLease lease = make_lease(address, port, owner, ports::OwnerState::Bound, true);
        if (conflicts(lease, nullptr)) {
            return fail(EADDRINUSE);
        }
        add(lease);
        return lease;
    }
    const uint32_t range = uint32_t{high_} - low_ + 1;
    const uint32_t start = random_.below(range);
    for (uint32_t i = 0; i < range; ++i) {
        const auto candidate_port = static_cast<uint16_t>(low_ + (start + i) % range);
        // A port with any owner is skipped (inet_csk_find_open_port without
        // relaxation).
        if (owners_.contains(candidate_port)) {
            continue;
        }
        PortLease lease = make_lease(address, candidate_port, owner, ports::OwnerState::Bound, true);
        add(lease);
        return lease;
    }
    return fail(EADDRINUSE);
}

Result<void> SimplePortAllocator::listen(PortLease& lease) {
    PortLease updated = lease;
    updated.state = ports::OwnerState::Listening;
    if (conflicts(updated, &lease)) {
        return fail(EADDRINUSE);
    }
    replace(lease, updated);
    return {};
}

Result<PortLease> SimplePortAllocator::connect(wire::Ipv4Address local, const Endpoint& /*remote*/,
                                               const PortOwner& owner, FunctionRef<bool(uint16_t port)> claim) {
    const uint32_t range = uint32_t{high_} - low_ + 1;
    const uint32_t start = random_.below(range);
    for (uint32_t i = 0; i < range; ++i) {
        const auto candidate_port = static_cast<uint16_t>(low_ + (start + i) % range);
        auto it = owners_.find(candidate_port);
        if (it != owners_.end() &&
            std::any_of(it->second.begin(), it->second.end(), [](const PortLease& l) { return l.from_bind; })) {
            continue;  // ports taken by bind() are not shared with connect()
        }
        if (!claim(candidate_port)) {
            continue;
        }
        PortLease lease = make_lease(local, candidate_port, owner, ports::OwnerState::Connected, false);
        add(lease);
        return lease;
    }
    return fail(EADDRNOTAVAIL);
}

PortLease SimplePortAllocator::accept_child(const PortLease& listener, wire::Ipv4Address local) {
    PortLease lease = listener;
    lease.address = local;
    lease.state = ports::OwnerState::Connected;
    add(lease);
    return lease;
}

void SimplePortAllocator::set_state(PortLease& lease, ports::OwnerState state) {
    PortLease updated = lease;
    updated.state = state;
    replace(lease, updated);
}

void SimplePortAllocator::set_address(PortLease& lease, wire::Ipv4Address address) {
    PortLease updated = lease;
    updated.address = address;
    replace(lease, updated);
}

void SimplePortAllocator::set_flags(PortLease& lease, bool reuse_addr, bool reuse_port) {
    PortLease updated = lease;
    updated.reuse_addr = reuse_addr;
    updated.reuse_port = reuse_port;
    replace(lease, updated);
}

void SimplePortAllocator::release(const PortLease& lease) {
    remove(lease);
}

size_t SimplePortAllocator::owners(uint16_t port) const {
    auto it = owners_.find(port);
    return it == owners_.end() ? 0 : it->second.size();
}

}  // namespace ustack::tcp
