#pragma once
// Errors as values inside the stack (std::expected is C++23; g++ 12 in C++20
// mode lacks it). Result<T> carries a Linux errno value on failure; the shim
// turns it into -1/errno at the C ABI and nowhere else.
#include <cassert>
#include <utility>
#include <variant>

namespace ustack {

template <typename E>
struct Unexpected {
    E error;
};

template <typename E>
Unexpected<E> make_unexpected(E e) { return Unexpected<E>{std::move(e)}; }

template <typename T, typename E>
class [[nodiscard]] Expected {
public:
    Expected(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    Expected(Unexpected<E> u) : v_(std::in_place_index<1>, std::move(u.error)) {}

    bool has_value() const { return v_.index() == 0; }
    explicit operator bool() const { return has_value(); }
    T& value() { assert(has_value()); return std::get<0>(v_); }
    const T& value() const { assert(has_value()); return std::get<0>(v_); }
    const E& error() const { assert(!has_value()); return std::get<1>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

private:
    std::variant<T, E> v_;
};

template <typename E>
class [[nodiscard]] Expected<void, E> {
public:
    Expected() = default;
    Expected(Unexpected<E> u) : error_(std::move(u.error)), ok_(false) {}
    bool has_value() const { return ok_; }
    explicit operator bool() const { return ok_; }
    const E& error() const { assert(!ok_); return error_; }

private:
    E error_{};
    bool ok_ = true;
};

// A Linux errno value (EADDRINUSE, ECONNREFUSED, ...).
struct Errno {
    int value;
    bool operator==(const Errno&) const = default;
};

template <typename T>
using Result = Expected<T, Errno>;

inline Unexpected<Errno> fail(int errno_value) { return Unexpected<Errno>{Errno{errno_value}}; }

}  // namespace ustack
