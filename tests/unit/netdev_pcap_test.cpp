// The pcap writer: byte-exact file layout, and (when installed) tshark as the
// independent reader.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "netdev/pair.h"
#include "netdev/pcap_writer.h"

namespace ustack::netdev {
namespace {

constexpr wire::MacAddress mac_a{{0x02, 0, 0, 0, 0, 0x0a}};
constexpr wire::MacAddress mac_b{{0x02, 0, 0, 0, 0, 0x0b}};

using Bytes = std::vector<uint8_t>;

// dst, src, a local experimental EtherType, `payload_len` bytes of `fill`.
Frame make_frame(const wire::MacAddress& dst, const wire::MacAddress& src, size_t payload_len,
                 uint8_t fill) {
    Frame f(14 + payload_len, fill);
    for (size_t i = 0; i < 6; ++i) {
        f[i] = dst.bytes[i];
        f[6 + i] = src.bytes[i];
    }
    f[12] = 0x88;
    f[13] = 0xb5;
    return f;
}

// The 24-byte global header, spelled out as the bytes a little-endian writer
// must produce.
const Bytes expected_global_header = {
    0xd4, 0xc3, 0xb2, 0xa1,  // magic 0xa1b2c3d4: microsecond timestamps
    0x02, 0x00, 0x04, 0x00,  // version 2.4
    0x00, 0x00, 0x00, 0x00,  // thiszone
    0x00, 0x00, 0x00, 0x00,  // sigfigs
    0x00, 0x00, 0x04, 0x00,  // snaplen 262144 (a received 64 KiB super-frame fits)
    0x01, 0x00, 0x00, 0x00,  // LINKTYPE_ETHERNET
};

void append_le32(Bytes& out, uint32_t v) {
    for (int i = 0; i < 4; ++i) {
        out.push_back(static_cast<uint8_t>(v >> (8 * i)));
    }
}

Bytes read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

class NetdevPcap : public ::testing::Test {
protected:
    void SetUp() override {
        std::string pattern = ::testing::TempDir() + "netdev_pcap_XXXXXX";
        ASSERT_NE(mkdtemp(pattern.data()), nullptr) << "mkdtemp: " << errno;
        dir_ = pattern;
    }
    void TearDown() override {
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }
    std::string path(const std::string& name) const { return dir_ + "/" + name; }

    std::string dir_;
};

TEST_F(NetdevPcap, EmptyCaptureIsTheGlobalHeader) {
    auto pair = make_device_pair(mac_a, mac_b);
    {
        auto writer = PcapWriter::open(std::move(pair.a), path("empty.pcap"));
        ASSERT_TRUE(writer.has_value()) << "errno " << writer.error().value;
        // Flushed at once, so even a live capture is a valid file.
        EXPECT_EQ(read_file(path("empty.pcap")), expected_global_header);
    }
    EXPECT_EQ(read_file(path("empty.pcap")), expected_global_header);
}

TEST_F(NetdevPcap, SentAndReceivedFramesAreRecordedByteExact) {
    auto pair = make_device_pair(mac_a, mac_b);
    const Frame out_frame = make_frame(mac_b, mac_a, 46, 0x11);
    const Frame in_frame = make_frame(mac_a, mac_b, 100, 0x22);
    {
        auto writer = PcapWriter::open(std::move(pair.a), path("both.pcap"));
        ASSERT_TRUE(writer.has_value()) << "errno " << writer.error().value;
        PcapWriter& a = **writer;
        ASSERT_TRUE(a.send(Instant::from_micros(1'500'000), out_frame));
        ASSERT_TRUE(pair.b->send(Instant::from_secs(2), in_frame));
        EXPECT_EQ(a.receive(Instant::from_micros(2'000'001)), in_frame);
        // An empty poll records nothing.
        EXPECT_FALSE(a.receive(Instant::from_secs(3)).has_value());
        EXPECT_EQ(a.records_written(), 2u);
        EXPECT_FALSE(a.write_error().has_value());
        // The wrapper is transparent to the stack.
        EXPECT_EQ(a.mac(), mac_a);
        EXPECT_EQ(a.mtu(), 1500u);
        EXPECT_EQ(a.stats().tx_frames, 1u);
        EXPECT_EQ(a.stats().rx_frames, 1u);
    }
    EXPECT_EQ(pair.b->receive(Instant::zero()), out_frame);

    Bytes expected = expected_global_header;
    // Record 1: ts 1 s + 500000 us, incl_len = orig_len = 60.
    const Bytes record_1 = {0x01, 0x00, 0x00, 0x00, 0x20, 0xa1, 0x07, 0x00,
                            0x3c, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00};
    expected.insert(expected.end(), record_1.begin(), record_1.end());
    expected.insert(expected.end(), out_frame.begin(), out_frame.end());
    // Record 2: ts 2 s + 1 us, incl_len = orig_len = 114.
    const Bytes record_2 = {0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,
                            0x72, 0x00, 0x00, 0x00, 0x72, 0x00, 0x00, 0x00};
    expected.insert(expected.end(), record_2.begin(), record_2.end());
    expected.insert(expected.end(), in_frame.begin(), in_frame.end());
    EXPECT_EQ(read_file(path("both.pcap")), expected);
}

TEST_F(NetdevPcap, EachRecordIsFlushedAtOnce) {
    auto pair = make_device_pair(mac_a, mac_b);
    auto writer = PcapWriter::open(std::move(pair.a), path("live.pcap"));
    ASSERT_TRUE(writer.has_value());
    for (int i = 1; i <= 3; ++i) {
        ASSERT_TRUE((*writer)->send(Instant::from_millis(i), make_frame(mac_b, mac_a, 46, 0)));
        EXPECT_EQ(read_file(path("live.pcap")).size(), 24u + static_cast<size_t>(i) * (16 + 60));
    }
}

TEST_F(NetdevPcap, RejectedSendsAreNotRecorded) {
    auto pair = make_device_pair(mac_a, mac_b, 1500);
    auto writer = PcapWriter::open(std::move(pair.a), path("rejected.pcap"));
    ASSERT_TRUE(writer.has_value());
    EXPECT_FALSE((*writer)->send(Instant::zero(), make_frame(mac_b, mac_a, 1501, 0)));
    EXPECT_EQ((*writer)->stats().tx_dropped, 1u);
    EXPECT_EQ((*writer)->records_written(), 0u);
    EXPECT_EQ(read_file(path("rejected.pcap")), expected_global_header);
}

TEST_F(NetdevPcap, FramesLongerThanSnaplenAreTruncated) {
    auto pair = make_device_pair(mac_a, mac_b, 300000);
    auto writer = PcapWriter::open(std::move(pair.a), path("jumbo.pcap"));
    ASSERT_TRUE(writer.has_value());
    const Frame jumbo = make_frame(mac_b, mac_a, 300000, 0x5a);
    ASSERT_TRUE((*writer)->send(Instant::from_secs(1), jumbo));
    const Bytes file = read_file(path("jumbo.pcap"));
    ASSERT_EQ(file.size(), 24u + 16u + 262144u);
    Bytes record;
    append_le32(record, 1);
    append_le32(record, 0);
    append_le32(record, 262144);
    append_le32(record, 300014);
    EXPECT_EQ(Bytes(file.begin() + 24, file.begin() + 40), record);
    EXPECT_TRUE(std::equal(file.begin() + 40, file.end(), jumbo.begin()));
}

TEST_F(NetdevPcap, AReceivedOffloadSuperFrameIsRecordedWhole) {
    // 64 KiB of IP plus the Ethernet header: what TAP/AF_PACKET offloads
    // hand over; the snaplen keeps all of it.
    auto pair = make_device_pair(mac_a, mac_b, 65535);
    auto writer = PcapWriter::open(std::move(pair.a), path("super.pcap"));
    ASSERT_TRUE(writer.has_value());
    const Frame super = make_frame(mac_b, mac_a, 65535, 0x5a);
    ASSERT_TRUE((*writer)->send(Instant::from_secs(1), super));
    const Bytes file = read_file(path("super.pcap"));
    ASSERT_EQ(file.size(), 24u + 16u + 65549u);
    EXPECT_TRUE(std::equal(file.begin() + 40, file.end(), super.begin()));
}

TEST_F(NetdevPcap, OpenFailureReportsErrno) {
    auto pair = make_device_pair(mac_a, mac_b);
    auto missing_dir = PcapWriter::open(std::move(pair.a), path("no/such/dir.pcap"));
    ASSERT_FALSE(missing_dir.has_value());
    EXPECT_EQ(missing_dir.error(), Errno{ENOENT});

    auto is_dir = PcapWriter::open(std::move(pair.b), dir_);
    ASSERT_FALSE(is_dir.has_value());
    EXPECT_EQ(is_dir.error(), Errno{EISDIR});
}

TEST_F(NetdevPcap, HeaderWriteFailureReportsErrno) {
    if (access("/dev/full", W_OK) != 0) {
        GTEST_SKIP() << "/dev/full not available";
    }
    auto pair = make_device_pair(mac_a, mac_b);
    auto full = PcapWriter::open(std::move(pair.a), "/dev/full");
    ASSERT_FALSE(full.has_value());
    EXPECT_EQ(full.error(), Errno{ENOSPC});
}

TEST_F(NetdevPcap, WritesToAnAlreadyOpenStream) {
    auto pair = make_device_pair(mac_a, mac_b);
    EXPECT_EQ(PcapWriter::from_stream(std::move(pair.b), nullptr, false).error(), Errno{EBADF});

    std::FILE* stream = std::tmpfile();
    ASSERT_NE(stream, nullptr);
    {
        auto writer = PcapWriter::from_stream(std::move(pair.a), stream, /*close_on_destroy=*/false);
        ASSERT_TRUE(writer.has_value());
    }
    // Still open: the caller owns it.
    std::rewind(stream);
    Bytes contents(64);
    contents.resize(std::fread(contents.data(), 1, contents.size(), stream));
    EXPECT_EQ(contents, expected_global_header);
    std::fclose(stream);
}

TEST_F(NetdevPcap, TsharkReadsTheCapture) {
    constexpr int packet_count = 7;
    const std::string file = path("tshark.pcap");
    {
        auto pair = make_device_pair(mac_a, mac_b);
        auto writer = PcapWriter::open(std::move(pair.a), file);
        ASSERT_TRUE(writer.has_value());
        for (int i = 0; i < packet_count; ++i) {
            ASSERT_TRUE((*writer)->send(Instant::from_millis(10 * i),
                                        make_frame(mac_b, mac_a, 46 + static_cast<size_t>(i), 0)));
        }
    }
    // The byte-exact checks above do not depend on tshark; this one only
    // confirms an independent reader agrees.
    if (std::system("command -v tshark >/dev/null 2>&1") != 0) {
        GTEST_SKIP() << "tshark is not installed (being installed); byte-exact checks still ran";
    }
    // One line per packet: number, source MAC, frame length.
    const std::string command =
        "tshark -r '" + file + "' -T fields -e frame.number -e eth.src -e frame.len 2>/dev/null";
    std::FILE* pipe = popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::vector<std::string> lines;
    char buf[256];
    while (std::fgets(buf, sizeof buf, pipe) != nullptr) {
        std::string line(buf);
        if (!line.empty() && line.back() == '\n') {
            line.pop_back();
        }
        lines.push_back(line);
    }
    const int status = pclose(pipe);
    EXPECT_EQ(status, 0) << "tshark failed on " << file;
    ASSERT_EQ(lines.size(), static_cast<size_t>(packet_count));
    for (int i = 0; i < packet_count; ++i) {
        EXPECT_EQ(lines[static_cast<size_t>(i)],
                  std::to_string(i + 1) + "\t02:00:00:00:00:0a\t" + std::to_string(60 + i));
    }
}

}  // namespace
}  // namespace ustack::netdev
