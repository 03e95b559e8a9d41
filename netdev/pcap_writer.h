#pragma once
// A NetDev wrapper that records every frame sent and received to a classic
// pcap file (microsecond timestamps, LINKTYPE_ETHERNET), readable by tcpdump,
// Wireshark and tshark. With device offloads the capture shows what the
// stack handed to and got from the device: the MSS-sized segments it sent
// (recorded before the device joins them into one GSO frame) and the
// received super-frames as they came (up to 64 KiB, checksums completed for the capture).
// Timestamps are the `now` passed to send/receive, so
// a simulated run yields a reproducible capture.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "netdev/netdev.h"
#include "stack/core/expected.h"
#include "stack/core/time.h"

namespace ustack::netdev {

// The on-disk format, written little-endian explicitly so the bytes do not
// depend on the host (readers detect the order from the magic number).
struct PcapFormat {
    static constexpr uint32_t magic_microseconds = 0xa1b2c3d4;
    static constexpr uint16_t version_major = 2;
    static constexpr uint16_t version_minor = 4;
    // tcpdump's default: room for a whole received offload super-frame
    // (64 KiB of IP plus headers), so nothing is cut.
    static constexpr uint32_t snaplen = 262144;
    static constexpr uint32_t linktype_ethernet = 1;
    static constexpr size_t global_header_len = 24;
    static constexpr size_t record_header_len = 16;
};

class PcapWriter final : public NetDev {
public:
    // Creates (truncates) `path` and writes the pcap global header. Fails
    // with the errno of fopen/fwrite (ENOENT, EACCES, ...).
    static Result<std::unique_ptr<PcapWriter>> open(std::unique_ptr<NetDev> inner,
                                                    const std::string& path);
    // Writes to an already-open stream, e.g. a pipe to `tshark -r -`; the
    // writer fcloses it on destruction only when close_on_destroy is set.
    static Result<std::unique_ptr<PcapWriter>> from_stream(std::unique_ptr<NetDev> inner,
                                                           std::FILE* stream,
                                                           bool close_on_destroy);
    ~PcapWriter() override;

    PcapWriter(const PcapWriter&) = delete;
    PcapWriter& operator=(const PcapWriter&) = delete;

    // Records the frame only when the inner device accepted it: like Linux's
    // packet taps (dev_queue_xmit_nit), the capture shows what went on the wire.
    bool send(Instant now, std::span<const uint8_t> frame) override;
    std::optional<Frame> receive(Instant now) override;
    // A frame the inner device lends with a partial checksum (offloads) is
    // completed in place before it is recorded, so the capture shows the
    // checksum a NIC would have written: the only case where the stack's
    // receive path sums such a frame.
    std::optional<RxFrame> receive_view(Instant now) override;
    std::optional<Instant> next_arrival() const override { return inner_->next_arrival(); }
    int poll_fd() const override { return inner_->poll_fd(); }
    void take_poll_error() override { inner_->take_poll_error(); }
    size_t mtu() const override { return inner_->mtu(); }
    wire::MacAddress mac() const override { return inner_->mac(); }
    const DeviceStats& stats() const override { return inner_->stats(); }
    void flush(Instant now) override { inner_->flush(now); }
    bool has_pending_tx() const override { return inner_->has_pending_tx(); }

    // Records written so far.
    uint64_t records_written() const { return records_written_; }
    // The first write error (errno). Capture stops there; traffic does not.
    std::optional<Errno> write_error() const { return write_error_; }
    NetDev& inner() { return *inner_; }

private:
    PcapWriter(std::unique_ptr<NetDev> inner, std::FILE* stream, bool close_on_destroy);

    // Returns the errno of a failed write, 0 on success.
    int write_global_header();
    void write_record(Instant now, std::span<const uint8_t> frame);
    int write_bytes(std::span<const uint8_t> bytes);

    std::unique_ptr<NetDev> inner_;
    std::FILE* stream_;
    bool close_on_destroy_;
    uint64_t records_written_ = 0;
    std::optional<Errno> write_error_;
};

}  // namespace ustack::netdev
