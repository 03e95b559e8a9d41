#include "stack/ports/bind_checks.h"

#include <cerrno>
#include <sys/socket.h>

namespace ustack::ports {

int check_bind_request(const BindRequest& r) {
    if (r.address_length < sockaddr_in_length) {
        return EINVAL;
    }
    if (r.family != AF_INET && !(r.family == AF_UNSPEC && r.address.is_unspecified())) {
        return EAFNOSUPPORT;
    }
    // inet_addr_valid_or_nonlocal: local, broadcast (0.0.0.0 included) or multicast.
    if (!r.address_is_local && !r.address.is_unspecified() && !r.address.is_broadcast() && !r.address.is_multicast()) {
        return EADDRNOTAVAIL;
    }
    if (r.port != 0 && r.port < unprivileged_port_start && !r.may_bind_privileged) {
        return EACCES;
    }
    if (r.already_bound) {
        return EINVAL;
    }
    return 0;
}

}  // namespace ustack::ports
