// The port rules of ../shared/SEMANTICS.md as a table (gVisor's
// ports_test.go style): existing owners, one request, the expected errno.
// Each row is named after the rule it checks.
#include "stack/ports/port_manager.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cerrno>
#include <map>
#include <set>

#include "stack/ports/bind_checks.h"

namespace ustack::ports {
namespace {

const wire::Ipv4Address any = wire::Ipv4Address::unspecified();
const wire::Ipv4Address ip_a{10, 0, 0, 1};
const wire::Ipv4Address ip_b{10, 0, 0, 7};
const wire::Ipv4Address peer{10, 0, 0, 2};

struct Owner {
    Protocol protocol = Protocol::Tcp;
    wire::Ipv4Address address;
    bool reuse_addr = false;
    bool reuse_port = false;
    OwnerState state = OwnerState::Bound;
    uint32_t uid = 1000;
    uint32_t device = 0;
};

enum class Op { Bind, BindThenListen };

struct Case {
    const char* rule;
    std::vector<Owner> existing;
    Owner request;
    Op op = Op::Bind;
    int want = 0;  // errno, 0 for success
};

Owner tcp(wire::Ipv4Address a, bool reuse_addr = false, bool reuse_port = false,
          OwnerState state = OwnerState::Bound, uint32_t uid = 1000) {
    return Owner{Protocol::Tcp, a, reuse_addr, reuse_port, state, uid, 0};
}
Owner udp(wire::Ipv4Address a, bool reuse_addr = false, bool reuse_port = false, uint32_t uid = 1000) {
    return Owner{Protocol::Udp, a, reuse_addr, reuse_port, OwnerState::Bound, uid, 0};
}
Owner on_device(Owner o, uint32_t device) {
    o.device = device;
    return o;
}

constexpr auto L = OwnerState::Listening;
constexpr auto TW = OwnerState::TimeWait;
constexpr auto C = OwnerState::Connected;

const std::vector<Case> cases = {
    // ---- TCP overlap (rules 1, 2)
    {"tcp_overlap_same_address", {tcp(ip_a)}, tcp(ip_a), Op::Bind, EADDRINUSE},
    {"tcp_overlap_wildcard_then_specific", {tcp(any)}, tcp(ip_a), Op::Bind, EADDRINUSE},
    {"tcp_overlap_specific_then_wildcard", {tcp(ip_a)}, tcp(any), Op::Bind, EADDRINUSE},
    {"tcp_no_overlap_different_addresses", {tcp(ip_a)}, tcp(ip_b), Op::Bind, 0},
    {"tcp_devices_different_do_not_conflict", {on_device(tcp(any), 1)}, on_device(tcp(any), 2), Op::Bind, 0},
    {"tcp_device_vs_unbound_device_conflicts", {on_device(tcp(any), 1)}, tcp(any), Op::Bind, EADDRINUSE},
    {"tcp_owner_connected_conflicts", {tcp(ip_a, false, false, C)}, tcp(ip_a), Op::Bind, EADDRINUSE},
    {"tcp_owner_time_wait_conflicts", {tcp(ip_a, false, false, TW)}, tcp(ip_a), Op::Bind, EADDRINUSE},
    {"tcp_owner_listening_conflicts", {tcp(any, false, false, L)}, tcp(any), Op::Bind, EADDRINUSE},
    // ---- SO_REUSEADDR (rule 3)
    {"reuseaddr_both_owner_bound_ok", {tcp(any, true)}, tcp(any, true), Op::Bind, 0},
    {"reuseaddr_both_owner_listening_conflicts", {tcp(any, true, false, L)}, tcp(any, true), Op::Bind, EADDRINUSE},
    {"reuseaddr_both_owner_time_wait_ok", {tcp(ip_a, true, false, TW)}, tcp(any, true), Op::Bind, 0},
    {"reuseaddr_both_owner_connected_ok", {tcp(ip_a, true, false, C)}, tcp(any, true), Op::Bind, 0},
    {"reuseaddr_only_new_owner_time_wait_conflicts", {tcp(ip_a, false, false, TW)}, tcp(any, true), Op::Bind,
     EADDRINUSE},
    {"reuseaddr_only_old_owner_time_wait_conflicts", {tcp(ip_a, true, false, TW)}, tcp(any, false), Op::Bind,
     EADDRINUSE},
    {"reuseaddr_restart_with_accepted_children_in_time_wait",
     {tcp(ip_a, true, false, TW), tcp(ip_a, true, false, TW), tcp(ip_a, true, false, C)},
     tcp(any, true),
     Op::BindThenListen,
     0},
    {"reuseaddr_listen_recheck_second_listener_conflicts", {tcp(any, true, false, L)}, tcp(any, true),
     Op::BindThenListen, EADDRINUSE},
    {"reuseaddr_listen_recheck_owner_bound_ok", {tcp(any, true)}, tcp(any, true), Op::BindThenListen, 0},
    // ---- SO_REUSEPORT (rule 4)
    {"reuseport_same_uid_listening_ok", {tcp(any, false, true, L)}, tcp(any, false, true), Op::BindThenListen, 0},
    {"reuseport_other_uid_listening_conflicts", {tcp(any, false, true, L, 1000)},
     tcp(any, false, true, OwnerState::Bound, 2000), Op::Bind, EADDRINUSE},
    {"reuseport_other_uid_time_wait_ok", {tcp(ip_a, false, true, TW, 1000)},
     tcp(any, false, true, OwnerState::Bound, 2000), Op::Bind, 0},
    {"reuseport_only_new_conflicts", {tcp(any, false, false, L)}, tcp(any, false, true), Op::Bind, EADDRINUSE},
    {"reuseport_only_old_conflicts", {tcp(any, false, true, L)}, tcp(any, false, false), Op::Bind, EADDRINUSE},
    {"reuseaddr_new_reuseport_old_conflicts", {tcp(any, false, true)}, tcp(any, true, false), Op::Bind,
     EADDRINUSE},
    {"reuseport_and_reuseaddr_both_listening_same_uid_ok", {tcp(any, true, true, L)}, tcp(any, true, true),
     Op::BindThenListen, 0},
    // ---- UDP
    {"udp_overlap_conflicts", {udp(any)}, udp(ip_a), Op::Bind, EADDRINUSE},
    {"udp_different_addresses_ok", {udp(ip_a)}, udp(ip_b), Op::Bind, 0},
    {"udp_reuseaddr_both_ok", {udp(any, true)}, udp(any, true), Op::Bind, 0},
    {"udp_reuseaddr_only_new_conflicts", {udp(any)}, udp(any, true), Op::Bind, EADDRINUSE},
    {"udp_reuseport_same_uid_ok", {udp(any, false, true)}, udp(any, false, true), Op::Bind, 0},
    {"udp_reuseport_other_uid_conflicts", {udp(any, false, true, 1000)}, udp(any, false, true, 2000), Op::Bind,
     EADDRINUSE},
    {"udp_reuseaddr_vs_reuseport_conflicts", {udp(any, true, false)}, udp(any, false, true), Op::Bind, EADDRINUSE},
    {"udp_and_tcp_ports_are_separate", {tcp(any, false, false, L)}, udp(any), Op::Bind, 0},
};

// Creates an owner the way a socket gets there: bind, then listen or a
// state change (connect, close into TIME_WAIT).
Reservation make_owner(PortManager& pm, const Owner& o, const OwnerFlags& flags) {
    auto bound = pm.bind(o.protocol, o.address, 8080, flags);
    EXPECT_TRUE(bound) << "table owner cannot be created";
    Reservation r = *bound;
    if (o.state == OwnerState::Listening) {
        EXPECT_TRUE(pm.listen(r));
    } else {
        pm.set_state(r, o.state);
    }
    return r;
}

class PortRules : public ::testing::TestWithParam<Case> {};

TEST_P(PortRules, Check) {
    const Case& c = GetParam();
    Tunables tunables;
    SeededRandom random(1);
    PortManager pm(tunables, random);
    for (const Owner& o : c.existing) {
        // Build each owner as Linux would have: bind with its flags, then
        // move to its state (the table states possible histories only).
        OwnerFlags flags{o.reuse_addr, o.reuse_port, o.uid, o.device};
        make_owner(pm, o, flags);
    }
    OwnerFlags flags{c.request.reuse_addr, c.request.reuse_port, c.request.uid, c.request.device};
    auto bound = pm.bind(c.request.protocol, c.request.address, 8080, flags);
    int got = bound ? 0 : bound.error().value;
    if (bound && c.op == Op::BindThenListen) {
        auto listened = pm.listen(*bound);
        got = listened ? 0 : listened.error().value;
    }
    EXPECT_EQ(got, c.want) << c.rule;
}

INSTANTIATE_TEST_SUITE_P(Semantics, PortRules, ::testing::ValuesIn(cases),
                         [](const ::testing::TestParamInfo<Case>& param_info) { return std::string(param_info.param.rule); });

// ---------------------------------------------------------------- ephemeral ports

struct Fixture {
    Tunables tunables;
    SeededRandom random{7};
    PortManager pm{tunables, random};
};

TEST(PortEphemeral, BindPortZeroTakesTheParityOppositeToLow) {
    Fixture f;  // 32768..60999: low is even, bind(0) gets odd ports
    for (int i = 0; i < 200; ++i) {
        auto r = f.pm.bind(Protocol::Tcp, any, 0, {});
        ASSERT_TRUE(r);
        EXPECT_EQ(r->port % 2, 1) << r->port;
        EXPECT_GE(r->port, 32768);
        EXPECT_LE(r->port, 60999);
    }
}

TEST(PortEphemeral, BindPortZeroSkipsAnyOverlappingOwnerAndExhaustsWithEaddrinuse) {
    Fixture f;
    ASSERT_FALSE(f.tunables.set("ip_local_port_range", "40000 40009"));
    // An owner with SO_REUSEADDR does not make its port shareable for bind(0).
    OwnerFlags reuse{true, false, 1000, 0};
    ASSERT_TRUE(f.pm.bind(Protocol::Tcp, any, 40003, reuse));
    std::set<uint16_t> got;
    for (int i = 0; i < 9; ++i) {
        auto r = f.pm.bind(Protocol::Tcp, any, 0, reuse);
        ASSERT_TRUE(r) << i;
        EXPECT_NE(r->port, 40003);
        got.insert(r->port);
    }
    EXPECT_EQ(got.size(), 9u);
    auto none = f.pm.bind(Protocol::Tcp, any, 0, reuse);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().value, EADDRINUSE);
    // A different local address does not overlap.
    EXPECT_TRUE(f.pm.bind(Protocol::Tcp, ip_a, 0, {}).has_value() == false);  // wildcard owners overlap ip_a
}

TEST(PortEphemeral, BindPortZeroWithReuseAddrTriesTheLowerHalfFirst) {
    Fixture f;
    ASSERT_FALSE(f.tunables.set("ip_local_port_range", "40000 40099"));
    OwnerFlags reuse{true, false, 1000, 0};
    for (int i = 0; i < 20; ++i) {
        auto r = f.pm.bind(Protocol::Tcp, any, 0, reuse);
        ASSERT_TRUE(r);
        EXPECT_LT(r->port, 40050) << "inet_csk_find_open_port attempt_half";
    }
}

TEST(PortEphemeral, ConnectPrefersTheParityOfLowAndSharesConnectPorts) {
    Fixture f;
    std::set<std::pair<uint16_t, uint16_t>> tuples;  // (local port, remote port)
    for (uint16_t rport = 1; rport <= 300; ++rport) {
        auto r = f.pm.connect(ip_a, peer, rport, {}, [](uint16_t) { return true; });
        ASSERT_TRUE(r);
        EXPECT_EQ(r->port % 2, 0) << "__inet_hash_connect scans low's parity first";
        tuples.insert({r->port, rport});
    }
    EXPECT_EQ(tuples.size(), 300u);
}

TEST(PortEphemeral, ConnectSkipsPortsTakenByBindAndExhaustsWithEaddrnotavail) {
    Fixture f;
    ASSERT_FALSE(f.tunables.set("ip_local_port_range", "50000 50009"));
    ASSERT_TRUE(f.pm.bind(Protocol::Tcp, ip_b, 50004, {}));  // bind() owner: port not shared with connect
    // The claim callback stands for the 4-tuple table: each port once.
    std::set<uint16_t> used;
    auto claim = [&](uint16_t port) { return used.insert(port).second; };
    for (int i = 0; i < 9; ++i) {
        auto r = f.pm.connect(ip_a, peer, 80, {}, claim);
        ASSERT_TRUE(r) << i;
        EXPECT_NE(r->port, 50004);
    }
    auto none = f.pm.connect(ip_a, peer, 80, {}, claim);
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().value, EADDRNOTAVAIL);
    // A different destination may reuse the same local ports (unique 4-tuples).
    auto other = f.pm.connect(ip_a, peer, 443, {}, [](uint16_t) { return true; });
    EXPECT_TRUE(other);
}

TEST(PortEphemeral, ConnectPortsAreSpreadAndTheOffsetMovesOn) {
    Fixture f;
    std::map<uint16_t, int> hits;
    uint16_t previous = 0;
    int same_as_previous = 0;
    for (int i = 0; i < 1000; ++i) {
        auto r = f.pm.connect(ip_a, peer, 80, {}, [](uint16_t) { return true; });
        ASSERT_TRUE(r);
        ++hits[r->port];
        same_as_previous += r->port == previous;
        previous = r->port;
        f.pm.release(*r);  // the connection went away
    }
    EXPECT_EQ(same_as_previous, 0) << "table_perturb advances after each connect";
    EXPECT_GT(hits.size(), 900u);
}

TEST(PortEphemeral, UdpAutobindExhaustionIsEagainAndBindZeroIsEaddrinuse) {
    Fixture f;
    ASSERT_FALSE(f.tunables.set("ip_local_port_range", "40000 40002"));
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.pm.udp_autobind(any, {}));
    }
    auto autobind = f.pm.udp_autobind(any, {});
    ASSERT_FALSE(autobind);
    EXPECT_EQ(autobind.error().value, EAGAIN);
    auto bind0 = f.pm.bind(Protocol::Udp, any, 0, {});
    ASSERT_FALSE(bind0);
    EXPECT_EQ(bind0.error().value, EADDRINUSE);
}

// ---------------------------------------------------------------- state and flags

TEST(PortState, OptionsSetAfterBindCountAtTheNextCheck) {
    Fixture f;
    auto first = f.pm.bind(Protocol::Tcp, any, 9000, {});
    ASSERT_TRUE(first);
    EXPECT_FALSE(f.pm.bind(Protocol::Tcp, any, 9000, {true, false, 1000, 0}));
    f.pm.set_flags(*first, true, false);  // setsockopt(SO_REUSEADDR) after bind
    EXPECT_TRUE(f.pm.bind(Protocol::Tcp, any, 9000, {true, false, 1000, 0}));
}

TEST(PortState, ReleaseFreesThePortAndTheBucketMarkGoesWithTheLastOwner) {
    Fixture f;
    ASSERT_FALSE(f.tunables.set("ip_local_port_range", "50000 50001"));
    auto bound = f.pm.bind(Protocol::Tcp, ip_a, 50000, {true, false, 1000, 0});
    ASSERT_TRUE(bound);
    auto connected = f.pm.connect(ip_a, peer, 80, {}, [](uint16_t) { return true; });
    ASSERT_TRUE(connected);  // must avoid 50000, bind-owned
    EXPECT_NE(connected->port, 50000);
    EXPECT_TRUE(f.pm.bound_by_bind(Protocol::Tcp, 50000));
    f.pm.release(*bound);
    EXPECT_EQ(f.pm.owner_count(Protocol::Tcp, 50000), 0u);
    EXPECT_FALSE(f.pm.bound_by_bind(Protocol::Tcp, 50000));
}

TEST(PortState, TimeWaitKeepsTheFlagsOfItsSocket) {
    // A server restart succeeds only if the OLD listener had SO_REUSEADDR:
    // its accepted children inherited its flags and so did their TIME_WAIT.
    for (bool old_had_reuseaddr : {false, true}) {
        Fixture f;
        const OwnerFlags old_flags{old_had_reuseaddr, false, 1000, 0};
        auto old_listener = f.pm.bind(Protocol::Tcp, any, 8000, old_flags);
        ASSERT_TRUE(old_listener);
        ASSERT_TRUE(f.pm.listen(*old_listener));
        Reservation child = f.pm.accept_child(*old_listener, ip_a);
        EXPECT_EQ(child.reuse_addr, old_had_reuseaddr);
        f.pm.release(*old_listener);                  // the server died (SIGKILL)...
        f.pm.set_state(child, OwnerState::TimeWait);  // ...its connection was closed actively
        auto restart = f.pm.bind(Protocol::Tcp, any, 8000, {true, false, 1000, 0});
        EXPECT_EQ(restart.has_value(), old_had_reuseaddr);
        if (!restart) {
            EXPECT_EQ(restart.error().value, EADDRINUSE);
        }
    }
}

TEST(PortState, AMillionTimeWaitOwnersAreOneGroup) {
    Fixture f;
    std::vector<Reservation> entries;
    entries.reserve(1000000);
    for (int i = 0; i < 1000000; ++i) {
        auto r = f.pm.connect(ip_a, peer, static_cast<uint16_t>(1 + i % 60000), {}, [](uint16_t) { return true; });
        ASSERT_TRUE(r);
        f.pm.set_state(*r, OwnerState::TimeWait);
        entries.push_back(*r);
    }
    // Table memory grows with ports, not with owners.
    EXPECT_LT(f.pm.memory_bytes(), size_t{8} << 20);
    // Connect sockets had no SO_REUSEADDR, so neither do their TIME_WAITs.
    for (bool reuse : {false, true}) {
        auto conflict = f.pm.bind(Protocol::Tcp, any, entries[0].port, {reuse, false, 1000, 0});
        ASSERT_FALSE(conflict);
        EXPECT_EQ(conflict.error().value, EADDRINUSE);
    }
    EXPECT_TRUE(f.pm.bind(Protocol::Tcp, any, 80, {}));
}

// ---------------------------------------------------------------- bind() error order

TEST(BindErrorOrder, FollowsInetBind) {
    BindRequest ok{sockaddr_in_length, AF_INET, ip_a, 8080, true, false, false};
    EXPECT_EQ(check_bind_request(ok), 0);
    BindRequest r = ok;
    r.address_length = 8;
    r.family = AF_INET6;
    r.address_is_local = false;
    r.port = 80;
    r.already_bound = true;
    EXPECT_EQ(check_bind_request(r), EINVAL) << "length first";
    r.address_length = sockaddr_in_length;
    EXPECT_EQ(check_bind_request(r), EAFNOSUPPORT) << "then family";
    r.family = AF_INET;
    EXPECT_EQ(check_bind_request(r), EADDRNOTAVAIL) << "then address";
    r.address_is_local = true;
    EXPECT_EQ(check_bind_request(r), EACCES) << "then privilege";
    r.may_bind_privileged = true;
    EXPECT_EQ(check_bind_request(r), EINVAL) << "then already bound";
    r.already_bound = false;
    EXPECT_EQ(check_bind_request(r), 0);
    BindRequest unspec = ok;
    unspec.family = AF_UNSPEC;
    unspec.address = any;
    EXPECT_EQ(check_bind_request(unspec), 0) << "AF_UNSPEC with INADDR_ANY is accepted";
    unspec.address = ip_a;
    EXPECT_EQ(check_bind_request(unspec), EAFNOSUPPORT);
}

}  // namespace
}  // namespace ustack::ports
