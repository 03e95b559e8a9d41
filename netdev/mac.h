#pragma once
// The stack's own MAC address. It is deliberately not the kernel interface's
// MAC: on a TAP or an AF_PACKET link the stack is one more host on the
// segment, next to the kernel, and must be told apart from it.
#include "stack/core/random.h"
#include "stack/wire/ethernet.h"

namespace ustack::netdev {

// A random unicast, locally administered address (IEEE 802 U/L bit set,
// I/G bit clear): 02:xx:xx:xx:xx:xx, as Linux's eth_random_addr() makes for
// virtual devices. Drawn from getrandom().
wire::MacAddress random_local_mac();
// The same from an injected source, for reproducible tests.
wire::MacAddress random_local_mac(Random& random);

}  // namespace ustack::netdev
