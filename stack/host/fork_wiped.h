#pragma once
// What a process knows only of itself, kept in a page the kernel zeroes in
// a forked child (MADV_WIPEONFORK, Linux 4.14; glibc's arc4random and
// OpenSSL find forks the same way):
//   - whether this is still the process that owns something, without a
//     getpid() per call (six of them per crr connection, bench/ANALYSIS.md);
//   - counts of what this process's threads are doing, which a child,
//     left with the forking thread only, must start from zero, however it
//     was forked (_Fork and a raw fork run no pthread_atfork handler).
// Like any check that reads memory, it cannot tell a vfork child, which
// shares the parent's memory, from the parent (such a child may only exec
// or _exit; posix_spawn's calls no function of the shim).
#include <atomic>

namespace ustack::host {

struct ForkWiped {
    std::atomic<const void*> owner{nullptr};  // the owner's mark; null in any forked child
    std::atomic<int> unmasked_turns{0};       // host_caller.cpp: turns run without holding signals
};

// The process's page, or nullptr when the kernel cannot wipe on fork
// (callers then fall back to getpid(), or to what needs no count).
ForkWiped* fork_wiped();

}  // namespace ustack::host
