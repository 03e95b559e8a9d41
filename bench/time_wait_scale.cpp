// TIME_WAIT at scale: with 1 k and with 1 M entries held, how long do a
// bind conflict check and an outgoing connect take, and how many bytes
// does an entry cost? Both operations must stay O(1) in the entry count.
// The structures measured are the ones the TCP engine holds TIME_WAIT in:
// TcpEngine keeps its TIME_WAIT and orphaned FIN_WAIT2 records in a
// tcp::TimeWaitTable over the stack's ports::PortManager.
//
//   build/bin/bench_time_wait_scale
#include <chrono>
#include <cstdio>
#include <vector>

#include "stack/ports/port_manager.h"
#include "stack/tcp/time_wait_table.h"

using namespace ustack;

namespace {

const wire::Ipv4Address local{10, 0, 0, 1};

double ns_per_op(std::chrono::steady_clock::duration d, size_t ops) {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()) /
           static_cast<double>(ops);
}

void run(size_t entries) {
    Tunables tunables;
    tunables.tcp_max_tw_buckets = 4000000;
    tunables.tcp_tw_reuse = 1;
    SeededRandom random(entries);
    ports::PortManager ports(tunables, random);
    tcp::SequenceSecrets secrets(random);
    tcp::TimeWaitTable table(tunables, ports, secrets, random);
    const Instant start = Instant::from_secs(10);

    // Fill: connections to many peers, each closed actively into TIME_WAIT.
    for (size_t i = 0; i < entries; ++i) {
        const wire::Ipv4Address peer(10, 1, static_cast<uint8_t>(i >> 16), static_cast<uint8_t>(i >> 8));
        const auto rport = static_cast<uint16_t>(1 + (i & 0xff));
        auto r = ports.connect(local, peer, rport, {}, [&](uint16_t port) {
            return !table.find(tcp::FourTuple{local, peer, port, rport});
        });
        if (!r) {
            std::printf("fill failed at %zu\n", i);
            return;
        }
        tcp::TimeWaitState s;
        s.tuple = tcp::FourTuple{local, peer, r->port, rport};
        s.snd_nxt = wire::SeqNumber(1);
        s.ts_recent = 1;
        s.ts_recent_stamp = start;
        table.insert(start, s, tcp::TimeWaitSubstate::TimeWait, *r);
    }

    // 1. bind() conflict checks against TIME_WAIT-held ports (EADDRINUSE).
    constexpr size_t checks = 200000;
    size_t refused = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < checks; ++i) {
        const auto port = static_cast<uint16_t>(32768 + (i * 7919) % 28232);
        auto r = ports.bind(ports::Protocol::Tcp, wire::Ipv4Address::unspecified(), port, {true, false, 0, 0});
        if (r) {
            ports.release(*r);
        } else {
            ++refused;
        }
    }
    const double bind_ns = ns_per_op(std::chrono::steady_clock::now() - t0, checks);

    // 2. connect(): port choice plus the 4-tuple check, reusing TIME_WAIT
    // entries (tcp_tw_reuse=1, delay passed) when the tuple is taken.
    constexpr size_t connects = 200000;
    const Instant later = start + Duration::from_secs(2);
    size_t reused_before = table.counters().recycled;
    t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < connects; ++i) {
        const wire::Ipv4Address peer(10, 2, static_cast<uint8_t>(i >> 8), static_cast<uint8_t>(i));
        auto r = ports.connect(local, peer, 80, {}, [&](uint16_t port) {
            const tcp::FourTuple tuple{local, peer, port, 80};
            return !table.find(tuple) || table.take_for_reuse(tuple, later, false).has_value();
        });
        if (r) {
            ports.release(*r);
        }
    }
    const double connect_ns = ns_per_op(std::chrono::steady_clock::now() - t0, connects);

    std::printf("| %9zu | %8.1f | %10.1f | %12.1f | %8zu | %zu |\n", entries, bind_ns, connect_ns,
                entries ? static_cast<double>(table.memory_bytes()) / static_cast<double>(entries) : 0.0,
                refused, table.counters().recycled - reused_before);
}

}  // namespace

int main() {
    std::printf("TIME_WAIT scale (one core, -O2)\n\n");
    std::printf("| entries   | bind ns  | connect ns | bytes/entry  | bind EADDRINUSE | tw reused |\n");
    std::printf("|-----------|----------|------------|--------------|-----------------|-----------|\n");
    run(1000);
    run(1000000);
    return 0;
}
