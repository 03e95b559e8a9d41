#pragma once
// Every bind, listen, connect (implicit bind), accept and close passes
// through here: the one place where Linux's local-port rules live
// (model: gVisor's ports.PortManager; rules: ../shared/SEMANTICS.md).
//
// Owners of a port are kept aggregated: per (protocol, port) a short list
// of {address, device, reuse flags, state class, uid, count}. A bind
// conflict check therefore costs O(distinct flag combinations on that
// port), never O(owners): a million TIME_WAIT entries on a port with one
// flag combination are one line with count = 1'000'000.
#include <array>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "stack/core/expected.h"
#include "stack/core/function_ref.h"
#include "stack/core/random.h"
#include "stack/core/tunables.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::ports {

enum class Protocol : uint8_t { Tcp = 0, Udp = 1 };

// What inet_bind_conflict distinguishes in the other socket: LISTEN and
// TIME_WAIT are special; everything else (bound, SYN_SENT, ESTABLISHED,
// CLOSE_WAIT, FIN_WAIT*, orphaned FIN_WAIT2, ...) is alike.
enum class OwnerState : uint8_t { Bound, Listening, Connected, TimeWait };

struct OwnerFlags {
    bool reuse_addr = false;   // SO_REUSEADDR (sk_reuse)
    bool reuse_port = false;   // SO_REUSEPORT
    uint32_t uid = 0;          // for SO_REUSEPORT's same-user rule
    uint32_t device = 0;       // SO_BINDTODEVICE ifindex, 0 = any
};

// What the holder of a port keeps to change or release it later (a socket,
// or a TIME_WAIT record). A value: copying it does not duplicate ownership.
struct Reservation {
    wire::Ipv4Address address;  // rcv_saddr: local address, or 0.0.0.0
    uint16_t port = 0;
    Protocol protocol = Protocol::Tcp;
    OwnerState state = OwnerState::Bound;
    bool reuse_addr = false;
    bool reuse_port = false;
    // Taken by bind()/listen() rather than by connect(): marks the port's
    // bucket so that connect() autobind skips it (Linux tb->fastreuse >= 0).
    bool from_bind = false;
    uint32_t uid = 0;
    uint32_t device = 0;
};

// Refusals by reason (`ustackctl stats`). Linux has no counters for these;
// the names say which rule refused.
struct PortCounters {
    uint64_t bind_conflict_listener = 0;       // TCP bind EADDRINUSE: an overlapping LISTEN socket
    uint64_t bind_conflict_time_wait = 0;      // ... a TIME_WAIT entry (SO_REUSEADDR missing on either side)
    uint64_t bind_conflict_bound = 0;          // ... a bound or connected socket
    uint64_t bind_conflict_reuseport_uid = 0;  // ... both SO_REUSEPORT, but another user's socket
    uint64_t listen_conflicts = 0;             // listen() re-check: EADDRINUSE
    uint64_t bind_ephemeral_exhausted = 0;     // bind(port 0): every port taken (EADDRINUSE)
    uint64_t connect_ephemeral_exhausted = 0;  // connect(): no free 4-tuple in the range (EADDRNOTAVAIL)
    uint64_t udp_bind_conflicts = 0;           // UDP bind EADDRINUSE
    uint64_t udp_autobind_exhausted = 0;       // UDP autobind: EAGAIN

    template <typename F>
    void for_each(F&& f) const {
        f("bind_conflict_listener", bind_conflict_listener);
        f("bind_conflict_time_wait", bind_conflict_time_wait);
        f("bind_conflict_bound", bind_conflict_bound);
        f("bind_conflict_reuseport_uid", bind_conflict_reuseport_uid);
        f("listen_conflicts", listen_conflicts);
        f("bind_ephemeral_exhausted", bind_ephemeral_exhausted);
        f("connect_ephemeral_exhausted", connect_ephemeral_exhausted);
        f("udp_bind_conflicts", udp_bind_conflicts);
        f("udp_autobind_exhausted", udp_autobind_exhausted);
    }
};

class PortManager {
public:
    // Tunables are read live (ip_local_port_range may change at run time).
    PortManager(const Tunables& tunables, Random& random);

    // bind(2) after the socket layer's own checks (length, family, local
    // address, privilege, already bound). port 0 picks a free port as
    // inet_csk_find_open_port (TCP) or udp_lib_get_port (UDP) do.
    // Errors: EADDRINUSE.
    Result<Reservation> bind(Protocol protocol, wire::Ipv4Address address, uint16_t port, const OwnerFlags& flags);

    // listen(2): the TCP re-check with the socket now LISTEN (two
    // SO_REUSEADDR sockets may share a port, but only one may listen).
    // On EADDRINUSE the reservation is left as it was.
    Result<void> listen(Reservation& reservation);

    // connect(2) on a TCP socket with no local port: __inet_hash_connect.
    // `claim(port)` is asked, in the RFC 6056 order, whether the 4-tuple
    // (local, port, remote, remote_port) is free; it may take over a
    // TIME_WAIT entry (tcp_tw_reuse) and return true. Ports held through
    // bind() are skipped. Errors: EADDRNOTAVAIL.
    Result<Reservation> connect(wire::Ipv4Address local, wire::Ipv4Address remote, uint16_t remote_port,
                                const OwnerFlags& flags, FunctionRef<bool(uint16_t port)> claim);

    // A connection accepted on a listener: the child owns the listener's
    // port on the address the SYN was sent to, with the listener's flags
    // and no check (__inet_inherit_port).
    Reservation accept_child(const Reservation& listener, wire::Ipv4Address local);

    // UDP autobind from connect(2)/sendto(2). Errors: EAGAIN (as Linux's
    // inet_autobind) when every port conflicts.
    Result<Reservation> udp_autobind(wire::Ipv4Address address, const OwnerFlags& flags);

    // State changes that matter to later checks (connected → TIME_WAIT...).
    void set_state(Reservation& reservation, OwnerState state);
    // A TIME_WAIT owner: same flags, uid dropped (rule 4 does not look at
    // a TIME_WAIT owner's uid), so all TIME_WAIT entries of a port share
    // one group whatever user created them.
    void to_time_wait(Reservation& reservation);
    // connect() fixes the source address of a socket bound to 0.0.0.0
    // (inet_bhash2_update_saddr).
    void set_address(Reservation& reservation, wire::Ipv4Address address);
    // SO_REUSEADDR/SO_REUSEPORT changed after bind: Linux stores the new
    // flags in the socket and they count at the next check.
    void set_flags(Reservation& reservation, bool reuse_addr, bool reuse_port);
    void release(const Reservation& reservation);

    // Introspection for tests, counters and `ustackctl ss`.
    uint64_t owner_count(Protocol protocol, uint16_t port) const;
    bool bound_by_bind(Protocol protocol, uint16_t port) const;
    // Bytes the port table occupies (bench: memory per entry).
    size_t memory_bytes() const;
    const PortCounters& counters() const { return counters_; }

private:
    // One line of the aggregated owner list.
    struct OwnerGroup {
        wire::Ipv4Address address;
        uint32_t device = 0;
        uint32_t uid = 0;
        uint32_t count = 0;
        OwnerState state = OwnerState::Bound;
        bool reuse_addr = false;
        bool reuse_port = false;
    };
    struct Bucket {
        std::vector<OwnerGroup> groups;
        uint64_t owners = 0;
        bool bind_owned = false;  // sticky until the bucket empties, like tb->fastreuse
    };
    // Rules of inet_bind_conflict / udp_lib_lport_inuse applied to a group.
    enum class CheckMode {
        TcpExplicit,  // inet_csk_get_port: relax = true, reuseport_ok = true
        TcpAutobind,  // inet_csk_find_open_port: relax = false, reuseport_ok = false
        Udp,
    };
    static bool conflicts(CheckMode mode, const OwnerGroup& other, wire::Ipv4Address address,
                          const OwnerFlags& flags);
    // The first owner group that conflicts, or null.
    const OwnerGroup* port_conflicts(Protocol protocol, uint16_t port, wire::Ipv4Address address,
                                     const OwnerFlags& flags, CheckMode mode) const;
    void count_conflict(Protocol protocol, const OwnerGroup& other, const OwnerFlags& flags);
    Result<uint16_t> find_open_port_tcp(wire::Ipv4Address address, const OwnerFlags& flags);
    Result<uint16_t> find_open_port_udp(wire::Ipv4Address address, const OwnerFlags& flags);
    void add(const Reservation& reservation);
    void replace(Reservation& reservation, const Reservation& updated);
    void remove(const Reservation& reservation);
    const Bucket* find_bucket(Protocol protocol, uint16_t port) const;
    static uint32_t key(Protocol protocol, uint16_t port) { return (uint32_t{static_cast<uint8_t>(protocol)} << 16) | port; }
    static Reservation make_reservation(Protocol protocol, wire::Ipv4Address address, uint16_t port,
                                        const OwnerFlags& flags, OwnerState state, bool from_bind);
    uint64_t connect_port_offset(wire::Ipv4Address local, wire::Ipv4Address remote, uint16_t remote_port) const;

    const Tunables& tunables_;
    Random& random_;
    std::unordered_map<uint32_t, Bucket> buckets_;
    // RFC 6056 algorithm 4's perturbation table (Linux table_perturb,
    // INET_TABLE_PERTURB_SIZE = 2^16) and the secret key of its hash.
    static constexpr size_t perturb_size = 1 << 16;
    std::unique_ptr<std::array<uint32_t, perturb_size>> perturb_;
    std::array<uint64_t, 2> secret_{};
    PortCounters counters_;
};

}  // namespace ustack::ports
