#pragma once
// The program's signal handlers, as far as the inproc host needs them
// (signal_dispositions.cpp wraps libc's ways to install one).

namespace ustack::shim {

// Whether some asynchronous signal has a handler now (one sigaction query
// per signal: once, when the inproc host starts).
bool program_has_signal_handlers();

}  // namespace ustack::shim
