#include "tests/support/stack_pair.h"

#include <stdexcept>

#include "netdev/pair.h"
#include "netdev/pcap_writer.h"

namespace ustack::testing {

StackPair::StackPair(StackPairOptions options)
    : random_a_(options.seed * 2 + 1), random_b_(options.seed * 2 + 2) {
    netdev::DevicePair pair = netdev::make_device_pair(mac_a, mac_b, options.mtu);
    dev_a_ = std::move(pair.a);
    dev_b_ = std::move(pair.b);
    if (options.faults_into_a) {
        auto injector = std::make_unique<netdev::FaultInjector>(std::move(dev_a_), *options.faults_into_a,
                                                                options.seed * 7 + 1);
        faults_a_ = injector.get();
        dev_a_ = std::move(injector);
    }
    if (options.faults_into_b) {
        auto injector = std::make_unique<netdev::FaultInjector>(std::move(dev_b_), *options.faults_into_b,
                                                                options.seed * 7 + 2);
        faults_b_ = injector.get();
        dev_b_ = std::move(injector);
    }
    if (options.pcap_path) {
        auto writer = netdev::PcapWriter::open(std::move(dev_a_), *options.pcap_path);
        if (!writer) {
            throw std::runtime_error("cannot open pcap " + *options.pcap_path);
        }
        dev_a_ = std::move(*writer);
    }
    stack_a_ = std::make_unique<Stack>(options.config_a, *dev_a_, random_a_);
    stack_b_ = std::make_unique<Stack>(options.config_b, *dev_b_, random_b_);
}

void StackPair::settle() {
    // Each poll consumes what is due; a bounded number of rounds guards
    // against a bug that keeps reporting work due without doing it.
    for (int round = 0; round < 1000000; ++round) {
        stack_a_->poll(now_);
        stack_b_->poll(now_);
        auto due = [&](const Stack& s) {
            auto t = s.poll_at();
            return t && *t <= now_;
        };
        if (!due(*stack_a_) && !due(*stack_b_)) {
            return;
        }
    }
    throw std::runtime_error("StackPair::settle: stacks never became idle");
}

void StackPair::run_until(Instant until) {
    while (true) {
        settle();
        std::optional<Instant> next;
        for (const Stack* s : {stack_a_.get(), stack_b_.get()}) {
            if (auto t = s->poll_at(); t && (!next || *t < *next)) {
                next = t;
            }
        }
        if (!next || *next > until) {
            now_ = until;
            settle();
            return;
        }
        now_ = *next;
    }
}

bool StackPair::run_until(const std::function<bool()>& done, Duration limit) {
    const Instant deadline = now_ + limit;
    while (true) {
        settle();
        if (done()) {
            return true;
        }
        std::optional<Instant> next;
        for (const Stack* s : {stack_a_.get(), stack_b_.get()}) {
            if (auto t = s->poll_at(); t && (!next || *t < *next)) {
                next = t;
            }
        }
        if (!next || *next > deadline) {
            now_ = deadline;
            settle();
            return done();
        }
        now_ = *next;
    }
}

}  // namespace ustack::testing
