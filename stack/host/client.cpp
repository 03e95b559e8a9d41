#include "stack/host/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <memory>
#include <new>

extern char** environ;

namespace ustack::host {

int connect_control(std::string_view device) {
    const int fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    sockaddr_un address;
    const socklen_t len = make_abstract_address(control_socket_name(device), address);
    int rc;
    do {
        rc = ::connect(fd, reinterpret_cast<sockaddr*>(&address), len);
    } while (rc < 0 && errno == EINTR);
    if (rc < 0) {
        const int err = errno;
        ::close(fd);
        return -err;
    }
    // A wedged host must not hang the program forever.
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    return fd;
}

int control_call(int control_fd, const Request& request, int pass_fd, Reply& reply, std::string* text,
                 int* received_fd) {
    if (received_fd != nullptr) {
        *received_fd = -1;
    }
    if (send_with_fd(control_fd, &request, sizeof request, pass_fd) < 0) {
        return errno == EAGAIN ? ETIMEDOUT : errno;
    }
    // Header and text arrive as one message. Allocated on a thread's first
    // call: a thread_local array would be static TLS of the preloaded
    // library, which glibc zeroes (60 KB) in every thread any program
    // under the shim creates.
    constexpr size_t buffer_size = sizeof(Reply) + max_reply_text;
    static thread_local std::unique_ptr<char[]> buffer;
    if (!buffer) {
        buffer.reset(new (std::nothrow) char[buffer_size]);
        if (!buffer) {
            return ENOMEM;
        }
    }
    int fd = -1;
    const ssize_t n = recv_with_fd(control_fd, buffer.get(), buffer_size, &fd);
    if (n < 0) {
        return errno == EAGAIN ? ETIMEDOUT : errno;
    }
    if (static_cast<size_t>(n) < sizeof(Reply)) {
        if (fd >= 0) {
            ::close(fd);
        }
        return n == 0 ? ECONNRESET : EPROTO;
    }
    std::memcpy(&reply, buffer.get(), sizeof reply);
    if (text != nullptr) {
        const size_t len = std::min<size_t>(reply.text_len, static_cast<size_t>(n) - sizeof(Reply));
        text->assign(buffer.get() + sizeof(Reply), len);
    }
    if (received_fd != nullptr) {
        *received_fd = fd;
    } else if (fd >= 0) {
        ::close(fd);
    }
    return 0;
}

std::optional<std::string> start_daemon(const std::string& daemon_path,
                                        const std::vector<std::pair<std::string, std::string>>& env,
                                        std::vector<std::string> extra_args) {
    if (::access(daemon_path.c_str(), X_OK) != 0) {
        return "cannot run the daemon " + daemon_path + ": " + std::strerror(errno) +
               " (set USTACK_DAEMON to ustackd's path)";
    }
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) < 0) {
        return std::string("pipe: ") + std::strerror(errno);
    }
    // Everything the children need is built before fork: after it, only
    // async-signal-safe calls.
    std::vector<std::string> env_strings;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string_view entry(*e);
        const std::string_view key = entry.substr(0, entry.find('='));
        bool overridden = key == "LD_PRELOAD";
        for (const auto& [k, v] : env) {
            overridden = overridden || key == k;
        }
        if (!overridden) {
            env_strings.emplace_back(entry);
        }
    }
    for (const auto& [k, v] : env) {
        env_strings.push_back(k + "=" + v);
    }
    std::vector<char*> envp;
    for (auto& s : env_strings) {
        envp.push_back(s.data());
    }
    envp.push_back(nullptr);
    std::vector<std::string> arg_strings = {daemon_path, "--ready-fd=3"};
    for (auto& a : extra_args) {
        arg_strings.push_back(std::move(a));
    }
    std::vector<char*> argv;
    for (auto& s : arg_strings) {
        argv.push_back(s.data());
    }
    argv.push_back(nullptr);
    const char* log_file = std::getenv("USTACK_LOG_FILE");

    const pid_t child = ::fork();
    if (child < 0) {
        const int err = errno;
        ::close(ready[0]);
        ::close(ready[1]);
        return std::string("fork: ") + std::strerror(err);
    }
    if (child == 0) {
        ::setsid();
        const pid_t grandchild = ::fork();
        if (grandchild != 0) {
            ::_exit(grandchild < 0 ? 1 : 0);
        }
        const int null_fd = ::open("/dev/null", O_RDWR);
        int log_fd = log_file != nullptr ? ::open(log_file, O_WRONLY | O_CREAT | O_APPEND, 0644) : -1;
        if (log_fd < 0) {
            log_fd = null_fd;
        }
        // Keep the ready pipe's write end clear of 0..2 before the dup2s.
        int w = ready[1];
        if (w <= 3) {
            w = ::fcntl(w, F_DUPFD, 10);
        }
        ::dup2(null_fd, 0);
        ::dup2(null_fd, 1);
        ::dup2(log_fd, 2);
        ::dup2(w, 3);  // clears FD_CLOEXEC on 3
        // Nothing else of the program's may leak into the daemon: an
        // inherited socketpair end would keep a socket from ever closing.
        if (::syscall(SYS_close_range, 4u, ~0u, 0u) != 0) {
            for (int fd = 4; fd < 65536; ++fd) {
                ::close(fd);
            }
        }
        ::execve(argv[0], argv.data(), envp.data());
        const char message[] = "error cannot exec ustackd\n";
        (void)!::write(3, message, sizeof message - 1);
        ::_exit(127);
    }
    ::close(ready[1]);
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    // "ok" / "running" / "error MESSAGE", then EOF.
    std::string answer;
    timespec start{};
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pollfd p{ready[0], POLLIN, 0};
        timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now);
        const long elapsed_ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed_ms > 15000) {
            ::close(ready[0]);
            return "the daemon did not report within 15 s";
        }
        const int r = ::poll(&p, 1, static_cast<int>(15000 - elapsed_ms));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            continue;
        }
        char buf[512];
        const ssize_t n = ::read(ready[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        answer.append(buf, static_cast<size_t>(n));
    }
    ::close(ready[0]);
    while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) {
        answer.pop_back();
    }
    if (answer == "ok" || answer == "running") {
        return std::nullopt;
    }
    if (answer.rfind("error ", 0) == 0) {
        return answer.substr(6);
    }
    return answer.empty() ? std::string("the daemon exited without a word") : answer;
}

int connect_or_start(std::string_view device, const std::string& daemon_path,
                     const std::vector<std::pair<std::string, std::string>>& env, std::string* message) {
    int fd = connect_control(device);
    if (fd >= 0 || (fd != -ECONNREFUSED && fd != -ENOENT)) {
        if (fd < 0 && message != nullptr) {
            *message = std::string("connecting to the host: ") + std::strerror(-fd);
        }
        return fd;
    }
    if (auto problem = start_daemon(daemon_path, env)) {
        if (message != nullptr) {
            *message = *problem;
        }
        return -ENETDOWN;
    }
    // The daemon (or the one that won a start race) serves by now; a few
    // retries cover a winner still opening its device.
    for (int attempt = 0; attempt < 50; ++attempt) {
        fd = connect_control(device);
        if (fd >= 0) {
            return fd;
        }
        ::usleep(20000);
    }
    if (message != nullptr) {
        *message = std::string("the daemon started but does not answer: ") + std::strerror(-fd);
    }
    return fd;
}

}  // namespace ustack::host
