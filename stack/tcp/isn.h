#pragma once
// Initial sequence numbers (RFC 6528) and timestamp offsets (RFC 7323
// §5.4), both keyed hashes with secrets drawn once from the injected
// Random, as Linux's secure_tcp_seq() and secure_tcp_ts_off().
#include <cstdint>

#include "stack/core/random.h"
#include "stack/core/siphash.h"
#include "stack/core/time.h"
#include "stack/tcp/tcp_types.h"
#include "stack/wire/seq.h"

namespace ustack::tcp {

class SequenceSecrets {
public:
    explicit SequenceSecrets(Random& random);

    // RFC 6528 §3: ISN = M + F(localip, localport, remoteip, remoteport,
    // secretkey). F is SipHash-2-4; M ticks every 64 ns like Linux's
    // ktime_get_real_ns() >> 6, so a reconnect on the same 4-tuple starts
    // past the old connection's ISN.
    wire::SeqNumber isn(Instant now, const Endpoint& local, const Endpoint& remote) const;

    // Timestamp offset: a keyed hash of the address pair, not the ports
    // (secure_tcp_ts_off): connections between the same hosts share a
    // monotonic TSval clock, which PAWS across incarnations and
    // tcp_tw_reuse rely on, while the host's uptime stays hidden.
    uint32_t ts_offset(wire::Ipv4Address local, wire::Ipv4Address remote) const;

private:
    SipKey isn_key_;
    SipKey ts_key_;
};

}  // namespace ustack::tcp
