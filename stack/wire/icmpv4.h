#pragma once
// ICMPv4 (RFC 792): echo request/reply, destination unreachable, time
// exceeded. Other types parse as Unsupported (counted, dropped).
#include <cstdint>

#include "stack/core/expected.h"
#include "stack/wire/bytes.h"

namespace ustack::wire {

enum class IcmpType : uint8_t {
    EchoReply = 0,
    DstUnreachable = 3,
    EchoRequest = 8,
    TimeExceeded = 11,
};

// Codes of Destination Unreachable used by the stack.
enum class IcmpUnreachCode : uint8_t {
    NetUnreachable = 0,
    HostUnreachable = 1,
    ProtoUnreachable = 2,
    PortUnreachable = 3,
    FragNeeded = 4,
    SourceRouteFailed = 5,
    NetUnknown = 6,
    HostUnknown = 7,
    NetProhibited = 9,
    HostProhibited = 10,
    CommProhibited = 13,
};

struct IcmpRepr {
    static constexpr Field TYPE{0, 1};
    static constexpr Field CODE{1, 2};
    static constexpr Field CHECKSUM{2, 4};
    static constexpr Field IDENT{4, 6};      // echo
    static constexpr Field SEQ_NO{6, 8};     // echo
    static constexpr Field NEXT_HOP_MTU{6, 8};  // unreachable, code 4
    static constexpr size_t header_len = 8;

    IcmpType type = IcmpType::EchoRequest;
    uint8_t code = 0;
    uint16_t ident = 0;         // echo only
    uint16_t seq_no = 0;        // echo only
    uint16_t next_hop_mtu = 0;  // DstUnreachable/FragNeeded only
    // Echo: the echoed data. Errors: the invoking IP header and at least
    // 8 bytes of its payload (RFC 792), as much as fits.
    ByteSpan data;

    size_t buffer_len() const { return header_len + data.size(); }
    // Writes header + data with a computed checksum; buf.size() >= buffer_len().
    void emit(MutByteSpan buf) const;
};

// Verifies the checksum over the whole message.
Expected<IcmpRepr, ParseError> parse_icmpv4(ByteSpan message);

}  // namespace ustack::wire
