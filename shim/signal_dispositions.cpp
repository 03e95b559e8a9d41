// The program's signal handlers, as far as the inproc host needs to know
// them: whether any asynchronous signal has one. With none, an app thread
// works the host's loop without holding signals back (two sigprocmask per
// call fewer; Host::signal_handlers_scanned says why that is safe).
//
// Every way libc installs a handler comes through here (sigaction and
// __sigaction; signal, bsd_signal, ssignal, sysv_signal, __sysv_signal and
// sigset, which call libc's internal sigaction, not ours). Each wrapper
// tells the host before the real call installs anything. Not seen: a
// handler installed with a raw rt_sigaction syscall after the inproc host
// started (one installed before is found by the scan), and the
// compatibility-only sigvec of old binaries.
#include <dlfcn.h>
#include <signal.h>

#include <atomic>
#include <cerrno>

#include "shim/signal_dispositions.h"
#include "stack/host/host.h"

namespace ustack::shim {

namespace {
using Handler = void (*)(int);
using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
using SignalFn = Handler (*)(int, Handler);

// Resolved at first use (a wrapper may run before the shim's
// constructors); two threads racing store the same value.
template <typename F>
F resolved(std::atomic<F>& slot, const char* name) {
    F f = slot.load(std::memory_order_acquire);
    if (f == nullptr) {
        f = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
        slot.store(f, std::memory_order_release);
    }
    return f;
}

std::atomic<SigactionFn> real_sigaction{nullptr};

bool synchronous(int sig) {
    return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE || sig == SIGTRAP || sig == SIGSYS ||
           sig == SIGABRT;
}

bool is_handler(Handler h) { return h != SIG_DFL && h != SIG_IGN && h != SIG_ERR && h != SIG_HOLD; }

// Before a disposition changes: a handler for an asynchronous signal may
// run on a thread that works the loop from now on.
void before_disposition(int sig, Handler h) {
    if (is_handler(h) && !synchronous(sig)) {
        host::Host::signal_handler_installing();
    }
}

int call_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
    SigactionFn real = resolved(real_sigaction, "sigaction");
    if (real == nullptr) {
        errno = ENOSYS;
        return -1;
    }
    if (act != nullptr) {
        before_disposition(sig, act->sa_handler);  // sa_sigaction shares its storage
    }
    return real(sig, act, old);
}

Handler call_signal(std::atomic<SignalFn>& slot, const char* name, int sig, Handler h) {
    SignalFn real = resolved(slot, name);
    if (real == nullptr) {
        errno = ENOSYS;
        return SIG_ERR;
    }
    before_disposition(sig, h);
    return real(sig, h);
}
}  // namespace

// Resolved before main (sigaction is async-signal-safe; dlsym, at a first
// call from a handler or a forked child, is not).
__attribute__((constructor)) void resolve_sigaction() { (void)resolved(real_sigaction, "sigaction"); }

bool program_has_signal_handlers() {
    SigactionFn real = resolved(real_sigaction, "sigaction");
    if (real == nullptr) {
        return true;  // cannot tell: hold signals as always
    }
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction current {};
        // libc's own signals (thread cancellation, setxid) fail with
        // EINVAL here; no mask can hold them anyway.
        if (!synchronous(sig) && real(sig, nullptr, &current) == 0 && is_handler(current.sa_handler)) {
            return true;
        }
    }
    return false;
}

}  // namespace ustack::shim

// ------------------------------------------------------------ exported wrappers
// Under their libc names through asm labels, as in shim.cpp.

namespace {
using ustack::shim::Handler;
using ustack::shim::SignalFn;
}  // namespace

extern "C" __attribute__((visibility("default"))) int ustack_wrap_sigaction(int, const struct sigaction*,
                                                                            struct sigaction*) __asm__("sigaction");
extern "C" int ustack_wrap_sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
    return ustack::shim::call_sigaction(sig, act, old);
}
extern "C" __attribute__((visibility("default"))) int ustack_wrap___sigaction(int, const struct sigaction*,
                                                                              struct sigaction*) __asm__("__sigaction");
extern "C" int ustack_wrap___sigaction(int sig, const struct sigaction* act, struct sigaction* old) {
    return ustack::shim::call_sigaction(sig, act, old);
}

#define USTACK_SIGNAL_WRAPPER(name)                                                                  \
    namespace {                                                                                      \
    std::atomic<SignalFn> real_##name{nullptr};                                                      \
    __attribute__((constructor)) void resolve_##name() { (void)ustack::shim::resolved(real_##name, #name); } \
    }                                                                                                \
    extern "C" __attribute__((visibility("default"))) Handler ustack_wrap_##name(int, Handler)       \
        __asm__(#name);                                                                              \
    extern "C" Handler ustack_wrap_##name(int sig, Handler h) {                                      \
        return ustack::shim::call_signal(real_##name, #name, sig, h);                                \
    }

USTACK_SIGNAL_WRAPPER(signal)
USTACK_SIGNAL_WRAPPER(bsd_signal)
USTACK_SIGNAL_WRAPPER(ssignal)
USTACK_SIGNAL_WRAPPER(sysv_signal)
USTACK_SIGNAL_WRAPPER(__sysv_signal)
USTACK_SIGNAL_WRAPPER(sigset)
