#pragma once
// An in-memory Ethernet link joining two stacks in one process: what one end
// sends, the other end receives, in order. The stack-pair tests put a
// FaultInjector and/or a PcapWriter around either end.
#include <cstddef>
#include <memory>

#include "netdev/netdev.h"
#include "stack/wire/ethernet.h"

namespace ustack::netdev {

struct PairConfig {
    // Largest Ethernet payload; a frame longer than mtu + 14 bytes of
    // Ethernet header is dropped at send, as a real NIC would refuse it.
    size_t mtu = 1500;
    // Frames each direction holds before send() starts dropping: a stack
    // that never polls its peer must not grow memory without bound.
    size_t queue_capacity = 4096;
};

struct DevicePair {
    std::unique_ptr<NetDev> a;
    std::unique_ptr<NetDev> b;
};

// Frames are due at once: receive(now) returns them whatever `now` is. While
// frames wait, next_arrival() reports the send time of the oldest one (at or
// before the present), so a simulation loop that polls every device whose
// next_arrival() <= now never leaves a frame behind.
//
// The two ends share the link state, so either may be destroyed first; a
// frame sent towards a destroyed end is dropped and counted in tx_dropped.
// The queues are locked, so the two ends may be driven from two threads (each
// end itself is used by one thread at a time, like any NetDev).
DevicePair make_device_pair(wire::MacAddress mac_a, wire::MacAddress mac_b, size_t mtu = 1500);
DevicePair make_device_pair(wire::MacAddress mac_a, wire::MacAddress mac_b, PairConfig config);

}  // namespace ustack::netdev
