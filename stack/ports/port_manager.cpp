#include "stack/ports/port_manager.h"

#include <algorithm>
#include <cerrno>

#include "stack/core/siphash.h"

namespace ustack::ports {

namespace {

bool addresses_overlap(wire::Ipv4Address a, wire::Ipv4Address b) {
    return a.is_unspecified() || b.is_unspecified() || a == b;
}

bool devices_compatible(uint32_t a, uint32_t b) { return a == 0 || b == 0 || a == b; }

}  // namespace

PortManager::PortManager(const Tunables& tunables, Random& random)
    : tunables_(tunables), random_(random), perturb_(std::make_unique<std::array<uint32_t, perturb_size>>()) {
    // Linux fills table_perturb with random bytes once (get_random_sleepable_once).
    for (uint32_t& slot : *perturb_) {
        slot = random_.next_u32();
    }
    secret_ = {random_.next_u64(), random_.next_u64()};
}

Reservation PortManager::make_reservation(Protocol protocol, wire::Ipv4Address address, uint16_t port,
                                          const OwnerFlags& flags, OwnerState state, bool from_bind) {
    Reservation r;
    r.address = address;
    r.port = port;
    r.protocol = protocol;
    r.state = state;
    r.reuse_addr = flags.reuse_addr;
    r.reuse_port = flags.reuse_port;
    r.from_bind = from_bind;
    r.uid = flags.uid;
    r.device = flags.device;
    return r;
}

// inet_bind_conflict() for TCP (net/ipv4/inet_connection_sock.c), and the
// predicate of udp_lib_lport_inuse() for UDP, applied to one owner group.
bool PortManager::conflicts(CheckMode mode, const OwnerGroup& other, wire::Ipv4Address address,
                            const OwnerFlags& flags) {
    if (other.count == 0 || !devices_compatible(flags.device, other.device) ||
        !addresses_overlap(address, other.address)) {
        return false;
    }
    switch (mode) {
    case CheckMode::TcpExplicit:
        // Rule 3: both SO_REUSEADDR and the other is not listening.
        if (flags.reuse_addr && other.reuse_addr && other.state != OwnerState::Listening) {
            return false;
        }
        // Rule 4: both SO_REUSEPORT and (other in TIME_WAIT or same uid).
        if (flags.reuse_port && other.reuse_port &&
            (other.state == OwnerState::TimeWait || other.uid == flags.uid)) {
            return false;
        }
        return true;
    case CheckMode::TcpAutobind:
        // relax = false, reuseport_ok = false: any overlapping owner.
        return true;
    case CheckMode::Udp:
        if (flags.reuse_addr && other.reuse_addr) {
            return false;
        }
        if (flags.reuse_port && other.reuse_port && other.uid == flags.uid) {
            return false;
        }
        return true;
    }
    return true;
}

const PortManager::Bucket* PortManager::find_bucket(Protocol protocol, uint16_t port) const {
    auto it = buckets_.find(key(protocol, port));
    return it == buckets_.end() ? nullptr : &it->second;
}

const PortManager::OwnerGroup* PortManager::port_conflicts(Protocol protocol, uint16_t port,
                                                           wire::Ipv4Address address, const OwnerFlags& flags,
                                                           CheckMode mode) const {
    const Bucket* bucket = find_bucket(protocol, port);
    if (bucket == nullptr) {
        return nullptr;
    }
    auto it = std::find_if(bucket->groups.begin(), bucket->groups.end(),
                           [&](const OwnerGroup& g) { return conflicts(mode, g, address, flags); });
    return it == bucket->groups.end() ? nullptr : &*it;
}

void PortManager::count_conflict(Protocol protocol, const OwnerGroup& other, const OwnerFlags& flags) {
    if (protocol == Protocol::Udp) {
        ++counters_.udp_bind_conflicts;
    } else if (flags.reuse_port && other.reuse_port && other.state != OwnerState::TimeWait &&
               other.uid != flags.uid) {
        ++counters_.bind_conflict_reuseport_uid;
    } else if (other.state == OwnerState::Listening) {
        ++counters_.bind_conflict_listener;
    } else if (other.state == OwnerState::TimeWait) {
        ++counters_.bind_conflict_time_wait;
    } else {
        ++counters_.bind_conflict_bound;
    }
}

void PortManager::add(const Reservation& r) {
    Bucket& bucket = buckets_[key(r.protocol, r.port)];
    ++bucket.owners;
    if (r.from_bind) {
        bucket.bind_owned = true;
    }
    for (OwnerGroup& g : bucket.groups) {
        if (g.address == r.address && g.device == r.device && g.uid == r.uid && g.state == r.state &&
            g.reuse_addr == r.reuse_addr && g.reuse_port == r.reuse_port) {
            ++g.count;
            return;
        }
    }
    bucket.groups.push_back(OwnerGroup{r.address, r.device, r.uid, 1, r.state, r.reuse_addr, r.reuse_port});
}

void PortManager::remove(const Reservation& r) {
    auto it = buckets_.find(key(r.protocol, r.port));
    if (it == buckets_.end()) {
        return;
    }
    Bucket& bucket = it->second;
    for (size_t i = 0; i < bucket.groups.size(); ++i) {
        OwnerGroup& g = bucket.groups[i];
        if (g.address == r.address && g.device == r.device && g.uid == r.uid && g.state == r.state &&
            g.reuse_addr == r.reuse_addr && g.reuse_port == r.reuse_port) {
            --bucket.owners;
            if (--g.count == 0) {
                bucket.groups[i] = bucket.groups.back();
                bucket.groups.pop_back();
            }
            break;
        }
    }
    if (bucket.owners == 0) {
        buckets_.erase(it);  // the bucket and its bind_owned mark go together
    }
}

Result<Reservation> PortManager::bind(Protocol protocol, wire::Ipv4Address address, uint16_t port,
                                      const OwnerFlags& flags) {
    if (port == 0) {
        auto found = protocol == Protocol::Tcp ? find_open_port_tcp(address, flags) : find_open_port_udp(address, flags);
        if (!found) {
            ++(protocol == Protocol::Tcp ? counters_.bind_ephemeral_exhausted : counters_.udp_bind_conflicts);
            return fail(EADDRINUSE);
        }
        port = *found;
    } else {
        const CheckMode mode = protocol == Protocol::Tcp ? CheckMode::TcpExplicit : CheckMode::Udp;
        if (const OwnerGroup* other = port_conflicts(protocol, port, address, flags, mode)) {
            count_conflict(protocol, *other, flags);
            return fail(EADDRINUSE);
        }
    }
    Reservation r = make_reservation(protocol, address, port, flags, OwnerState::Bound, true);
    add(r);
    return r;
}

Result<void> PortManager::listen(Reservation& reservation) {
    // inet_csk_listen_start → get_port with the socket already LISTEN; the
    // socket itself is not its own conflict (sk == sk2).
    remove(reservation);
    OwnerFlags flags{reservation.reuse_addr, reservation.reuse_port, reservation.uid, reservation.device};
    if (port_conflicts(reservation.protocol, reservation.port, reservation.address, flags, CheckMode::TcpExplicit)) {
        add(reservation);
        ++counters_.listen_conflicts;
        return fail(EADDRINUSE);
    }
    reservation.state = OwnerState::Listening;
    reservation.from_bind = true;  // listen() on an unbound socket binds through get_port too
    add(reservation);
    return {};
}

// inet_csk_find_open_port(): random odd start (connect() favours even
// ports, bind(0) takes the other parity so the two pools interfere less);
// with SO_REUSEADDR the lower half of the range first, then the upper.
Result<uint16_t> PortManager::find_open_port_tcp(wire::Ipv4Address address, const OwnerFlags& flags) {
    int attempt_half = flags.reuse_addr ? 1 : 0;
    while (true) {
        int low = tunables_.ip_local_port_range_low;
        int high = tunables_.ip_local_port_range_high + 1;  // [low, high)
        if (high - low < 4) {
            attempt_half = 0;
        }
        if (attempt_half != 0) {
            const int half = low + (((high - low) >> 2) << 1);
            if (attempt_half == 1) {
                high = half;
            } else {
                low = half;
            }
        }
        int remaining = high - low;
        if (remaining > 1) {
            remaining &= ~1;
        }
        uint32_t offset = random_.below(static_cast<uint32_t>(remaining)) | 1u;
        while (true) {  // one pass per parity
            int port = low + static_cast<int>(offset);
            for (int i = 0; i < remaining; i += 2, port += 2) {
                if (port >= high) {
                    port -= remaining;
                }
                if (!port_conflicts(Protocol::Tcp, static_cast<uint16_t>(port), address, flags, CheckMode::TcpAutobind)) {
                    return static_cast<uint16_t>(port);
                }
            }
            --offset;
            if (offset & 1) {
                break;  // both parities scanned
            }
        }
        if (attempt_half == 1) {
            attempt_half = 2;
            continue;
        }
        return fail(EADDRINUSE);
    }
}

// udp_lib_get_port() for snum == 0: a random start, then every port of the
// range; ports whose owners would conflict are skipped.
Result<uint16_t> PortManager::find_open_port_udp(wire::Ipv4Address address, const OwnerFlags& flags) {
    const uint32_t low = tunables_.ip_local_port_range_low;
    const uint32_t range = uint32_t{tunables_.ip_local_port_range_high} - low + 1;
    const uint32_t start = random_.below(range);
    for (uint32_t i = 0; i < range; ++i) {
        const auto port = static_cast<uint16_t>(low + (start + i) % range);
        if (!port_conflicts(Protocol::Udp, port, address, flags, CheckMode::Udp)) {
            return port;
        }
    }
    return fail(EAGAIN);
}

Result<Reservation> PortManager::udp_autobind(wire::Ipv4Address address, const OwnerFlags& flags) {
    auto port = find_open_port_udp(address, flags);
    if (!port) {
        ++counters_.udp_autobind_exhausted;
        return fail(EAGAIN);
    }
    Reservation r = make_reservation(Protocol::Udp, address, *port, flags, OwnerState::Bound, true);
    add(r);
    return r;
}

Reservation PortManager::accept_child(const Reservation& listener, wire::Ipv4Address local) {
    Reservation child = listener;
    child.address = local;
    child.state = OwnerState::Connected;
    add(child);
    return child;
}

uint64_t PortManager::connect_port_offset(wire::Ipv4Address local, wire::Ipv4Address remote,
                                          uint16_t remote_port) const {
    // secure_ipv4_port_ephemeral(): F(local, remote, remote port, secret).
    const uint32_t words[] = {local.to_u32(), remote.to_u32(), remote_port};
    return siphash_words(secret_, words);
}

// __inet_hash_connect() (net/ipv4/inet_hashtables.c), RFC 6056 algorithm 4.
Result<Reservation> PortManager::connect(wire::Ipv4Address local, wire::Ipv4Address remote, uint16_t remote_port,
                                         const OwnerFlags& flags, FunctionRef<bool(uint16_t port)> claim) {
    const int low = tunables_.ip_local_port_range_low;
    const int high = tunables_.ip_local_port_range_high + 1;
    int remaining = high - low;
    if (remaining > 1) {
        remaining &= ~1;
    }
    const uint64_t port_offset = connect_port_offset(local, remote, remote_port);
    uint32_t& perturb = (*perturb_)[port_offset & (perturb_size - 1)];
    uint32_t offset = (perturb + static_cast<uint32_t>(port_offset >> 32)) % static_cast<uint32_t>(remaining);
    offset &= ~1u;  // first pass: the parity of low
    while (true) {
        int port = low + static_cast<int>(offset);
        for (int i = 0; i < remaining; i += 2, port += 2) {
            if (port >= high) {
                port -= remaining;
            }
            const auto candidate = static_cast<uint16_t>(port);
            const Bucket* bucket = find_bucket(Protocol::Tcp, candidate);
            if (bucket != nullptr && bucket->bind_owned) {
                continue;  // tb->fastreuse >= 0: a port taken through bind() is not shared
            }
            if (!claim(candidate)) {
                continue;  // 4-tuple in use and not reusable (check_established failed)
            }
            // Linux: i = max(i, random(8) * 2); perturb += i + 2, so the next
            // connect to the same destination starts further on.
            const uint32_t step = std::max<uint32_t>(static_cast<uint32_t>(i), random_.below(8) * 2);
            perturb += step + 2;
            Reservation r = make_reservation(Protocol::Tcp, local, candidate, flags, OwnerState::Connected, false);
            add(r);
            return r;
        }
        ++offset;
        if (!(offset & 1) || remaining <= 1) {
            break;
        }
    }
    ++counters_.connect_ephemeral_exhausted;
    return fail(EADDRNOTAVAIL);
}

void PortManager::replace(Reservation& reservation, const Reservation& updated) {
    // remove() drops a bucket that empties; re-adding must not lose the
    // bucket's bind mark, which belongs to the port, not to this owner.
    const bool was_bind_owned = bound_by_bind(reservation.protocol, reservation.port);
    remove(reservation);
    reservation = updated;
    add(reservation);
    if (was_bind_owned) {
        buckets_[key(reservation.protocol, reservation.port)].bind_owned = true;
    }
}

void PortManager::set_state(Reservation& reservation, OwnerState state) {
    if (reservation.state != state) {
        Reservation updated = reservation;
        updated.state = state;
        replace(reservation, updated);
    }
}

void PortManager::to_time_wait(Reservation& reservation) {
    Reservation updated = reservation;
    updated.state = OwnerState::TimeWait;
    updated.uid = 0;
    replace(reservation, updated);
}

void PortManager::set_address(Reservation& reservation, wire::Ipv4Address address) {
    if (reservation.address != address) {
        Reservation updated = reservation;
        updated.address = address;
        replace(reservation, updated);
    }
}

void PortManager::set_flags(Reservation& reservation, bool reuse_addr, bool reuse_port) {
    if (reservation.reuse_addr != reuse_addr || reservation.reuse_port != reuse_port) {
        Reservation updated = reservation;
        updated.reuse_addr = reuse_addr;
        updated.reuse_port = reuse_port;
        replace(reservation, updated);
    }
}

void PortManager::release(const Reservation& reservation) { remove(reservation); }

uint64_t PortManager::owner_count(Protocol protocol, uint16_t port) const {
    const Bucket* bucket = find_bucket(protocol, port);
    return bucket == nullptr ? 0 : bucket->owners;
}

bool PortManager::bound_by_bind(Protocol protocol, uint16_t port) const {
    const Bucket* bucket = find_bucket(protocol, port);
    return bucket != nullptr && bucket->bind_owned;
}

size_t PortManager::memory_bytes() const {
    size_t bytes = sizeof(*this) + sizeof(*perturb_) + buckets_.bucket_count() * sizeof(void*);
    for (const auto& [k, bucket] : buckets_) {
        bytes += sizeof(k) + sizeof(bucket) + 2 * sizeof(void*) + bucket.groups.capacity() * sizeof(OwnerGroup);
    }
    return bytes;
}

}  // namespace ustack::ports
