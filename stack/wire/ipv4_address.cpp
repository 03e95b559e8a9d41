#include "stack/wire/ipv4_address.h"

namespace ustack::wire {

namespace {

// Parses a decimal number of 1..max_digits digits no greater than max_value.
// Leading zeros are refused ("010" is octal 8 to inet_aton(3) but decimal 10
// to others: the ambiguity is not worth accepting).
std::optional<uint32_t> parse_decimal(std::string_view text, size_t max_digits,
                                      uint32_t max_value) {
    if (text.empty() || text.size() > max_digits) {
        return std::nullopt;
    }
    if (text.size() > 1 && text[0] == '0') {
        return std::nullopt;
    }
    uint32_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') {
            return std::nullopt;
        }
        value = value * 10 + static_cast<uint32_t>(c - '0');
    }
    if (value > max_value) {
        return std::nullopt;
    }
    return value;
}

}  // namespace

std::optional<Ipv4Address> Ipv4Address::parse(std::string_view text) {
    uint32_t value = 0;
    for (int part = 0; part < 4; ++part) {
        size_t dot = text.find('.');
        if (part == 3) {
            if (dot != std::string_view::npos) {
                return std::nullopt;  // five or more parts
            }
            dot = text.size();
        } else if (dot == std::string_view::npos) {
            return std::nullopt;  // fewer than four parts: "1.2.3"
        }
        const auto octet = parse_decimal(text.substr(0, dot), 3, 255);
        if (!octet) {
            return std::nullopt;
        }
        value = (value << 8) | *octet;
        text.remove_prefix(part == 3 ? dot : dot + 1);
    }
    return Ipv4Address(value);
}

std::string Ipv4Address::to_string() const {
    const auto o = octets();
    std::string s;
    s.reserve(15);
    for (size_t i = 0; i < o.size(); ++i) {
        if (i != 0) {
            s += '.';
        }
        s += std::to_string(o[i]);
    }
    return s;
}

std::optional<Ipv4Cidr> Ipv4Cidr::parse(std::string_view text) {
    const size_t slash = text.find('/');
    if (slash == std::string_view::npos) {
        return std::nullopt;
    }
    const auto address = Ipv4Address::parse(text.substr(0, slash));
    const auto prefix = parse_decimal(text.substr(slash + 1), 2, 32);
    if (!address || !prefix) {
        return std::nullopt;
    }
    return Ipv4Cidr{*address, static_cast<uint8_t>(*prefix)};
}

std::string Ipv4Cidr::to_string() const {
    return address.to_string() + "/" + std::to_string(prefix_len);
}

}  // namespace ustack::wire
