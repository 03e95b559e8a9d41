#include "stack/wire/ethernet.h"

#include <algorithm>
#include <cassert>

namespace ustack::wire {

namespace {

std::optional<uint8_t> hex_digit(char c) {
    if (c >= '0' && c <= '9') {
        return static_cast<uint8_t>(c - '0');
    }
    if (c >= 'a' && c <= 'f') {
        return static_cast<uint8_t>(c - 'a' + 10);
    }
    if (c >= 'A' && c <= 'F') {
        return static_cast<uint8_t>(c - 'A' + 10);
    }
    return std::nullopt;
}

}  // namespace

std::optional<MacAddress> MacAddress::parse(std::string_view text) {
    // Exactly "xx:xx:xx:xx:xx:xx" (17 characters), as ip-link(8) prints it.
    constexpr size_t text_len = 17;
    if (text.size() != text_len) {
        return std::nullopt;
    }
    MacAddress mac;
    for (size_t i = 0; i < mac.bytes.size(); ++i) {
        const size_t pos = i * 3;
        if (i != 0 && text[pos - 1] != ':') {
            return std::nullopt;
        }
        const auto hi = hex_digit(text[pos]);
        const auto lo = hex_digit(text[pos + 1]);
        if (!hi || !lo) {
            return std::nullopt;
        }
        mac.bytes[i] = static_cast<uint8_t>((*hi << 4) | *lo);
    }
    return mac;
}

std::string MacAddress::to_string() const {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    s.reserve(17);
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (i != 0) {
            s += ':';
        }
        s += digits[bytes[i] >> 4];
        s += digits[bytes[i] & 0x0f];
    }
    return s;
}

void EthernetRepr::emit(MutByteSpan buf) const {
    assert(buf.size() >= header_len);
    std::copy(dst.bytes.begin(), dst.bytes.end(), buf.begin() + DST.start);
    std::copy(src.bytes.begin(), src.bytes.end(), buf.begin() + SRC.start);
    write_u16(buf, ETHERTYPE.start, ethertype);
}

Expected<EthernetFrame, ParseError> parse_ethernet(ByteSpan frame) {
    if (frame.size() < EthernetRepr::header_len) {
        return make_unexpected(ParseError::Truncated);
    }
    EthernetFrame out;
    std::copy_n(frame.begin() + EthernetRepr::DST.start, EthernetRepr::DST.size(),
                out.repr.dst.bytes.begin());
    std::copy_n(frame.begin() + EthernetRepr::SRC.start, EthernetRepr::SRC.size(),
                out.repr.src.bytes.begin());
    // Raw, even below 0x0600 (an 802.3 length): the interface counts and
    // drops what it does not know.
    out.repr.ethertype = read_u16(frame, EthernetRepr::ETHERTYPE.start);
    out.payload = frame.subspan(EthernetRepr::header_len);
    return out;
}

}  // namespace ustack::wire
