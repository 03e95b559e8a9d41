#pragma once
// Two stacks joined by the in-memory device pair, driven in simulated time:
// a 60 s timer runs in microseconds of real time. Each end's receive path
// can be wrapped in a FaultInjector; end A can be captured to pcap.
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "netdev/fault_injector.h"
#include "netdev/netdev.h"
#include "stack/core/random.h"
#include "stack/core/time.h"
#include "stack/stack.h"

namespace ustack::testing {

inline const wire::MacAddress mac_a{{0x02, 0x00, 0x00, 0x00, 0x00, 0x0a}};
inline const wire::MacAddress mac_b{{0x02, 0x00, 0x00, 0x00, 0x00, 0x0b}};
inline const wire::Ipv4Address addr_a{10, 0, 0, 1};
inline const wire::Ipv4Address addr_b{10, 0, 0, 2};

struct StackPairOptions {
    size_t mtu = 1500;
    std::optional<netdev::FaultConfig> faults_into_a;  // applied to frames A receives
    std::optional<netdev::FaultConfig> faults_into_b;
    uint64_t seed = 1;
    std::optional<std::string> pcap_path;  // capture at A
    StackConfig config_a = default_config(addr_a);
    StackConfig config_b = default_config(addr_b);

    static StackConfig default_config(wire::Ipv4Address addr) {
        StackConfig config;
        config.address = wire::Ipv4Cidr{addr, 24};
        return config;
    }
};

class StackPair {
public:
    explicit StackPair(StackPairOptions options = {});

    Stack& a() { return *stack_a_; }
    Stack& b() { return *stack_b_; }
    netdev::NetDev& device_a() { return *dev_a_; }
    netdev::NetDev& device_b() { return *dev_b_; }
    // The fault injectors, when configured.
    netdev::FaultInjector* faults_into_a() { return faults_a_; }
    netdev::FaultInjector* faults_into_b() { return faults_b_; }
    Instant now() const { return now_; }

    // Polls both stacks, jumping simulated time from deadline to deadline,
    // until `until` (inclusive).
    void run_until(Instant until);
    void run_for(Duration d) { run_until(now_ + d); }
    // Runs until done() holds or `limit` of simulated time passes; returns done().
    bool run_until(const std::function<bool()>& done, Duration limit);
    // Polls both stacks at the current instant until neither has work due.
    void settle();

private:
    SeededRandom random_a_;
    SeededRandom random_b_;
    std::unique_ptr<netdev::NetDev> dev_a_;
    std::unique_ptr<netdev::NetDev> dev_b_;
    netdev::FaultInjector* faults_a_ = nullptr;
    netdev::FaultInjector* faults_b_ = nullptr;
    std::unique_ptr<Stack> stack_a_;
    std::unique_ptr<Stack> stack_b_;
    Instant now_ = Instant::from_secs(1);
};

}  // namespace ustack::testing
