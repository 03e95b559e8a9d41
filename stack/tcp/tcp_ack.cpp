// ACK processing (Linux tcp_ack): send window updates, the retransmission
// queue, RTT samples (RFC 6298 + RFC 7323 §4), duplicate ACKs, the SACK
// scoreboard (RFC 2018, RFC 6675) and loss recovery: fast retransmit and
// NewReno (RFC 5681, RFC 6582) for peers without SACK, RFC 6675 with SACK.
// Both run on one "pipe" estimate, as Linux does (a peer without SACK has
// its duplicate ACKs counted as SACKed segments, tcp_add_reno_sack).
#include <algorithm>
#include <bit>
#include <cerrno>

#include "stack/tcp/tcp_engine.h"

namespace ustack::tcp {

namespace flags = wire::tcp_flags;
using wire::SeqNumber;

namespace {

// RFC 5681 §3.2 / RFC 6675 DupThresh.
constexpr unsigned dup_thresh = 3;

}  // namespace

void TcpEngine::account(Conn& c, const SentSegment& s, bool add) {
    const uint32_t len = s.len();
    auto apply = [&](uint32_t& counter) {
        if (add) {
            counter += len;
        } else {
            counter = counter > len ? counter - len : 0;
        }
    };
    if (s.sacked) {
        if (c.sack_ok) {
            apply(c.sacked_out);
            if (add) {
                ++c.sacked_segments;
            } else if (c.sacked_segments > 0) {
                --c.sacked_segments;
            }
        }
    } else {
        if (s.lost) {
            apply(c.lost_out);
        }
        if (s.retrans_in_flight) {
            apply(c.retrans_out);
        }
    }
}

void TcpEngine::set_lost(Conn& c, SentSegment& s) {
    if (s.sacked || s.lost) {
        return;
    }
    account(c, s, false);
    s.lost = true;
    s.retrans_in_flight = false;
    account(c, s, true);
}

void TcpEngine::clear_scoreboard(Conn& c) {  // lost and retransmitted marks; SACKs stay
    for (SentSegment& s : c.sent) {
        s.lost = false;
        s.retrans_in_flight = false;
    }
    c.lost_out = 0;
    c.retrans_out = 0;
}

void TcpEngine::reno_update_sacked(Conn& c) {
    if (c.sack_ok) {
        return;
    }
    // tcp_add_reno_sack / tcp_limit_reno_sacked: each duplicate ACK stands
    // for one segment that left the network, at most all but the head.
    const uint32_t head = c.sent.empty() ? 0 : c.sent.front().len();
    const uint32_t cap = c.outstanding() > head ? c.outstanding() - head : 0;
    c.sacked_out = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{c.dupacks} * c.mss_cache, cap));
}

void TcpEngine::rearm_rto(Conn& c, Instant now) {
    // RFC 6298 §5.2/5.3: "When all outstanding data has been acknowledged,
    // turn off the retransmission timer." ... "When an ACK is received that
    // acknowledges new data, restart the retransmission timer".
    if (c.outstanding() == 0) {
        c.retransmit_at.reset();
        return;
    }
    c.retransmit_at.reset();
    arm_rto_if_idle(c, now);
}

void TcpEngine::update_send_window(Conn& c, const wire::TcpRepr& segment, uint32_t window) {
    // tcp_may_update_window(): RFC 9293's "If SND.WL1 < SEG.SEQ or (SND.WL1
    // = SEG.SEQ and SND.WL2 =< SEG.ACK)", as Linux words it.
    const bool may_update = segment.ack > c.snd_una || segment.seq > c.snd_wl1 ||
                            (segment.seq == c.snd_wl1 && (window > c.snd_wnd || window == 0));
    if (!may_update) {
        return;
    }
    c.snd_wnd = window;
    c.snd_wl1 = segment.seq;
    c.snd_wl2 = segment.ack;
    c.max_snd_wnd = std::max(c.max_snd_wnd, window);
}

void TcpEngine::process_sack(Conn& c, const wire::TcpRepr& segment) {
    const wire::TcpOptions& o = segment.options;
    for (uint8_t i = 0; i < o.sack_count && i < o.sack_blocks.size(); ++i) {
        ++counters_.sack_blocks_received;
        SeqNumber left = o.sack_blocks[i].left;
        const SeqNumber right = o.sack_blocks[i].right;
        // tcp_is_sackblock_valid(): within what we sent; a D-SACK (below
        // snd_una) says nothing about holes and is ignored.
        if (!(left < right) || right > c.snd_nxt || right <= c.snd_una) {
            continue;
        }
        left = SeqNumber::max(left, c.snd_una);
        // First segment ending after `left` (segments are in order and
        // contiguous, so binary search on their ends).
        auto it = std::lower_bound(c.sent.begin(), c.sent.end(), left,
                                   [](const SentSegment& s, SeqNumber v) { return s.end <= v; });
        for (; it != c.sent.end() && it->start < right; ++it) {
            SentSegment& s = *it;
            if (s.sacked || s.start < left || s.end > right) {
                continue;  // only whole segments are marked
            }
            account(c, s, false);
            s.sacked = true;
            s.lost = false;
            s.retrans_in_flight = false;
            account(c, s, true);
            if (s.end > c.highest_sack) {
                c.highest_sack = s.end;
            }
        }
    }
}

void TcpEngine::mark_lost(Conn& c) {
    if (c.sent.empty()) {
        return;
    }
    if (!c.sack_ok) {
        // RFC 6582: the first unacknowledged segment is presumed lost.
        set_lost(c, c.sent.front());
        return;
    }
    // RFC 6675 IsLost(SeqNum): "DupThresh discontiguous SACKed sequences
    // ... above 'SeqNum'" or "more than (DupThresh - 1) * SMSS bytes with
    // sequence numbers greater than 'SeqNum' have been SACKed".
    uint32_t sacked_above = 0;
    unsigned sacked_segments_above = 0;
    for (auto it = c.sent.rbegin(); it != c.sent.rend(); ++it) {
        SentSegment& s = *it;
        if (s.sacked) {
            sacked_above += s.len();
            ++sacked_segments_above;
            continue;
        }
        if (sacked_segments_above >= dup_thresh || sacked_above > (dup_thresh - 1) * c.mss_cache) {
            set_lost(c, s);
        }
    }
}

void TcpEngine::enter_recovery(Conn& c, Instant now) {
    // RFC 6675 §5 (4.1)-(4.3) / RFC 6582 §3.2 step 2: "RecoveryPoint =
    // HighData", ssthresh = cwnd = FlightSize / 2 (the congestion control's
    // rule), and "retransmit the first data segment presumed dropped".
    ++counters_.recoveries;
    c.ca_state = CaState::Recovery;
    c.recover = c.snd_nxt;
    c.cc->on_enter_recovery(c.outstanding(), now);
    set_lost(c, c.sent.front());
    mark_lost(c);
    c.force_retransmit = true;
}

// tcp_new_space() → tcp_should_expand_sndbuf() → tcp_sndbuf_expand(): once
// an ACK freed room, a socket whose SO_SNDBUF was never set gets a send
// buffer of two congestion windows of full segments, each counted at the
// power-of-two skb head Linux would allocate for it (the worst case, no
// GSO), up to tcp_wmem[2]. Never shrinks. Payload space is half of it,
// as for the default (TcpConfig::default_sndbuf).
void TcpEngine::expand_sndbuf(Conn& c) {
    if (c.sndbuf_locked || c.send_buffer.capacity() == 0 || c.pipe() >= c.cwnd()) {
        return;  // SOCK_SNDBUF_LOCK; not connected; "we filled the congestion window"
    }
    // x86-64: MAX_TCP_HEADER 320, SKB_DATA_ALIGN(sizeof(skb_shared_info))
    // 320, SKB_DATA_ALIGN(sizeof(sk_buff)) 256.
    constexpr size_t max_tcp_header = 320;
    constexpr size_t shared_info = 320;
    constexpr size_t sk_buff_size = 256;
    constexpr size_t initial_cwnd_segments = 10;  // TCP_INIT_CWND
    const size_t mss = std::max<size_t>(c.mss_cache, 1);
    const size_t per_mss = std::bit_ceil(mss + max_tcp_header + shared_info) + sk_buff_size;
    const size_t segments = std::max(initial_cwnd_segments, static_cast<size_t>(c.cwnd()) / mss);
    const size_t wanted = std::min(2 * segments * per_mss, config_.autotune_max_sndbuf);
    if (wanted > c.sndbuf) {
        c.sndbuf = wanted;
        c.send_buffer.set_capacity(c.sndbuf / 2);
    }
}

uint32_t TcpEngine::clean_sent(Conn& c, Instant now, SeqNumber ack, std::optional<Duration>& rtt_sample) {
    // tcp_clean_rtx_queue().
    uint32_t acked_data = 0;
    std::optional<Instant> first_ackt;
    bool retransmitted_acked = false;
    unsigned acked_segments = 0;
    while (!c.sent.empty()) {
        SentSegment& s = c.sent.front();
        if (s.end <= ack) {
            account(c, s, false);
            if (s.ever_retransmitted) {
                retransmitted_acked = true;
            } else if (!s.sacked && !first_ackt) {
                first_ackt = s.last_sent;
            }
            acked_data += s.len() - (s.fin ? 1 : 0);
            ++acked_segments;
            c.sent.pop_front();
            continue;
        }
        if (s.start < ack) {
            // Partly acknowledged: keep the rest.
            account(c, s, false);
            acked_data += static_cast<uint32_t>(ack - s.start);
            s.start = ack;
            account(c, s, true);
        }
        break;
    }
    // Acknowledged bytes leave the send buffer.
    const int32_t in_buffer = ack - c.send_buffer_seq;
    if (in_buffer > 0) {
        const size_t n = std::min<size_t>(static_cast<size_t>(in_buffer), c.send_buffer.size());
        c.send_buffer.consume(n);
        c.send_buffer_seq += static_cast<uint32_t>(n);
    }
    // Karn's algorithm (RFC 6298 §3): no sample from retransmitted data.
    if (first_ackt && !retransmitted_acked) {
        rtt_sample = now - *first_ackt;
    }
    // A peer without SACK: the ACK covering a hole also accounts for the
    // duplicate ACKs of the segments behind it (tcp_remove_reno_sacks).
    if (!c.sack_ok && acked_segments > 0) {
        const unsigned eaten = acked_segments - 1;
        c.dupacks = c.dupacks > eaten ? c.dupacks - eaten : 0;
    }
    return acked_data;
}

TcpEngine::AckResult TcpEngine::process_ack(Conn& c, Instant now, const wire::TcpRepr& segment, size_t payload_len) {
    const SeqNumber ack = segment.ack;
    const SeqNumber prior_una = c.snd_una;

    // "If the ACK acks something not yet sent (SEG.ACK > SND.NXT), then send
    // an ACK, drop the segment, and return." Linux drops it silently in
    // ESTABLISHED (tcp_ack: "discard this segment (RFC793 Section 3.9)")
    // and challenges elsewhere.
    if (ack > c.snd_nxt) {
        ++counters_.old_acks_dropped;
        if (c.state != TcpState::Established) {
            send_challenge_ack(c, now);
        }
        return AckResult::Drop;
    }
    // "If the ACK is a duplicate (SEG.ACK < SND.UNA), it can be ignored."
    if (ack < prior_una) {
        // RFC 5961 §5.2: an ACK older than the largest window we were ever
        // offered is a blind injection attempt: challenge ACK and drop.
        if (ack < prior_una - std::max<uint32_t>(c.max_snd_wnd, 1)) {
            ++counters_.old_acks_dropped;
            send_challenge_ack(c, now);
            return AckResult::Drop;
        }
        if (c.sack_ok) {
            process_sack(c, segment);
        }
        return AckResult::Old;
    }

    const uint32_t window = uint32_t{segment.window} << c.snd_wscale;
    const uint32_t prior_wnd = c.snd_wnd;
    update_send_window(c, segment, window);
    const bool window_changed = c.snd_wnd != prior_wnd;

    if (c.sack_ok) {
        process_sack(c, segment);
    }
    // tcp_ack_probe(): the window reopened, zero-window probing ends and
    // its backoff with it.
    if (c.persist_at && (c.snd_una + c.snd_wnd) > c.snd_nxt && c.outstanding() == 0) {
        c.persist_at.reset();
        c.rtt.reset_backoff();
    }
    // "We passed data and got it acked, remove any soft error log.
    // Something worked..." (tcp_ack)
    c.soft_error = 0;
    c.probes_out = 0;

    const uint32_t in_flight_before = c.pipe();
    if (ack > prior_una) {
        c.snd_una = ack;
        std::optional<Duration> rtt;
        const uint32_t acked = clean_sent(c, now, ack, rtt);
        // RFC 7323 §4.1: with timestamps, the echo measures the RTT of
        // retransmitted data too (Linux uses it when Karn rules out the
        // sequence-based sample).
        if (!rtt && c.ts_ok && segment.options.timestamp && segment.options.timestamp->echo != 0) {
            const auto ms = static_cast<int32_t>(ts_clock(now) + c.ts_offset - segment.options.timestamp->echo);
            if (ms >= 0) {
                rtt = Duration::from_millis(std::max(ms, 1));
            }
        }
        if (rtt) {
            c.rtt.sample(*rtt);
        }
        c.retransmits = 0;
        c.retrans_stamp.reset();

        switch (c.ca_state) {
        case CaState::Recovery:
            if (ack >= c.recover) {
                // RFC 6582 §3.2 step 3 / RFC 6675: full acknowledgment ends
                // recovery; cwnd deflates to ssthresh.
                c.ca_state = CaState::Open;
                c.cc->on_exit_recovery(now);
                c.dupacks = 0;
                clear_scoreboard(c);
            } else {
                // RFC 6582 §3.2 step 4, partial acknowledgment: "retransmit
                // the first unacknowledged segment" and reset the timer.
                if (!c.sack_ok && !c.sent.empty()) {
                    set_lost(c, c.sent.front());
                    c.force_retransmit = true;
                }
                mark_lost(c);
            }
            break;
        case CaState::Loss:
            if (ack >= c.recover) {
                c.ca_state = CaState::Open;
                c.dupacks = 0;
            }
            c.cc->on_ack(acked, in_flight_before, rtt.value_or(Duration::zero()), now);
            break;
        case CaState::Open:
            c.dupacks = 0;
            c.cc->on_ack(acked, in_flight_before, rtt.value_or(Duration::zero()), now);
            break;
        }
        reno_update_sacked(c);
        rearm_rto(c, now);
        if (c.outstanding() > 0) {
            c.persist_at.reset();
        }
        if (acked > 0) {
            expand_sndbuf(c);
        }
    } else if (c.outstanding() > 0 && payload_len == 0 && !segment.has(flags::SYN) && !segment.has(flags::FIN) &&
               !window_changed) {
        // RFC 5681 §2 DUPLICATE ACKNOWLEDGMENT: outstanding data, no data,
        // no SYN/FIN, SEG.ACK = SND.UNA, same window.
        ++counters_.dup_acks_received;
        ++c.dupacks;
        reno_update_sacked(c);
        if (c.ca_state == CaState::Recovery) {
            mark_lost(c);
        }
    }

    // Loss detection (RFC 5681 §3.2 step 2, RFC 6675 §5): three duplicate
    // ACKs, or the head is "lost" by the SACK rule.
    if (c.ca_state == CaState::Open && c.outstanding() > 0 && !c.sent.empty()) {
        bool lost = c.dupacks >= dup_thresh;
        if (!lost && c.sack_ok && c.sacked_out > 0) {
            lost = c.sacked_segments >= dup_thresh || c.sacked_out > (dup_thresh - 1) * c.mss_cache;
        }
        if (lost) {
            enter_recovery(c, now);
        }
    }
    return AckResult::Ok;
}

}  // namespace ustack::tcp
