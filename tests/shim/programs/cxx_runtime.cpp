// A C++ program with its own C++ runtime (libstdc++.so: iostream, locale,
// exceptions, std::thread) whose sockets move to ustack. libustack.so
// carries a private, statically linked copy of libstdc++ (Makefile:
// SHIM_LINK_FLAGS): the two copies must not see each other. The program's
// exceptions unwind through its own frames while the shim has run C++ code
// (the swap, the host RPCs) in the same process and on another thread.
//
//   shim_prog_cxx_runtime STACK_ADDR PORT
//
// Prints "PASS cxx_runtime" and exits 0, or what went wrong and exits 1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <locale>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>

namespace {

struct ProgramError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// socket + SO_REUSEADDR + bind + listen: the bind moves the socket to
// ustack. Errors come back as the program's own exception type.
int listen_on(const std::string& addr, uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "socket");
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, addr.c_str(), &a.sin_addr);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        throw std::system_error(errno, std::generic_category(), "bind " + addr);
    }
    if (::listen(fd, 16) != 0) {
        throw std::system_error(errno, std::generic_category(), "listen");
    }
    return fd;
}

// A second bind of the same port without SO_REUSEADDR on either side must
// fail with EADDRINUSE, reported by the program's own exception.
std::string conflicting_bind(const std::string& addr, uint16_t port) {
    try {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_port = htons(port);
        ::inet_pton(AF_INET, addr.c_str(), &a.sin_addr);
        if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
            const int err = errno;
            ::close(fd);
            throw ProgramError(std::string("bind: ") + std::strerror(err));
        }
        ::close(fd);
        return "bound";
    } catch (const ProgramError& e) {
        return e.what();
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: shim_prog_cxx_runtime STACK_ADDR PORT\n";
        return 2;
    }
    const std::string addr = argv[1];
    const auto port = static_cast<uint16_t>(std::stoi(argv[2]));
    try {
        const int listener = listen_on(addr, port);

        // The socket is ustack's: its name is the stack's address.
        sockaddr_in name{};
        socklen_t len = sizeof name;
        if (::getsockname(listener, reinterpret_cast<sockaddr*>(&name), &len) != 0 || ntohs(name.sin_port) != port) {
            throw ProgramError("getsockname after bind");
        }

        // The program's exceptions, iostreams and locale, after the shim's
        // C++ code ran, on the main thread and on a thread of its own.
        const std::string conflict = conflicting_bind(addr, port);
        if (conflict != std::string("bind: ") + std::strerror(EADDRINUSE)) {
            throw ProgramError("second bind: want EADDRINUSE, got \"" + conflict + "\"");
        }
        std::string from_thread;
        std::thread worker([&] {
            try {
                throw std::out_of_range("thread");
            } catch (const std::exception& e) {
                std::ostringstream out;
                out.imbue(std::locale::classic());
                out << e.what() << ' ' << 42;
                from_thread = out.str();
            }
        });
        worker.join();
        if (from_thread != "thread 42") {
            throw ProgramError("exception on a thread: \"" + from_thread + "\"");
        }
        ::close(listener);
        std::cout << "PASS cxx_runtime" << std::endl;
        return 0;
    } catch (const std::exception& e) {
        std::cout << "FAIL " << e.what() << std::endl;
        return 1;
    }
}
