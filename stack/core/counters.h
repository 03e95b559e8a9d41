#pragma once
// Every frame the stack drops is counted with its reason, and every
// interesting event has a counter. One X-macro list gives the enum, the
// names printed by `ustackctl stats`, and the descriptions.
#include <array>
#include <cstdint>
#include <string_view>

namespace ustack {

// X(name, description)
#define USTACK_COUNTERS(X)                                                                 \
    X(rx_frames, "frames received from the device")                                        \
    X(tx_frames, "frames handed to the device")                                            \
    X(drop_eth_truncated, "dropped: Ethernet frame shorter than its header")               \
    X(drop_eth_not_for_us, "dropped: destination MAC neither ours nor broadcast")          \
    X(drop_eth_multicast, "dropped: multicast frame (no multicast groups are joined; e.g. IPv6 MLD)") \
    X(drop_eth_own_source, "dropped: frame carrying our own source MAC (looped back)")     \
    X(drop_eth_unknown_type, "dropped: EtherType we do not handle (IPv6, VLAN, ...)")      \
    X(drop_arp_malformed, "dropped: ARP packet truncated or with bad lengths")             \
    X(drop_arp_unsupported, "dropped: ARP for a hardware/protocol type other than Ethernet/IPv4") \
    X(drop_arp_not_for_us, "ARP request for another address (ignored)")                   \
    X(drop_ip_truncated, "dropped: IPv4 packet shorter than its header or total length")  \
    X(drop_ip_bad_version, "dropped: IP version field is not 4")                           \
    X(drop_ip_bad_length, "dropped: IPv4 header or total length inconsistent")             \
    X(drop_ip_bad_checksum, "dropped: IPv4 header checksum wrong")                         \
    X(drop_ip_not_for_us, "dropped: IPv4 destination is not a local address (no forwarding)") \
    X(drop_ip_martian_source, "dropped: IPv4 source is broadcast, multicast or ours")      \
    X(drop_ip_unknown_protocol, "dropped: IP protocol we do not handle (ICMP protocol unreachable sent)") \
    X(drop_ip_frag_overlap, "dropped: overlapping IPv4 fragments (whole datagram discarded)") \
    X(drop_ip_frag_too_big, "dropped: reassembled datagram would exceed 65535 bytes")     \
    X(drop_ip_frag_limit, "dropped: fragment reassembly memory or queue limit reached")    \
    X(drop_ip_frag_timeout, "dropped: fragments whose datagram did not complete in time") \
    X(drop_icmp_malformed, "dropped: ICMP message truncated or malformed")                 \
    X(drop_icmp_bad_checksum, "dropped: ICMP checksum wrong")                              \
    X(drop_icmp_unsupported, "dropped: ICMP type we do not handle")                        \
    X(drop_icmp_broadcast_echo, "dropped: echo request to a broadcast address (ignored as Linux does)") \
    X(drop_icmp_unclaimed_reply, "dropped: echo reply nobody is waiting for")              \
    X(drop_udp_malformed, "dropped: UDP datagram truncated or with a bad length")          \
    X(drop_udp_bad_checksum, "dropped: UDP checksum wrong")                                \
    X(drop_udp_no_socket, "dropped: UDP datagram for a port with no socket (port unreachable sent)") \
    X(drop_udp_rcvbuf_full, "dropped: UDP socket receive queue full")                      \
    X(drop_tcp_malformed, "dropped: TCP segment truncated or with bad options")            \
    X(drop_tcp_bad_checksum, "dropped: TCP checksum wrong")                                \
    X(drop_tcp_no_handler, "dropped: TCP segment while no TCP engine is attached")         \
    X(drop_tx_no_route, "dropped on send: no route to the destination")                    \
    X(drop_tx_arp_queue_full, "dropped on send: too many packets waiting for ARP")         \
    X(drop_tx_arp_failed, "dropped on send: ARP resolution failed (host unreachable)")     \
    X(drop_tx_device, "dropped on send: the device refused the frame")                     \
    X(arp_requests_sent, "ARP requests sent")                                              \
    X(arp_replies_sent, "ARP replies sent")                                                \
    X(arp_entries_expired, "ARP cache entries expired")                                    \
    X(arp_entries_evicted, "ARP cache entries evicted because the cache was full")         \
    X(ip_packets_in, "IPv4 packets delivered to a local protocol")                         \
    X(ip_packets_out, "IPv4 packets sent (before fragmentation)")                          \
    X(ip_frags_created, "IPv4 fragments created on output")                                \
    X(ip_reassembled, "IPv4 datagrams reassembled from fragments")                        \
    X(icmp_echo_replies_sent, "ICMP echo replies sent")                                    \
    X(icmp_errors_sent, "ICMP error messages sent")                                        \
    X(icmp_errors_rate_limited, "ICMP error messages suppressed by the rate limit")        \
    X(icmp_errors_received, "ICMP error messages received and delivered to a socket")      \
    X(udp_datagrams_in, "UDP datagrams queued to a socket")                                \
    X(udp_datagrams_out, "UDP datagrams sent")

enum class Counter : uint16_t {
#define USTACK_COUNTER_ENUM(name, description) name,
    USTACK_COUNTERS(USTACK_COUNTER_ENUM)
#undef USTACK_COUNTER_ENUM
        count_
};

inline constexpr size_t counter_count = static_cast<size_t>(Counter::count_);

std::string_view counter_name(Counter c);
std::string_view counter_description(Counter c);

class Counters {
public:
    void add(Counter c, uint64_t n = 1) { values_[static_cast<size_t>(c)] += n; }
    uint64_t get(Counter c) const { return values_[static_cast<size_t>(c)]; }
    // Sum of every drop_* counter.
    uint64_t total_drops() const;

    template <typename F>
    void for_each(F&& f) const {
        for (size_t i = 0; i < counter_count; ++i) {
            f(counter_name(static_cast<Counter>(i)), values_[i]);
        }
    }

private:
    std::array<uint64_t, counter_count> values_{};
};

}  // namespace ustack
