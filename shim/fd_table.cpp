#include "shim/fd_table.h"

#include <cstdlib>
#include <new>

namespace ustack::shim {

FdTable& fd_table() {
    // Never destroyed: wrappers may run during and after static destruction.
    static FdTable* table = new FdTable();
    return *table;
}

FdEntry* FdTable::get(int fd, bool create) {
    if (fd < 0 || fd > max_fd) {
        return nullptr;
    }
    const int c = fd >> chunk_bits;
    FdEntry* chunk = chunks_[c].load(std::memory_order_acquire);
    if (chunk == nullptr) {
        if (!create) {
            return nullptr;
        }
        std::lock_guard<std::mutex> guard(mutex_);
        chunk = chunks_[c].load(std::memory_order_acquire);
        if (chunk == nullptr) {
            chunk = new (std::nothrow) FdEntry[chunk_size];
            if (chunk == nullptr) {
                return nullptr;
            }
            chunks_[c].store(chunk, std::memory_order_release);
        }
    }
    return &chunk[fd & (chunk_size - 1)];
}

void FdTable::set(int fd, FdKind kind, int domain, int type, int connected) {
    FdEntry* e = get(fd, kind != FdKind::Unknown);
    if (e == nullptr) {
        return;
    }
    std::lock_guard<std::mutex> guard(mutex_);
    e->domain = static_cast<uint8_t>(domain);
    e->type = static_cast<uint8_t>(type);
    e->connected = static_cast<int8_t>(connected);
    e->listening = -1;
    e->connect_completion_owed = 0;
    e->replay_count = 0;
    e->creation_flags_hold = 0;
    e->kernel_side_used = 0;
    e->pair_host_end = -1;
    e->pair_in_epoll = e->pair_reuse_addr = e->pair_reuse_port = e->pair_timeouts = 0;
    e->pair_app_inode = 0;
    for (FdEntry::EpollWatch& w : e->epoll_watches) {
        w = FdEntry::EpollWatch{};
    }
    e->epoll_untracked = 0;
    for (LocalOption& o : e->local_options) {
        o = LocalOption{};
    }
    e->kind.store(static_cast<uint8_t>(kind), std::memory_order_release);
}

void FdTable::clear(int fd) {
    FdEntry* e = get(fd, false);
    if (e != nullptr && e->get_kind() != FdKind::Unknown) {
        e->kind.store(static_cast<uint8_t>(FdKind::Unknown), std::memory_order_release);
    }
}

void FdTable::copy(int from, int to) {
    FdEntry* src = get(from, false);
    const FdKind kind = src == nullptr ? FdKind::Unknown : src->get_kind();
    if (kind == FdKind::Unknown) {
        clear(to);
        return;
    }
    // A copy of a candidate is the same kernel socket; if the original
    // moves to ustack the copy stays what it is: a kernel socket. Through
    // the copy the program can change the original's flags and options.
    const FdKind copied = kind == FdKind::Candidate ? FdKind::Kernel : kind;
    if (kind == FdKind::Candidate) {
        std::lock_guard<std::mutex> guard(mutex_);
        src->creation_flags_hold = 0;
    }
    FdEntry* dst = get(to, true);
    if (dst == nullptr) {
        return;
    }
    std::lock_guard<std::mutex> guard(mutex_);
    dst->domain = src->domain;
    dst->type = src->type;
    dst->connected = src->connected;
    dst->listening = src->listening;
    dst->connect_completion_owed = src->connect_completion_owed;
    dst->replay_count = 0;
    dst->creation_flags_hold = 0;
    dst->pair_host_end = -1;  // the shim makes a pair-backed socket a kernel one before any copy
    for (int i = 0; i < FdEntry::max_local_options; ++i) {
        dst->local_options[i] = src->local_options[i];
    }
    dst->kind.store(static_cast<uint8_t>(copied), std::memory_order_release);
}

namespace {
std::atomic<uint32_t> forks{0};
}  // namespace

uint32_t fork_generation() { return forks.load(std::memory_order_acquire); }

void count_fork() { forks.fetch_add(1, std::memory_order_acq_rel); }

}  // namespace ustack::shim
