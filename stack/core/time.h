#pragma once
// Simulated or real time, always passed in: stack/ has no global clock
// (smoltcp's Instant). Microsecond resolution, signed 64-bit.
#include <compare>
#include <cstdint>
#include <string>

namespace ustack {

class Duration {
public:
    constexpr Duration() = default;
    static constexpr Duration from_micros(int64_t us) { return Duration(us); }
    static constexpr Duration from_millis(int64_t ms) { return Duration(ms * 1000); }
    static constexpr Duration from_secs(int64_t s) { return Duration(s * 1000000); }
    static constexpr Duration zero() { return Duration(0); }
    static constexpr Duration max() { return Duration(INT64_MAX / 4); }

    constexpr int64_t micros() const { return us_; }
    constexpr int64_t millis() const { return us_ / 1000; }
    constexpr int64_t secs() const { return us_ / 1000000; }

    constexpr Duration operator+(Duration o) const { return Duration(us_ + o.us_); }
    constexpr Duration operator-(Duration o) const { return Duration(us_ - o.us_); }
    constexpr Duration operator*(int64_t k) const { return Duration(us_ * k); }
    constexpr Duration operator/(int64_t k) const { return Duration(us_ / k); }
    constexpr Duration& operator+=(Duration o) { us_ += o.us_; return *this; }
    constexpr Duration& operator-=(Duration o) { us_ -= o.us_; return *this; }
    constexpr auto operator<=>(const Duration&) const = default;

private:
    constexpr explicit Duration(int64_t us) : us_(us) {}
    int64_t us_ = 0;
};

class Instant {
public:
    constexpr Instant() = default;
    static constexpr Instant from_micros(int64_t us) { return Instant(us); }
    static constexpr Instant from_millis(int64_t ms) { return Instant(ms * 1000); }
    static constexpr Instant from_secs(int64_t s) { return Instant(s * 1000000); }
    static constexpr Instant zero() { return Instant(0); }

    constexpr int64_t micros() const { return us_; }
    constexpr int64_t millis() const { return us_ / 1000; }

    constexpr Instant operator+(Duration d) const { return Instant(us_ + d.micros()); }
    constexpr Instant operator-(Duration d) const { return Instant(us_ - d.micros()); }
    constexpr Duration operator-(Instant o) const { return Duration::from_micros(us_ - o.us_); }
    constexpr Instant& operator+=(Duration d) { us_ += d.micros(); return *this; }
    constexpr auto operator<=>(const Instant&) const = default;

private:
    constexpr explicit Instant(int64_t us) : us_(us) {}
    int64_t us_ = 0;
};

// The host supplies real time through this; tests supply a simulated one.
class Clock {
public:
    virtual ~Clock() = default;
    virtual Instant now() const = 0;
};

class ManualClock final : public Clock {
public:
    explicit ManualClock(Instant start = Instant::zero()) : now_(start) {}
    Instant now() const override { return now_; }
    void advance(Duration d) { now_ += d; }
    void set(Instant t) { now_ = t; }

private:
    Instant now_;
};

}  // namespace ustack
