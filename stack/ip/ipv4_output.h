#pragma once
// What a transport protocol needs from the IPv4 layer to send: the stack
// routes, resolves, fragments and frames; the transport writes its own
// header and payload straight into the packet buffer.
#include <cstddef>
#include <cstdint>

#include "stack/core/expected.h"
#include "stack/core/function_ref.h"
#include "stack/core/time.h"
#include "stack/wire/bytes.h"
#include "stack/wire/ipv4_address.h"

namespace ustack::ip {

struct Ipv4SendParams {
    wire::Ipv4Address src;  // must be a local address (or unspecified: the stack picks)
    wire::Ipv4Address dst;
    uint8_t protocol = 0;
    uint8_t ttl = 64;
    uint8_t tos = 0;
    bool dont_fragment = false;  // TCP sets DF (path MTU discovery); UDP may be fragmented
};

class Ipv4Output {
public:
    virtual ~Ipv4Output() = default;
    // Sends one transport packet of l4_len bytes; write_l4 fills them.
    // Errors: ENETUNREACH (no route), EMSGSIZE (too big with DF, or over
    // 65535), ENOBUFS (device refused). A packet waiting for ARP counts
    // as sent; if resolution fails the transport hears EHOSTUNREACH
    // through its ICMP error path, as Linux reports it.
    virtual Result<void> send_ipv4(Instant now, const Ipv4SendParams& params, size_t l4_len,
                                   FunctionRef<void(wire::MutByteSpan)> write_l4) = 0;
    // Source address the stack uses toward dst.
    virtual wire::Ipv4Address source_for(wire::Ipv4Address dst) const = 0;
    // True when addr is one of ours (bind() check).
    virtual bool is_local_address(wire::Ipv4Address addr) const = 0;
    // Largest IP packet the device carries.
    virtual size_t mtu() const = 0;
};

}  // namespace ustack::ip
