#pragma once
// What travels between the shim (libustack.so), the tools and a host:
//
// 1. The control RPC: one SOCK_SEQPACKET connection per process to the
//    host's abstract unix socket "\0ustack-ctl/<device>". Each call is one
//    Request message, answered by one Reply message (a fixed header and an
//    optional text). A call about a socket carries the app's fd for that
//    socket in SCM_RIGHTS: the host identifies the socket by the inode of
//    that socketpair end (fstat), so holding the fd is the permission, and
//    dup/fork/SCM_RIGHTS copies of it all name the same socket. A call that
//    creates a socket gets the new app end back in SCM_RIGHTS.
//
// 2. The data plane of a TCP socket: an AF_UNIX SOCK_STREAM socketpair,
//    bytes as they are. A listener's pair carries, host→app, one 16-byte
//    AcceptHeader (the peer address and a ticket) per accepted connection
//    with the connection's app end in SCM_RIGHTS, and app→host the ticket
//    of each connection accept() returned (see tcp_host_socket.h).
//
// 3. The data plane of a UDP socket: an AF_UNIX SOCK_SEQPACKET socketpair.
//    SEQPACKET, not DGRAM: it keeps datagram boundaries (and MSG_TRUNC),
//    and, unlike DGRAM, the host end sees EPOLLHUP when the last copy of the
//    app end is closed. Every message in either direction starts with a
//    DatagramHeader: host→app it names the source (or carries a socket
//    error: ECONNREFUSED after an ICMP port unreachable), app→host the
//    destination (sendto) or none (connected send/write).
//
// 4. Identification after exec: the host binds its end of every socketpair
//    to the abstract name "ustack-s/<domain>/<type>/<host pid>/<serial>/<device>",
//    so the shim of a freshly exec'd program recognises its inherited
//    ustack sockets with one getpeername() each, without asking anyone.
//
// Both sides are built from the same tree; `protocol_version` guards
// against a stale daemon.
#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ustack::host {

inline constexpr uint32_t protocol_version = 3;

// ------------------------------------------------------------ data plane

enum class DatagramKind : uint8_t {
    Data = 1,   // payload follows
    Error = 2,  // `addr` holds an errno value (host→app only)
};

inline constexpr uint8_t header_has_address = 1;

// 8 bytes, in front of every datagram on a UDP socketpair. addr and port in
// network byte order, as in sockaddr_in, so the shim copies them as they are.
struct DatagramHeader {
    uint8_t kind = static_cast<uint8_t>(DatagramKind::Data);
    uint8_t flags = 0;   // header_has_address
    uint16_t port = 0;   // network order
    uint32_t addr = 0;   // network order; errno for DatagramKind::Error
};
static_assert(sizeof(DatagramHeader) == 8);

// 16 bytes, host→app on a listener's pair, one per accepted connection,
// with the connection's app end in SCM_RIGHTS. Once accept() has returned
// the connection, the shim writes `ticket` back (4 bytes, app→host): a
// connection whose app end closes with its ticket unanswered was never
// accepted (it went with its listener, or with the process), and is reset
// as inet_csk_listen_stop() resets the kernel's un-accepted children.
struct AcceptHeader {
    DatagramHeader peer;  // flags header_has_address, addr, port
    uint32_t ticket = 0;
    uint32_t reserved = 0;
};
static_assert(sizeof(AcceptHeader) == 16);

// Largest UDP payload over IPv4 (65535 - 20 - 8).
inline constexpr size_t max_udp_payload = 65507;

// ------------------------------------------------------------ control RPC

enum class Op : uint32_t {
    Hello = 1,      // → Reply.addr/prefix/gateway of the stack, flags: capabilities
    Socket,         // create a socket (+ optional bind/connect); → app fd in SCM_RIGHTS
    Bind,           // [fd] addr/port
    Connect,        // [fd] addr/port; family AF_UNSPEC: disconnect
    Listen,         // [fd] value = backlog
    GetSockName,    // [fd] → addr/port
    GetPeerName,    // [fd] → addr/port, or ENOTCONN
    SetSockOpt,     // [fd] level/name/value
    GetSockOpt,     // [fd] level/name → value
    Shutdown,       // [fd] value = how (the shim shut the app end down first)
    // Tools (ustackctl).
    Sysctl,         // text "NAME" or "NAME=VALUE" or "" (all) → text
    Stats,          // → text: counters
    Status,         // → text: device, address, pid, sockets
    Sockets,        // → text: one line per socket (ss)
    KillTimeWait,   // addr/port (0 = any) → value: TIME_WAIT entries removed
    Down,           // the host exits (after the reply)
    TcpInfo,        // [fd] → text: a struct tcp_info (Linux layout)
};

// Capabilities in Reply.flags of Hello.
inline constexpr uint32_t capability_udp = 1;
inline constexpr uint32_t capability_tcp = 2;

// Reply.flags of a TCP connect (Connect, or Socket with action Connect)
// made on the app's own thread (Host::caller_call): the handshake ended
// within the call. Value still says EINPROGRESS, which a non-blocking
// connect returns (inet_stream_connect never waits); a blocking one
// returns 0 without waiting.
inline constexpr uint32_t reply_connected = 1;

// What Socket does right after creating the socket. Doing bind/connect in
// the same call lets the shim swap the fd only when it succeeded: a bind
// refused with EADDRINUSE leaves the program's socket as it was.
// Connect on TCP: Reply.value = EINPROGRESS when the handshake is under
// way (the app end is not writable until it ends). Listen: value = backlog.
enum class SocketAction : uint8_t { None = 0, Bind = 1, Connect = 2, Listen = 3 };

// An option the program set on its kernel socket before the swap (TCP:
// SO_SNDBUF, TCP_NODELAY, SO_LINGER...), applied to the stack socket in
// order before the bind/connect/listen (a receive buffer shapes the SYN).
struct ReplayedOption {
    int32_t level = 0;
    int32_t name = 0;
    int64_t value = 0;
};
inline constexpr uint32_t max_replayed_options = 12;

struct Request {
    uint32_t version = protocol_version;
    Op op = Op::Hello;
    // Socket
    int32_t domain = 0;    // AF_INET or AF_INET6 (what getsockopt(SO_DOMAIN) says)
    int32_t type = 0;      // SOCK_DGRAM or SOCK_STREAM (no flags)
    int32_t protocol = 0;
    SocketAction action = SocketAction::None;
    uint8_t reuse_addr = 0;  // options replayed from the kernel socket
    uint8_t reuse_port = 0;
    uint8_t family_unspec = 0;  // Connect: AF_UNSPEC (disconnect)
    int32_t rcvbuf = 0;         // SO_RCVBUF as getsockopt reports it; 0 = default
    // Addresses: IPv4, network order (v4-mapped IPv6 is converted by the shim).
    uint32_t addr = 0;
    uint16_t port = 0;
    uint16_t reserved = 0;
    // Options
    int32_t level = 0;
    int32_t name = 0;
    int64_t value = 0;
    // Sysctl: NUL-terminated.
    char text[256] = {};
    // Socket (TCP): options to replay.
    uint32_t option_count = 0;
    ReplayedOption options[max_replayed_options] = {};
};

struct Reply {
    int32_t error = 0;   // errno, 0 on success
    uint32_t flags = 0;  // Hello: capabilities
    int64_t value = 0;
    uint32_t addr = 0;   // network order
    uint16_t port = 0;   // network order
    uint8_t prefix_len = 0;
    uint8_t has_gateway = 0;
    uint32_t gateway = 0;  // network order
    uint32_t text_len = 0;  // bytes of text following the header
};

// Largest reply text (ss with many sockets is cut there).
inline constexpr size_t max_reply_text = 60000;

// ------------------------------------------------------------ names

// "ustack-ctl/<device>" (abstract: the sockaddr has a leading NUL).
std::string control_socket_name(std::string_view device);
inline constexpr std::string_view host_end_prefix = "ustack-s/";
std::string host_end_name(int domain, int type, long host_pid, uint64_t serial, std::string_view device);

struct HostEndInfo {
    int domain = 0;
    int type = 0;
    std::string device;
};
// Parses a host end's name (without the leading NUL); nullopt when it is
// not one.
std::optional<HostEndInfo> parse_host_end_name(std::string_view name);

// An abstract sockaddr_un for `name`; returns the length to pass to
// bind/connect.
socklen_t make_abstract_address(std::string_view name, sockaddr_un& out);
// The abstract name in a sockaddr_un returned by getpeername/getsockname,
// or nullopt when the address is not abstract.
std::optional<std::string_view> abstract_name(const sockaddr_un& address, socklen_t len);

// ------------------------------------------------------------ messages with fds

// sendmsg of one message with an optional fd in SCM_RIGHTS (fd < 0: none).
// Returns bytes sent or -1 with errno. MSG_NOSIGNAL always.
ssize_t send_with_fd(int socket, const void* data, size_t len, int fd, int flags = 0);
// recvmsg of one message; *fd receives a passed fd (MSG_CMSG_CLOEXEC) or -1.
// Extra fds beyond the first are closed. Returns bytes or -1 with errno.
ssize_t recv_with_fd(int socket, void* data, size_t len, int* fd, int flags = 0);

}  // namespace ustack::host
