#pragma once
#include <array>
#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace ustack::wire {

// An IPv4 address held in host order (so comparisons and masks are plain
// integer operations); converted at the wire boundary only.
class Ipv4Address {
public:
    constexpr Ipv4Address() = default;
    constexpr explicit Ipv4Address(uint32_t host_order) : v_(host_order) {}
    constexpr Ipv4Address(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
        : v_((uint32_t{a} << 24) | (uint32_t{b} << 16) | (uint32_t{c} << 8) | d) {}
    static constexpr Ipv4Address unspecified() { return Ipv4Address(0); }
    static constexpr Ipv4Address broadcast() { return Ipv4Address(0xffffffffu); }
    // Parses dotted quad "a.b.c.d"; nullopt on anything else.
    static std::optional<Ipv4Address> parse(std::string_view text);

    constexpr uint32_t to_u32() const { return v_; }
    std::array<uint8_t, 4> octets() const {
        return {uint8_t(v_ >> 24), uint8_t(v_ >> 16), uint8_t(v_ >> 8), uint8_t(v_)};
    }
    constexpr bool is_unspecified() const { return v_ == 0; }
    constexpr bool is_broadcast() const { return v_ == 0xffffffffu; }
    constexpr bool is_multicast() const { return (v_ >> 28) == 0xe; }
    constexpr bool is_loopback() const { return (v_ >> 24) == 127; }
    std::string to_string() const;
    constexpr auto operator<=>(const Ipv4Address&) const = default;

private:
    uint32_t v_ = 0;
};

// Address with prefix: the stack's own address and connected subnet.
struct Ipv4Cidr {
    Ipv4Address address;
    uint8_t prefix_len = 0;  // 0..32

    // "a.b.c.d/len"; nullopt when malformed or len > 32.
    static std::optional<Ipv4Cidr> parse(std::string_view text);
    constexpr uint32_t netmask() const {
        return prefix_len == 0 ? 0u : (0xffffffffu << (32 - prefix_len));
    }
    constexpr bool contains(Ipv4Address a) const {
        return (a.to_u32() & netmask()) == (address.to_u32() & netmask());
    }
    constexpr Ipv4Address network() const { return Ipv4Address(address.to_u32() & netmask()); }
    constexpr Ipv4Address subnet_broadcast() const {
        return Ipv4Address(address.to_u32() | ~netmask());
    }
    std::string to_string() const;
    constexpr bool operator==(const Ipv4Cidr&) const = default;
};

}  // namespace ustack::wire

template <>
struct std::hash<ustack::wire::Ipv4Address> {
    size_t operator()(ustack::wire::Ipv4Address a) const noexcept {
        return std::hash<uint32_t>{}(a.to_u32());
    }
};
