#pragma once
// Why a real device could not be opened: the errno of the failing call and a
// sentence that names the interface, the problem and, where there is one,
// the command that fixes it ("interface eth1 is down: ip link set eth1 up").
// Opening a device is configuration, not the data path, so the message is
// worth its allocation; Result<T> (errno only) stays the data-path type.
#include <string>
#include <utility>

#include "stack/core/expected.h"

namespace ustack::netdev {

struct DeviceError {
    Errno error;          // ENODEV, ENETDOWN, EPERM, EADDRINUSE, EBUSY, ...
    std::string message;  // for a person: what is wrong and how to fix it
};

template <typename T>
using DeviceResult = Expected<T, DeviceError>;

inline Unexpected<DeviceError> device_fail(int errno_value, std::string message) {
    return Unexpected<DeviceError>{DeviceError{Errno{errno_value}, std::move(message)}};
}

}  // namespace ustack::netdev
