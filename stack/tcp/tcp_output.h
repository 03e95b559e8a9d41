#pragma once
// Where the TCP engine's segments go: the IP layer (tcp_transport.h) or a
// test's recorder. The engine never touches bytes on the wire.
#include "stack/core/time.h"
#include "stack/wire/bytes.h"
#include "stack/wire/ipv4_address.h"
#include "stack/wire/tcp.h"

namespace ustack::tcp {

class TcpOutput {
public:
    virtual ~TcpOutput() = default;
    // One segment from src to dst. `payload` is only valid during the call.
    virtual void send_segment(Instant now, wire::Ipv4Address src, wire::Ipv4Address dst, const wire::TcpRepr& repr,
                              wire::ByteSpan payload) = 0;
};

}  // namespace ustack::tcp
