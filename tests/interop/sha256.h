#pragma once
// SHA-256 (FIPS 180-4) for checking bulk transfers byte-exact: the stack
// side hashes what it sent and received, the kernel side (python3's
// hashlib, sha256sum) does the same, and the test compares the digests.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace ustack::testing {

class Sha256 {
public:
    Sha256();
    void update(std::span<const uint8_t> data);
    // The digest as 64 lowercase hex digits, as sha256sum prints it. Ends
    // the computation: call once.
    std::string hex_digest();

private:
    void compress(const uint8_t* block);

    std::array<uint32_t, 8> state_;
    std::array<uint8_t, 64> buffer_{};
    size_t buffered_ = 0;
    uint64_t total_bytes_ = 0;
};

}  // namespace ustack::testing
