#pragma once
// The bridge between one app UDP socket (a SOCK_SEQPACKET socketpair, each
// message a DatagramHeader + payload, see protocol.h) and one UdpLayer
// socket.
//
// Flow control toward the app: a datagram leaves the stack's queue only
// once the host end accepted it (peek, send, then pop), so SO_RCVBUF and
// its drops stay the stack's; when the host end is full the socket waits
// for EPOLLOUT.
#include <cstdint>
#include <string>
#include <vector>

#include "stack/host/host_socket.h"
#include "stack/udp/udp_layer.h"

namespace ustack::host {

class UdpHostSocket final : public HostSocket {
public:
    // Takes ownership of host_fd (non-blocking). `scratch`: the host's
    // buffer for one message (a header plus the largest datagram), shared
    // by its sockets (one thread at a time works the loop).
    UdpHostSocket(udp::UdpLayer& udp, udp::SocketId id, int host_fd, int domain, uint32_t uid, int32_t pid,
                  std::vector<uint8_t>& scratch);
    ~UdpHostSocket() override;

    UdpHostSocket(const UdpHostSocket&) = delete;
    UdpHostSocket& operator=(const UdpHostSocket&) = delete;

    int host_fd() const override { return fd_; }
    uint32_t epoll_events() const override;

    void on_app_readable(Instant now) override;
    void on_app_writable(Instant now) override;
    void on_stack_event(Instant now) override;
    void on_app_hangup(Instant now) override;
    bool finished() const override { return closed_; }
    void drain_app(Instant now) override;

    Result<void> bind(Instant now, Endpoint local) override;
    Result<void> connect(Instant now, std::optional<Endpoint> remote) override;
    Result<Endpoint> local_endpoint() const override;
    Result<Endpoint> remote_endpoint() const override;
    Result<void> set_option(Instant now, int level, int name, int64_t value) override;
    Result<int64_t> get_option(int level, int name) override;
    std::string describe() const override;
    int type() const override;

    // SO_RCVBUF as getsockopt reports it (already doubled, like Linux).
    void set_reported_rcvbuf(int64_t value);
    udp::SocketId id() const { return id_; }

    // Linux net.core.rmem_max and SOCK_MIN_RCVBUF (sock_setsockopt).
    static constexpr int64_t rmem_max = 212992;
    static constexpr int64_t min_rcvbuf = 2304;

private:
    // Sends one message to the app end; false when it is full (EAGAIN).
    bool deliver_error(int error);

    udp::UdpLayer& udp_;
    std::vector<uint8_t>& scratch_;
    udp::SocketId id_;
    int fd_;
    int domain_;
    uint32_t uid_;
    int32_t pid_;
    bool closed_ = false;
    bool app_full_ = false;        // host end full: wait for EPOLLOUT
    bool app_write_shut_ = false;  // the app shut down its writing side
    int pending_error_ = 0;        // taken from the stack, not yet delivered
    int64_t rcvbuf_ = rmem_max;
    uint64_t malformed_ = 0;
};

}  // namespace ustack::host
