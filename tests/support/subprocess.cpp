#include "tests/support/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <utility>

namespace ustack::testing {
namespace {

int status_to_code(int status) {
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return -1;
}

// Appends what fd has now; closes it and sets it to -1 on EOF.
void drain(int& fd, std::string& into) {
    if (fd < 0) {
        return;
    }
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n > 0) {
            into.append(buf, static_cast<size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
            ::close(fd);
            fd = -1;
        }
        return;
    }
}

void write_all_to_fd(int fd, const char* data, size_t len) {
    while (len > 0) {
        const ssize_t n = ::write(fd, data, len);
        if (n <= 0) {
            return;
        }
        data += n;
        len -= static_cast<size_t>(n);
    }
}

// Children alive now, so that SIGINT/SIGTERM/SIGHUP of the test binary
// kills them too. PR_SET_PDEATHSIG covers a SIGKILLed parent, but execve of
// a binary with file capabilities clears it (ping has cap_net_raw), so the
// signal handler is the second line of defence for those.
constexpr size_t max_children = 64;
std::atomic<pid_t> live_children[max_children];

void remember_child(pid_t pid) {
    for (auto& slot : live_children) {
        pid_t expected = 0;
        if (slot.compare_exchange_strong(expected, pid)) {
            return;
        }
    }
}

void forget_child(pid_t pid) {
    for (auto& slot : live_children) {
        pid_t expected = pid;
        if (slot.compare_exchange_strong(expected, 0)) {
            return;
        }
    }
}

void kill_children_and_die(int sig) {
    for (auto& slot : live_children) {
        const pid_t pid = slot.load();
        if (pid > 0) {
            ::kill(pid, SIGKILL);
        }
    }
    ::signal(sig, SIG_DFL);
    ::raise(sig);
}

void install_handlers_once() {
    static const bool installed = [] {
        for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
            struct sigaction current {};
            ::sigaction(sig, nullptr, &current);
            if (current.sa_handler == SIG_DFL) {  // leave a handler someone else set alone
                struct sigaction action {};
                action.sa_handler = kill_children_and_die;
                sigemptyset(&action.sa_mask);
                ::sigaction(sig, &action, nullptr);
            }
        }
        return true;
    }();
    (void)installed;
}

}  // namespace

std::string CommandResult::describe() const {
    std::string text = timed_out ? "timed out" : "exit code " + std::to_string(exit_code);
    if (!err.empty()) {
        text += "; stderr: " + err;
    }
    if (!out.empty()) {
        text += "; stdout: " + out.substr(0, 2000);
    }
    return text;
}

Subprocess Subprocess::spawn(const std::vector<std::string>& argv, Options options) {
    Subprocess p;
    for (const std::string& a : argv) {
        p.command_ += (p.command_.empty() ? "" : " ") + a;
    }
    int in_pipe[2] = {-1, -1};
    int out_pipe[2] = {-1, -1};
    int err_pipe[2] = {-1, -1};
    if ((options.pipe_stdin && ::pipe2(in_pipe, O_CLOEXEC) < 0) || ::pipe2(out_pipe, O_CLOEXEC) < 0 ||
        ::pipe2(err_pipe, O_CLOEXEC) < 0 || argv.empty()) {
        p.exit_code_ = 127;
        p.err_ = "cannot start " + p.command_ + ": " + std::strerror(errno);
        return p;
    }
    // Everything the child needs is prepared before fork: after it only
    // async-signal-safe calls.
    std::vector<char*> args;
    for (const std::string& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    install_handlers_once();
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) {
            ::_exit(127);  // the parent died before prctl took effect
        }
        int devnull = ::open("/dev/null", O_RDONLY);
        ::dup2(options.pipe_stdin ? in_pipe[0] : devnull, STDIN_FILENO);
        ::dup2(out_pipe[1], STDOUT_FILENO);
        ::dup2(err_pipe[1], STDERR_FILENO);
        ::execvp(args[0], args.data());
        const char* msg = "exec failed: ";
        write_all_to_fd(STDERR_FILENO, msg, std::strlen(msg));
        const char* why = std::strerror(errno);
        write_all_to_fd(STDERR_FILENO, why, std::strlen(why));
        ::_exit(127);
    }
    if (options.pipe_stdin) {
        ::close(in_pipe[0]);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (pid < 0) {
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        if (options.pipe_stdin) {
            ::close(in_pipe[1]);
        }
        p.exit_code_ = 127;
        p.err_ = "fork: " + std::string(std::strerror(errno));
        return p;
    }
    remember_child(pid);
    p.pid_ = pid;
    p.stdin_fd_ = options.pipe_stdin ? in_pipe[1] : -1;
    p.stdout_fd_ = out_pipe[0];
    p.stderr_fd_ = err_pipe[0];
    ::fcntl(p.stdout_fd_, F_SETFL, O_NONBLOCK);
    ::fcntl(p.stderr_fd_, F_SETFL, O_NONBLOCK);
    return p;
}

Subprocess::Subprocess(Subprocess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)),
      stdin_fd_(std::exchange(other.stdin_fd_, -1)),
      stdout_fd_(std::exchange(other.stdout_fd_, -1)),
      stderr_fd_(std::exchange(other.stderr_fd_, -1)),
      exit_code_(other.exit_code_),
      out_(std::move(other.out_)),
      err_(std::move(other.err_)),
      command_(std::move(other.command_)) {}

Subprocess::~Subprocess() {
    kill();
    close_fds();
}

void Subprocess::close_fds() {
    for (int* fd : {&stdin_fd_, &stdout_fd_, &stderr_fd_}) {
        if (*fd >= 0) {
            ::close(*fd);
            *fd = -1;
        }
    }
}

bool Subprocess::write_stdin(std::span<const uint8_t> data) {
    if (stdin_fd_ < 0) {
        return false;
    }
    // A child that exits with our write pending would raise SIGPIPE.
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t old;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    size_t done = 0;
    bool ok = true;
    while (done < data.size()) {
        const ssize_t n = ::write(stdin_fd_, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            ok = false;
            break;
        }
        done += static_cast<size_t>(n);
    }
    if (!ok) {
        // Consume a pending SIGPIPE so it does not fire when unblocked.
        timespec zero{};
        sigtimedwait(&pipe_set, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return ok;
}

bool Subprocess::write_stdin(const std::string& text) {
    return write_stdin(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

void Subprocess::close_stdin() {
    if (stdin_fd_ >= 0) {
        ::close(stdin_fd_);
        stdin_fd_ = -1;
    }
}

void Subprocess::pump() {
    drain(stdout_fd_, out_);
    drain(stderr_fd_, err_);
}

std::optional<int> Subprocess::poll_exit() {
    pump();
    if (exit_code_ || pid_ < 0) {
        return exit_code_;
    }
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        forget_child(pid_);
        exit_code_ = status_to_code(status);
        pid_ = -1;
    }
    return exit_code_;
}

void Subprocess::kill() {
    if (pid_ > 0 && !exit_code_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        forget_child(pid_);
        exit_code_ = status_to_code(status);
        pid_ = -1;
    }
}

CommandResult Subprocess::wait(Duration timeout) {
    CommandResult result;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::microseconds(timeout.micros());
    while (!poll_exit()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            result.timed_out = true;
            kill();
            break;
        }
        pollfd fds[2] = {{stdout_fd_, POLLIN, 0}, {stderr_fd_, POLLIN, 0}};
        ::poll(fds, 2, 5);
    }
    // Output written just before exit is still in the pipes.
    for (int i = 0; i < 100 && (stdout_fd_ >= 0 || stderr_fd_ >= 0); ++i) {
        pump();
        if (stdout_fd_ >= 0 || stderr_fd_ >= 0) {
            // Only a grandchild holding the pipe keeps it open; do not wait long.
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
    }
    result.exit_code = exit_code_.value_or(-1);
    result.out = out_;
    result.err = err_;
    return result;
}

CommandResult run_command(const std::vector<std::string>& argv, Duration timeout) {
    return Subprocess::spawn(argv).wait(timeout);
}

bool have_program(const std::string& name) {
    const char* path = std::getenv("PATH");
    std::string dirs = path != nullptr ? path : "/usr/sbin:/usr/bin:/sbin:/bin";
    size_t start = 0;
    while (start <= dirs.size()) {
        const size_t end = std::min(dirs.find(':', start), dirs.size());
        const std::string candidate = dirs.substr(start, end - start) + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return true;
        }
        start = end + 1;
    }
    return false;
}

}  // namespace ustack::testing
