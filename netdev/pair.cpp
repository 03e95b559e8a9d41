#include "netdev/pair.h"

#include <deque>
#include <mutex>
#include <utility>

namespace ustack::netdev {
namespace {

constexpr size_t ethernet_header_len = wire::EthernetRepr::header_len;

struct QueuedFrame {
    Instant sent_at;
    Frame bytes;
};

// Shared by both ends through shared_ptr, so the link outlives whichever end
// is destroyed first. queues[i] holds the frames end i will receive.
struct Link {
    explicit Link(size_t capacity) : queue_capacity(capacity) {}

    const size_t queue_capacity;
    std::mutex mutex;
    std::deque<QueuedFrame> queues[2];
    bool alive[2] = {true, true};
};

class PairEnd final : public NetDev {
public:
    PairEnd(std::shared_ptr<Link> link, int index, wire::MacAddress mac, size_t mtu)
        : link_(std::move(link)), index_(index), mac_(mac), mtu_(mtu) {}

    ~PairEnd() override {
        std::lock_guard lock(link_->mutex);
        link_->alive[index_] = false;
        // Nobody will read these any more; free them now rather than when the
        // peer goes too.
        link_->queues[index_].clear();
    }

    PairEnd(const PairEnd&) = delete;
    PairEnd& operator=(const PairEnd&) = delete;

    bool send(Instant now, std::span<const uint8_t> frame) override {
        if (frame.size() > mtu_ + ethernet_header_len) {
            ++stats_.tx_dropped;
            return false;
        }
        const int peer = 1 - index_;
        {
            std::lock_guard lock(link_->mutex);
            auto& queue = link_->queues[peer];
            if (!link_->alive[peer] || queue.size() >= link_->queue_capacity) {
                ++stats_.tx_dropped;
                return false;
            }
            queue.push_back(QueuedFrame{now, Frame(frame.begin(), frame.end())});
        }
        ++stats_.tx_frames;
        stats_.tx_bytes += frame.size();
        return true;
    }

    std::optional<Frame> receive(Instant /*now*/) override {
        std::optional<Frame> out;
        {
            std::lock_guard lock(link_->mutex);
            auto& queue = link_->queues[index_];
            if (queue.empty()) {
                return std::nullopt;
            }
            out = std::move(queue.front().bytes);
            queue.pop_front();
        }
        ++stats_.rx_frames;
        stats_.rx_bytes += out->size();
        return out;
    }

    std::optional<Instant> next_arrival() const override {
        std::lock_guard lock(link_->mutex);
        const auto& queue = link_->queues[index_];
        if (queue.empty()) {
            return std::nullopt;
        }
        return queue.front().sent_at;
    }

    size_t mtu() const override { return mtu_; }
    wire::MacAddress mac() const override { return mac_; }
    const DeviceStats& stats() const override { return stats_; }

private:
    std::shared_ptr<Link> link_;
    const int index_;
    const wire::MacAddress mac_;
    const size_t mtu_;
    // Only this end's own send/receive touch these, so they need no lock.
    DeviceStats stats_;
};

}  // namespace

DevicePair make_device_pair(wire::MacAddress mac_a, wire::MacAddress mac_b, size_t mtu) {
    PairConfig config;
    config.mtu = mtu;
    return make_device_pair(mac_a, mac_b, config);
}

DevicePair make_device_pair(wire::MacAddress mac_a, wire::MacAddress mac_b, PairConfig config) {
    auto link = std::make_shared<Link>(config.queue_capacity);
    DevicePair pair;
    pair.a = std::make_unique<PairEnd>(link, 0, mac_a, config.mtu);
    pair.b = std::make_unique<PairEnd>(std::move(link), 1, mac_b, config.mtu);
    return pair;
}

}  // namespace ustack::netdev
