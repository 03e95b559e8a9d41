#pragma once
// A child process for interop tests: the kernel-side tools (ping, socat,
// ip, tshark) run through this, never through a shell, with stdout and
// stderr captured and, optionally, stdin fed from the test. The child gets
// SIGKILL if the test thread that started it dies, and the destructor
// kills and reaps it, so an interrupted or failing test leaves nothing
// running.
#include <sys/types.h>

#include <optional>
#include <span>
#include <string>
#include <vector>

#include "stack/core/time.h"

namespace ustack::testing {

struct CommandResult {
    int exit_code = -1;  // exit status, or 128 + signal number; -1 if it could not start
    std::string out;
    std::string err;
    bool timed_out = false;

    bool ok() const { return exit_code == 0; }
    // "argv[0] exited 1: <stderr>" for assertion messages.
    std::string describe() const;
};

class Subprocess {
public:
    struct Options {
        bool pipe_stdin = false;  // else stdin is /dev/null
    };

    // Forks and execs argv[0] (searched in PATH). On failure to start, the
    // returned process has exited with code 127 and the reason in err().
    static Subprocess spawn(const std::vector<std::string>& argv, Options options);
    static Subprocess spawn(const std::vector<std::string>& argv) { return spawn(argv, Options{}); }
    ~Subprocess();

    Subprocess(Subprocess&& other) noexcept;
    Subprocess& operator=(Subprocess&&) = delete;
    Subprocess(const Subprocess&) = delete;
    Subprocess& operator=(const Subprocess&) = delete;

    // Writes all of data to the child's stdin (blocking, pipe_stdin only).
    // False when the child has closed it.
    bool write_stdin(std::span<const uint8_t> data);
    bool write_stdin(const std::string& text);
    void close_stdin();

    // Reads whatever output is available without blocking.
    void pump();
    // Captured so far (pump() first for the latest).
    const std::string& out() const { return out_; }
    const std::string& err() const { return err_; }

    // The exit code once the child has exited (reaped without blocking).
    std::optional<int> poll_exit();
    // Waits up to timeout, then SIGKILLs; collects all output.
    CommandResult wait(Duration timeout);
    void kill();
    pid_t pid() const { return pid_; }
    const std::string& command() const { return command_; }

private:
    Subprocess() = default;
    void close_fds();

    pid_t pid_ = -1;
    int stdin_fd_ = -1;
    int stdout_fd_ = -1;
    int stderr_fd_ = -1;
    std::optional<int> exit_code_;
    std::string out_;
    std::string err_;
    std::string command_;
};

// Runs argv to completion (killing it after timeout).
CommandResult run_command(const std::vector<std::string>& argv, Duration timeout = Duration::from_secs(20));

// Whether an executable of that name is on PATH.
bool have_program(const std::string& name);

}  // namespace ustack::testing
