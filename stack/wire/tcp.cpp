#include "stack/wire/tcp.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <optional>

#include "stack/wire/checksum.h"
#include "stack/wire/ipv4.h"

namespace ustack::wire {

namespace {

constexpr uint8_t protocol_tcp = static_cast<uint8_t>(IpProtocol::Tcp);

// Option kinds and lengths (RFC 9293 §3.2, RFC 7323 §2.2/§3.2, RFC 2018 §2/§3).
constexpr uint8_t opt_eol = 0;
constexpr uint8_t opt_nop = 1;
constexpr uint8_t opt_mss = 2;
constexpr uint8_t opt_window_scale = 3;
constexpr uint8_t opt_sack_permitted = 4;
constexpr uint8_t opt_sack = 5;
constexpr uint8_t opt_timestamp = 8;
constexpr size_t len_mss = 4;
constexpr size_t len_window_scale = 3;
constexpr size_t len_sack_permitted = 2;
constexpr size_t len_sack_base = 2;
constexpr size_t len_sack_per_block = 8;
constexpr size_t len_timestamp = 10;
constexpr size_t max_sack_blocks = 4;

// Emitted sizes, each a multiple of 4 thanks to the NOPs Linux puts in
// front (tcp_options_write()).
constexpr size_t aligned_mss = 4;                 // MSS
constexpr size_t aligned_timestamp = 12;          // NOP NOP TS, or SACK_PERM TS
constexpr size_t aligned_sack_permitted = 4;      // NOP NOP SACK_PERM (no TS)
constexpr size_t aligned_window_scale = 4;        // NOP WS
constexpr size_t aligned_sack_base = 4;           // NOP NOP SACK, then 8 per block
constexpr size_t max_option_space = TcpRepr::max_header_len - TcpRepr::min_header_len;

// Options other than SACK blocks, in bytes as emitted.
size_t fixed_options_len(const TcpOptions& o) {
    size_t len = 0;
    if (o.mss) {
        len += aligned_mss;
    }
    if (o.timestamp) {
        len += aligned_timestamp;  // SACK_PERM, if any, rides in front of TS
    } else if (o.sack_permitted) {
        len += aligned_sack_permitted;
    }
    if (o.window_scale) {
        len += aligned_window_scale;
    }
    return len;
}

// SACK blocks that fit after the other options: as Linux
// tcp_established_options(), send the first ones (the most recent, RFC 2018
// §4) and drop the rest rather than overflow the 40 bytes.
size_t sack_blocks_to_emit(const TcpOptions& o) {
    const size_t fixed = fixed_options_len(o);
    if (o.sack_count == 0 || fixed + aligned_sack_base + len_sack_per_block > max_option_space) {
        return 0;
    }
    const size_t room = (max_option_space - fixed - aligned_sack_base) / len_sack_per_block;
    return std::min({size_t{o.sack_count}, max_sack_blocks, room});
}

// Writes the options in Linux's order (tcp_options_write()): MSS,
// SACK_PERM+TS (or NOP NOP TS), NOP NOP SACK_PERM when there is no TS,
// NOP WS, NOP NOP SACK blocks. A Linux SYN is thus
// "mss, sackOK, TS val ecr, nop, wscale" and an ACK "nop, nop, TS, nop, nop,
// sack". Returns the bytes written (always a multiple of 4).
size_t write_options(MutByteSpan out, const TcpOptions& o) {
    size_t i = 0;
    auto put = [&](uint8_t byte) { out[i++] = byte; };
    if (o.mss) {
        put(opt_mss);
        put(len_mss);
        write_u16(out, i, *o.mss);
        i += 2;
    }
    if (o.timestamp) {
        if (o.sack_permitted) {
            put(opt_sack_permitted);
            put(len_sack_permitted);
        } else {
            put(opt_nop);
            put(opt_nop);
        }
        put(opt_timestamp);
        put(len_timestamp);
        write_u32(out, i, o.timestamp->value);
        write_u32(out, i + 4, o.timestamp->echo);
        i += 8;
    } else if (o.sack_permitted) {
        put(opt_nop);
        put(opt_nop);
        put(opt_sack_permitted);
        put(len_sack_permitted);
    }
    if (o.window_scale) {
        put(opt_nop);
        put(opt_window_scale);
        put(len_window_scale);
        put(*o.window_scale);
    }
    const size_t blocks = sack_blocks_to_emit(o);
    if (blocks != 0) {
        put(opt_nop);
        put(opt_nop);
        put(opt_sack);
        put(static_cast<uint8_t>(len_sack_base + blocks * len_sack_per_block));
        for (size_t b = 0; b < blocks; ++b) {
            write_u32(out, i, o.sack_blocks[b].left.raw());
            write_u32(out, i + 4, o.sack_blocks[b].right.raw());
            i += len_sack_per_block;
        }
    }
    return i;
}

// Parses the option bytes between the fixed header and the data offset.
//
// Linux tcp_parse_options() never drops a segment for its options: it stops
// at a "silly" length (< 2) or at an option running past the header, and it
// ignores a known option whose length is wrong (MSS != 4, WS != 3,
// SACK_PERM != 2, TS != 10, SACK not 2 + 8n with n >= 1). ustack does the
// same, so a peer Linux talks to is never refused here: what was parsed
// before the point where the list cannot be walked is kept.
//
// SYN-only options (MSS, WS, SACK_PERM) are reported whatever the flags:
// whether to honour them is the state machine's decision (Linux honours them
// on a SYN only).
std::optional<ParseError> parse_options(ByteSpan opts, TcpOptions& o) {
    size_t i = 0;
    while (i < opts.size()) {
        const uint8_t kind = opts[i];
        if (kind == opt_eol) {
            break;  // the rest is padding (RFC 9293 §3.2)
        }
        if (kind == opt_nop) {
            ++i;
            continue;
        }
        if (opts.size() - i < 2) {
            break;  // no room for the length byte
        }
        const size_t len = opts[i + 1];
        if (len < 2 || len > opts.size() - i) {
            break;  // "silly options" / "don't parse partial options"
        }
        const ByteSpan body = opts.subspan(i + 2, len - 2);
        switch (kind) {
            case opt_mss:
                if (len == len_mss) {
                    o.mss = read_u16(body, 0);
                }
                break;
            case opt_window_scale:
                if (len == len_window_scale) {
                    o.window_scale = body[0];  // raw; clamping to 14 is the receiver's job
                }
                break;
            case opt_sack_permitted:
                if (len == len_sack_permitted) {
                    o.sack_permitted = true;
                }
                break;
            case opt_sack:
                if (len >= len_sack_base + len_sack_per_block &&
                    (len - len_sack_base) % len_sack_per_block == 0) {
                    // 40 bytes of options hold at most 4 blocks.
                    const size_t n =
                        std::min(max_sack_blocks, (len - len_sack_base) / len_sack_per_block);
                    // Unused slots stay zero, so that reprs compare equal
                    // whatever a repeated SACK option left behind.
                    o.sack_blocks = {};
                    for (size_t b = 0; b < n; ++b) {
                        o.sack_blocks[b].left = SeqNumber(read_u32(body, b * len_sack_per_block));
                        o.sack_blocks[b].right =
                            SeqNumber(read_u32(body, b * len_sack_per_block + 4));
                    }
                    o.sack_count = static_cast<uint8_t>(n);
                }
                break;
            case opt_timestamp:
                if (len == len_timestamp) {
                    o.timestamp = TcpTimestamp{read_u32(body, 0), read_u32(body, 4)};
                }
                break;
            default:
                break;  // unknown kind: skipped by its length (RFC 9293 §3.2)
        }
        i += len;
    }
    return std::nullopt;
}

}  // namespace

size_t TcpOptions::encoded_len() const {
    const size_t blocks = sack_blocks_to_emit(*this);
    return fixed_options_len(*this) +
           (blocks == 0 ? 0 : aligned_sack_base + blocks * len_sack_per_block);
}

void TcpRepr::emit(MutByteSpan buf, Ipv4Address src, Ipv4Address dst, ByteSpan payload) const {
    const size_t hlen = header_len();
    const size_t total = hlen + payload.size();
    assert(total <= 0xffff);
    assert(buf.size() >= total);
    write_u16(buf, SRC_PORT.start, src_port);
    write_u16(buf, DST_PORT.start, dst_port);
    write_u32(buf, SEQ_NUM.start, seq.raw());
    write_u32(buf, ACK_NUM.start, ack.raw());
    buf[DATA_OFF.start] = static_cast<uint8_t>((hlen / 4) << 4);
    buf[FLAGS.start] = flags;
    write_u16(buf, WIN_SIZE.start, window);
    write_u16(buf, CHECKSUM.start, 0);
    write_u16(buf, URGENT.start, urgent_ptr);
    [[maybe_unused]] const size_t written =
        write_options(buf.subspan(min_header_len, hlen - min_header_len), options);
    assert(written == hlen - min_header_len);  // header_len() and the writer agree
    if (!payload.empty()) {
        // memmove: the caller may have built the payload in place already.
        std::memmove(buf.data() + hlen, payload.data(), payload.size());
    }
    // RFC 9293 §3.1 "Checksum": header, options and data, plus the
    // pseudo-header with the TCP length.
    const uint32_t pseudo =
        checksum::pseudo_header(src, dst, protocol_tcp, static_cast<uint16_t>(total));
    write_u16(buf, CHECKSUM.start, checksum::finish(checksum::accumulate(buf.first(total), pseudo)));
}

Expected<TcpSegment, ParseError> parse_tcp(ByteSpan segment, Ipv4Address src, Ipv4Address dst, L4Checksum check) {
    if (segment.size() < TcpRepr::min_header_len) {
        return make_unexpected(ParseError::Truncated);
    }
    if (segment.size() > 0xffff) {
        return make_unexpected(ParseError::BadLength);  // cannot come from IPv4
    }
    const size_t hlen = static_cast<size_t>(segment[TcpRepr::DATA_OFF.start] >> 4) * 4;
    if (hlen < TcpRepr::min_header_len) {
        return make_unexpected(ParseError::BadLength);
    }
    if (hlen > segment.size()) {
        return make_unexpected(ParseError::Truncated);
    }
    if (check == L4Checksum::verify) {
        const uint32_t pseudo = checksum::pseudo_header(src, dst, protocol_tcp,
                                                        static_cast<uint16_t>(segment.size()));
        if (!checksum::verify(segment, pseudo)) {
            return make_unexpected(ParseError::BadChecksum);
        }
    }
    TcpSegment out;
    TcpRepr& r = out.repr;
    if (const auto why = parse_options(segment.subspan(TcpRepr::min_header_len,
                                                       hlen - TcpRepr::min_header_len),
                                       r.options)) {
        return make_unexpected(*why);
    }
    r.src_port = read_u16(segment, TcpRepr::SRC_PORT.start);
    r.dst_port = read_u16(segment, TcpRepr::DST_PORT.start);
    r.seq = SeqNumber(read_u32(segment, TcpRepr::SEQ_NUM.start));
    r.ack = SeqNumber(read_u32(segment, TcpRepr::ACK_NUM.start));
    // The low nibble of DATA_OFF (reserved bits, RFC 3540's NS/AE) is
    // ignored.
    r.flags = segment[TcpRepr::FLAGS.start];
    r.window = read_u16(segment, TcpRepr::WIN_SIZE.start);
    r.urgent_ptr = read_u16(segment, TcpRepr::URGENT.start);
    out.payload = segment.subspan(hlen);
    return out;
}

}  // namespace ustack::wire
