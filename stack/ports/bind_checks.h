#pragma once
// The checks bind(2) makes before the port manager is asked, in Linux's
// order (inet_bind_sk → __inet_bind): bad length → EINVAL; family not
// AF_INET (AF_UNSPEC allowed with INADDR_ANY) → EAFNOSUPPORT; address not
// local → EADDRNOTAVAIL; port below ip_unprivileged_port_start without
// CAP_NET_BIND_SERVICE → EACCES; socket already bound or not CLOSED →
// EINVAL. Conflicts (EADDRINUSE) come after, from the port manager.
#include <cstddef>
#include <cstdint>

#include "stack/wire/ipv4_address.h"

namespace ustack::ports {

struct BindRequest {
    size_t address_length = 0;      // addrlen passed to bind(2)
    int family = 0;                 // sin_family
    wire::Ipv4Address address;      // sin_addr
    uint16_t port = 0;              // sin_port, host order
    bool address_is_local = false;  // one of the stack's addresses (or any/broadcast)
    bool may_bind_privileged = false;
    bool already_bound = false;     // inet_num set, or state not CLOSE
};

inline constexpr uint16_t unprivileged_port_start = 1024;  // net.ipv4.ip_unprivileged_port_start
inline constexpr size_t sockaddr_in_length = 16;

// 0 when the request may go on to the port manager, else the errno.
int check_bind_request(const BindRequest& request);

}  // namespace ustack::ports
