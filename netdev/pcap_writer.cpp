#include "netdev/pcap_writer.h"

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

namespace ustack::netdev {
namespace {

void put_le16(uint8_t* out, uint16_t v) {
    out[0] = static_cast<uint8_t>(v);
    out[1] = static_cast<uint8_t>(v >> 8);
}

void put_le32(uint8_t* out, uint32_t v) {
    out[0] = static_cast<uint8_t>(v);
    out[1] = static_cast<uint8_t>(v >> 8);
    out[2] = static_cast<uint8_t>(v >> 16);
    out[3] = static_cast<uint8_t>(v >> 24);
}

// errno after a failed stdio call, never 0 (a short write to a full pipe may
// leave errno unset).
int stdio_errno() { return errno != 0 ? errno : EIO; }

}  // namespace

Result<std::unique_ptr<PcapWriter>> PcapWriter::open(std::unique_ptr<NetDev> inner,
                                                     const std::string& path) {
    errno = 0;
    std::FILE* stream = std::fopen(path.c_str(), "wb");
    if (stream == nullptr) {
        return fail(stdio_errno());
    }
    return from_stream(std::move(inner), stream, /*close_on_destroy=*/true);
}

Result<std::unique_ptr<PcapWriter>> PcapWriter::from_stream(std::unique_ptr<NetDev> inner,
                                                            std::FILE* stream,
                                                            bool close_on_destroy) {
    if (stream == nullptr) {
        return fail(EBADF);
    }
    // Constructed before the header is written so that a failure still closes
    // an owned stream, through the destructor.
    std::unique_ptr<PcapWriter> writer(new PcapWriter(std::move(inner), stream, close_on_destroy));
    if (const int err = writer->write_global_header(); err != 0) {
        return fail(err);
    }
    return writer;
}

PcapWriter::PcapWriter(std::unique_ptr<NetDev> inner, std::FILE* stream, bool close_on_destroy)
    : inner_(std::move(inner)), stream_(stream), close_on_destroy_(close_on_destroy) {}

PcapWriter::~PcapWriter() {
    if (close_on_destroy_) {
        std::fclose(stream_);
    } else {
        std::fflush(stream_);
    }
}

bool PcapWriter::send(Instant now, std::span<const uint8_t> frame) {
    const bool accepted = inner_->send(now, frame);
    if (accepted) {
        write_record(now, frame);
    }
    return accepted;
}

std::optional<Frame> PcapWriter::receive(Instant now) {
    auto frame = inner_->receive(now);
    if (frame) {
        write_record(now, *frame);
    }
    return frame;
}

std::optional<RxFrame> PcapWriter::receive_view(Instant now) {
    auto frame = inner_->receive_view(now);
    if (frame) {
        complete_rx_checksum(*frame);
        write_record(now, frame->bytes);
    }
    return frame;
}

int PcapWriter::write_global_header() {
    std::array<uint8_t, PcapFormat::global_header_len> header{};
    put_le32(&header[0], PcapFormat::magic_microseconds);
    put_le16(&header[4], PcapFormat::version_major);
    put_le16(&header[6], PcapFormat::version_minor);
    put_le32(&header[8], 0);   // thiszone: timestamps are UTC
    put_le32(&header[12], 0);  // sigfigs: always 0 in practice
    put_le32(&header[16], PcapFormat::snaplen);
    put_le32(&header[20], PcapFormat::linktype_ethernet);
    if (const int err = write_bytes(header); err != 0) {
        return err;
    }
    // Flushed so that a capture with no traffic yet is already a valid file.
    errno = 0;
    return std::fflush(stream_) == 0 ? 0 : stdio_errno();
}

void PcapWriter::write_record(Instant now, std::span<const uint8_t> frame) {
    if (write_error_) {
        return;
    }
    // pcap cannot express times before the epoch; simulated runs start at 0.
    const int64_t micros = std::max<int64_t>(now.micros(), 0);
    const auto captured = static_cast<uint32_t>(std::min<size_t>(frame.size(), PcapFormat::snaplen));
    std::array<uint8_t, PcapFormat::record_header_len> header{};
    put_le32(&header[0], static_cast<uint32_t>(micros / 1000000));
    put_le32(&header[4], static_cast<uint32_t>(micros % 1000000));
    put_le32(&header[8], captured);
    put_le32(&header[12], static_cast<uint32_t>(frame.size()));
    int err = write_bytes(header);
    if (err == 0) {
        err = write_bytes(frame.first(captured));
    }
    // Flushed per record so that a capture is complete up to the last frame
    // even if the test crashes or is inspected while still running.
    if (err == 0) {
        errno = 0;
        if (std::fflush(stream_) != 0) {
            err = stdio_errno();
        }
    }
    if (err != 0) {
        write_error_ = Errno{err};
        return;
    }
    ++records_written_;
}

int PcapWriter::write_bytes(std::span<const uint8_t> bytes) {
    if (bytes.empty()) {
        return 0;
    }
    errno = 0;
    if (std::fwrite(bytes.data(), 1, bytes.size(), stream_) != bytes.size()) {
        return stdio_errno();
    }
    return 0;
}

}  // namespace ustack::netdev
