// Real, unmodified programs on ustack: curl, python3 -m http.server, nc,
// socat, redis-server with redis-benchmark, nginx (master + 2 workers) with
// curl and wrk, iperf3. The program under test runs under ustack-run at
// 10.77.0.2 in a private namespace; its peer is a kernel-side program at
// 10.77.0.1. Each test also runs in mode "native" (both ends on the kernel,
// through a veth) to show that the test itself is right. Every wait has a
// deadline; a failure prints the programs' output.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "tests/shim/ustack_netns.h"

namespace ustack::testing {
namespace {

using shimenv::kernel_ip;
using shimenv::stack_ip;

const std::string python = ::access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";

std::string url(const std::string& ip, int port, const std::string& path) {
    return "http://" + ip + ":" + std::to_string(port) + path;
}

// Everything two programs printed, for failure messages.
std::string outputs(Subprocess& server, const CommandResult& client) {
    server.pump();
    return "\n--- client: " + client.describe() + "\n" + client.out + "\n--- server stdout:\n" + server.out() +
           "\n--- server stderr:\n" + server.err();
}

// Children of `pid` whose command name is `comm` (nginx workers).
std::vector<pid_t> children(pid_t pid, const std::string& comm) {
    std::vector<pid_t> found;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr) {
        return found;
    }
    while (dirent* entry = ::readdir(proc)) {
        const std::string name = entry->d_name;
        if (name.find_first_not_of("0123456789") != std::string::npos) {
            continue;
        }
        std::ifstream stat("/proc/" + name + "/stat");
        std::string line;
        std::getline(stat, line);
        // "pid (comm) state ppid ..."
        const size_t open = line.find('(');
        const size_t close = line.rfind(')');
        if (open == std::string::npos || close == std::string::npos) {
            continue;
        }
        const std::string child_comm = line.substr(open + 1, close - open - 1);
        int ppid = 0;
        char state = 0;
        std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid);
        if (ppid == pid && child_comm == comm) {
            found.push_back(static_cast<pid_t>(std::stol(name)));
        }
    }
    ::closedir(proc);
    return found;
}

int count_children(pid_t pid, const std::string& comm) { return static_cast<int>(children(pid, comm).size()); }

// SIGKILLs the given processes when the test ends, however it ends: a
// SIGKILLed nginx master leaves its workers running otherwise.
struct KillAtExit {
    std::vector<pid_t> pids;
    ~KillAtExit() {
        for (pid_t pid : pids) {
            ::kill(pid, SIGKILL);
        }
    }
};

std::string mode_name(const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param; }

class RealProgramTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
        GTEST_SKIP() << "the real programs preload libustack.so, uninstrumented: not in a sanitizer build";
#endif
        auto side = shimenv::ProgramSide::create(GetParam());
        if (!side) {
            GTEST_SKIP() << "no private namespace: " << side.error();
        }
        side_ = std::move(*side);
        char dir[] = "/tmp/ustack-real-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        dir_ = dir;
        std::filesystem::create_directories(dir_ + "/www");
        std::ofstream(dir_ + "/www/index.html") << page;
        // A larger file, so transfers take more than one segment.
        std::ofstream big(dir_ + "/www/big.bin", std::ios::binary);
        for (int i = 0; i < 200000; ++i) {
            big << static_cast<char>('a' + i % 26);
        }
    }

    void TearDown() override {
        side_.reset();
        if (!dir_.empty()) {
            std::filesystem::remove_all(dir_);
        }
    }

    // Programs come from DEB_PACKAGES (make deps); a missing one is a failure.
    void need(const std::string& program) {
        ASSERT_TRUE(have_program(program)) << program << " is not installed (make deps installs it)";
    }

    Subprocess on_stack(const std::vector<std::string>& command, Subprocess::Options options = {}) {
        return side_->kernel().spawn(side_->run_on_stack(command), options);
    }
    CommandResult run_on_stack(const std::vector<std::string>& command, int seconds = 30) {
        return side_->kernel().run(side_->run_on_stack(command), Duration::from_secs(seconds));
    }
    Subprocess on_kernel(const std::vector<std::string>& command, Subprocess::Options options = {}) {
        return side_->kernel().spawn(command, options);
    }
    CommandResult run_on_kernel(const std::vector<std::string>& command, int seconds = 30) {
        return side_->kernel().run(command, Duration::from_secs(seconds));
    }

    // Feeds `text` to a client's stdin, closes it, waits for the client.
    static CommandResult feed(Subprocess& client, const std::string& text, int seconds = 15) {
        client.write_stdin(text);
        client.close_stdin();
        return client.wait(Duration::from_secs(seconds));
    }

    static constexpr const char* page = "<html><body>hello from the docroot of a ustack test</body></html>\n";
    std::unique_ptr<shimenv::ProgramSide> side_;
    std::string dir_;
};

// ------------------------------------------------------------ HTTP: curl and python3 -m http.server

TEST_P(RealProgramTest, CurlOnStackFetchesFromKernelHttpServer) {
    need("curl");
    Subprocess server = on_kernel({python, "-m", "http.server", "8000", "--bind", kernel_ip, "--directory", dir_ + "/www"});
    ASSERT_TRUE(shimenv::wait_kernel_tcp_listen(8000)) << "kernel http.server never listened: " << server.err();
    CommandResult r = run_on_stack({"curl", "-sS", "--max-time", "10", url(kernel_ip, 8000, "/index.html")});
    EXPECT_TRUE(r.ok()) << outputs(server, r);
    EXPECT_EQ(r.out, page) << outputs(server, r);
    r = run_on_stack({"curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{size_download}",
                      url(kernel_ip, 8000, "/big.bin")});
    EXPECT_TRUE(r.ok()) << outputs(server, r);
    EXPECT_EQ(r.out, "200000") << outputs(server, r);
}

TEST_P(RealProgramTest, KernelCurlFetchesFromHttpServerOnStack) {
    need("curl");
    // No --bind: python binds "::" with IPV6_V6ONLY off (dual stack), and
    // the kernel's IPv4 curl reaches it as a v4-mapped peer.
    Subprocess server = on_stack({python, "-m", "http.server", "8001", "--directory", dir_ + "/www"});
    ASSERT_TRUE(side_->wait_listening(8001)) << "http.server never listened: " << server.err();
    CommandResult r = run_on_kernel({"curl", "-sS", "--max-time", "10", url(stack_ip, 8001, "/index.html")});
    EXPECT_TRUE(r.ok()) << outputs(server, r);
    EXPECT_EQ(r.out, page) << outputs(server, r);
    r = run_on_kernel({"curl", "-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{size_download}",
                       url(stack_ip, 8001, "/big.bin")});
    EXPECT_TRUE(r.ok()) << outputs(server, r);
    EXPECT_EQ(r.out, "200000") << outputs(server, r);
    // A missing page is a 404, not a broken connection.
    r = run_on_kernel({"curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                       url(stack_ip, 8001, "/missing")});
    EXPECT_EQ(r.out, "404") << outputs(server, r);
}

// ------------------------------------------------------------ nc and socat, TCP and UDP

TEST_P(RealProgramTest, NcTcpClientOnStack) {
    need("nc");
    Subprocess server = on_kernel({"nc", "-l", kernel_ip, "7100"});
    ASSERT_TRUE(shimenv::wait_kernel_tcp_listen(7100)) << server.err();
    Subprocess client = on_stack({"nc", "-N", "-w", "10", kernel_ip, "7100"}, {.pipe_stdin = true});
    const std::string text = "line one from the ustack nc\nline two\n";
    const CommandResult c = feed(client, text);
    const CommandResult s = server.wait(Duration::from_secs(10));
    EXPECT_TRUE(c.ok()) << c.describe();
    EXPECT_TRUE(s.ok()) << s.describe();
    EXPECT_EQ(s.out, text) << "kernel nc: " << s.describe() << "; ustack nc: " << c.describe();
}

TEST_P(RealProgramTest, NcTcpServerOnStack) {
    need("nc");
    Subprocess server = on_stack({"nc", "-l", "7101"});
    ASSERT_TRUE(side_->wait_listening(7101)) << server.err();
    Subprocess client = on_kernel({"nc", "-N", "-w", "10", stack_ip, "7101"}, {.pipe_stdin = true});
    const std::string text = "from the kernel to the ustack nc\n";
    const CommandResult c = feed(client, text);
    const CommandResult s = server.wait(Duration::from_secs(10));
    EXPECT_TRUE(c.ok()) << c.describe();
    EXPECT_TRUE(s.ok()) << s.describe();
    EXPECT_EQ(s.out, text) << "ustack nc: " << s.describe() << "; kernel nc: " << c.describe();
}

TEST_P(RealProgramTest, NcUdpClientOnStack) {
    need("nc");
    need("socat");
    Subprocess server = on_kernel({"socat", "UDP-RECVFROM:7102,fork", "EXEC:cat"});
    for (int i = 0; i < 300 && !kernel_udp_port_bound(7102); ++i) {
        ::usleep(10000);
    }
    ASSERT_TRUE(kernel_udp_port_bound(7102)) << server.err();
    // -q: quit 2 s after stdin's EOF, by then the echo is back.
    Subprocess client = on_stack({"nc", "-u", "-q", "2", kernel_ip, "7102"}, {.pipe_stdin = true});
    const std::string text = "a datagram from the ustack nc\n";
    client.write_stdin(text);
    for (int i = 0; i < 500 && client.out().size() < text.size(); ++i) {
        client.pump();
        ::usleep(10000);
    }
    client.close_stdin();
    const CommandResult c = client.wait(Duration::from_secs(10));
    EXPECT_EQ(c.out, text) << c.describe() << outputs(server, c);
}

TEST_P(RealProgramTest, SocatTcpEchoServerOnStackForksPerConnection) {
    need("socat");
    // fork: each connection is served by a child (fork + exec of cat) on
    // the socket the parent accepted.
    Subprocess server = on_stack({"socat", "TCP-LISTEN:7200,reuseaddr,fork", "EXEC:cat"});
    ASSERT_TRUE(side_->wait_listening(7200)) << server.err();
    for (int i = 0; i < 3; ++i) {
        Subprocess client =
            on_kernel({"socat", "-t", "5", "-", std::string("TCP:") + stack_ip + ":7200"}, {.pipe_stdin = true});
        const std::string text = "echo me, connection " + std::to_string(i) + "\n";
        const CommandResult c = feed(client, text);
        EXPECT_TRUE(c.ok()) << outputs(server, c);
        EXPECT_EQ(c.out, text) << outputs(server, c);
    }
}

TEST_P(RealProgramTest, SocatTcpClientOnStack) {
    need("socat");
    Subprocess server = on_kernel({"socat", std::string("TCP-LISTEN:7201,bind=") + kernel_ip + ",reuseaddr,fork",
                                   "EXEC:cat"});
    ASSERT_TRUE(shimenv::wait_kernel_tcp_listen(7201)) << server.err();
    Subprocess client = on_stack({"socat", "-t", "5", "-", std::string("TCP:") + kernel_ip + ":7201"},
                                 {.pipe_stdin = true});
    std::string text;
    for (int i = 0; i < 2000; ++i) {
        text += "a line of the echoed text, number " + std::to_string(i) + "\n";
    }
    const CommandResult c = feed(client, text, 30);
    EXPECT_TRUE(c.ok()) << outputs(server, c);
    EXPECT_EQ(c.out.size(), text.size()) << c.err;
    EXPECT_TRUE(c.out == text) << "the echo differs" << outputs(server, c).substr(0, 2000);
}

INSTANTIATE_TEST_SUITE_P(Modes, RealProgramTest, ::testing::Values("native", "daemon", "inproc"),
                         mode_name);

// ------------------------------------------------------------ heavier programs (daemon mode and native)

class HeavyProgramTest : public RealProgramTest {};

TEST_P(HeavyProgramTest, RedisServerOnStackServesRedisBenchmark) {
    need("redis-server");
    need("redis-benchmark");
    need("redis-cli");
    Subprocess server = on_stack({"redis-server", "--port", "6379", "--save", "", "--appendonly", "no",
                                  "--protected-mode", "no", "--dir", dir_});
    ASSERT_TRUE(side_->wait_listening(6379)) << server.err() << server.out();
    const CommandResult bench = run_on_kernel(
        {"redis-benchmark", "-h", stack_ip, "-p", "6379", "-n", "100000", "-c", "50", "-t", "set,get", "--csv"}, 300);
    EXPECT_TRUE(bench.ok()) << outputs(server, bench);
    EXPECT_FALSE(bench.timed_out) << "redis-benchmark did not finish 100 000 requests in 300 s";
    EXPECT_TRUE(std::regex_search(bench.out, std::regex("\"SET\",\"[0-9.]+\""))) << outputs(server, bench);
    EXPECT_TRUE(std::regex_search(bench.out, std::regex("\"GET\",\"[0-9.]+\""))) << outputs(server, bench);
    std::printf("[ measured ] redis-benchmark against redis-server (%s), 100000 requests each:\n%s",
                GetParam().c_str(), bench.out.c_str());
    const CommandResult get = run_on_kernel({"redis-cli", "-h", stack_ip, "get", "key:__rand_int__"});
    // The benchmark's SET writes a 3-byte value (random bytes in redis 7).
    EXPECT_EQ(get.out.size(), 4u) << "the benchmark's SETs did not land: " << get.describe();
}

TEST_P(HeavyProgramTest, NginxMasterAndTwoWorkersServeCurlAndWrk) {
    need("nginx");
    need("wrk");
    need("curl");
    std::filesystem::create_directories(dir_ + "/tmp");
    std::ofstream(dir_ + "/nginx.conf") << "user root;\n"  // workers keep the uid the host serves
                                           "worker_processes 2;\n"
                                           "pid " << dir_ << "/nginx.pid;\n"
                                           "error_log stderr notice;\n"
                                           "events { worker_connections 512; }\n"
                                           "http {\n"
                                           "  access_log off;\n"
                                           "  client_body_temp_path " << dir_ << "/tmp/body;\n"
                                           "  proxy_temp_path " << dir_ << "/tmp/proxy;\n"
                                           "  fastcgi_temp_path " << dir_ << "/tmp/fastcgi;\n"
                                           "  uwsgi_temp_path " << dir_ << "/tmp/uwsgi;\n"
                                           "  scgi_temp_path " << dir_ << "/tmp/scgi;\n"
                                           "  server { listen 8080; root " << dir_ << "/www; }\n"
                                           "}\n";
    // Declared before the master's Subprocess, so destroyed after it: a
    // master still alive when its workers are killed forks new ones, which
    // its own SIGKILL then orphans (seen leaking after a CI run).
    KillAtExit workers_at_exit;
    Subprocess server = on_stack({"nginx", "-p", dir_, "-c", dir_ + "/nginx.conf", "-e", "stderr", "-g", "daemon off;"});
    ASSERT_TRUE(side_->wait_listening(8080)) << server.err();
    int workers = 0;
    for (int i = 0; i < 500 && workers < 2; ++i) {
        workers_at_exit.pids = children(server.pid(), "nginx");
        workers = static_cast<int>(workers_at_exit.pids.size());
        ::usleep(10000);
    }
    EXPECT_EQ(workers, 2) << "nginx master " << server.pid() << " should have 2 worker processes";

    CommandResult r = run_on_kernel({"curl", "-sS", "--max-time", "10", url(stack_ip, 8080, "/index.html")});
    EXPECT_TRUE(r.ok()) << outputs(server, r);
    EXPECT_EQ(r.out, page) << outputs(server, r);

    r = run_on_kernel({"wrk", "-t", "2", "-c", "20", "-d", "3s", url(stack_ip, 8080, "/index.html")}, 60);
    EXPECT_TRUE(r.ok()) << outputs(server, r);
    EXPECT_EQ(r.out.find("Socket errors"), std::string::npos) << outputs(server, r);
    EXPECT_EQ(r.out.find("Non-2xx"), std::string::npos) << outputs(server, r);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex("([0-9]+) requests in"))) << outputs(server, r);
    EXPECT_GT(std::stoll(m[1]), 0) << outputs(server, r);
    std::printf("[ measured ] wrk -t2 -c20 -d3s against nginx (%s):\n%s", GetParam().c_str(), r.out.c_str());

    // Both workers are still there: none crashed serving the load.
    EXPECT_EQ(count_children(server.pid(), "nginx"), 2) << outputs(server, r);
}

TEST_P(HeavyProgramTest, Iperf3ServerAndClientOnStack) {
    need("iperf3");
    // The stack side serves, the kernel sends.
    {
        Subprocess server = on_stack({"iperf3", "-s", "-1", "-p", "5201"});
        ASSERT_TRUE(side_->wait_listening(5201)) << server.err();
        const CommandResult c = run_on_kernel({"iperf3", "-c", stack_ip, "-p", "5201", "-t", "2", "-f", "m"}, 60);
        EXPECT_TRUE(c.ok()) << outputs(server, c);
        EXPECT_NE(c.out.find("receiver"), std::string::npos) << outputs(server, c);
        const CommandResult s = server.wait(Duration::from_secs(20));
        EXPECT_TRUE(s.ok()) << "iperf3 server on the stack side: " << s.describe() << s.out;
        std::printf("[ measured ] iperf3 kernel -> %s server:\n%s", GetParam().c_str(), c.out.c_str());
    }
    // The stack side sends, the kernel serves; then -R: the kernel sends.
    for (const bool reverse : {false, true}) {
        Subprocess server = on_kernel({"iperf3", "-s", "-1", "-B", kernel_ip, "-p", "5202"});
        ASSERT_TRUE(shimenv::wait_kernel_tcp_listen(5202)) << server.err();
        std::vector<std::string> client = {"iperf3", "-c", kernel_ip, "-p", "5202", "-t", "2", "-f", "m"};
        if (reverse) {
            client.push_back("-R");
        }
        const CommandResult c = run_on_stack(client, 60);
        EXPECT_TRUE(c.ok()) << outputs(server, c);
        EXPECT_NE(c.out.find("receiver"), std::string::npos) << outputs(server, c);
        server.wait(Duration::from_secs(20));
        std::printf("[ measured ] iperf3 %s client%s -> kernel server:\n%s", GetParam().c_str(),
                    reverse ? " (-R, kernel sends)" : "", c.out.c_str());
    }
}

INSTANTIATE_TEST_SUITE_P(Modes, HeavyProgramTest, ::testing::Values("native", "daemon"),
                         mode_name);

}  // namespace
}  // namespace ustack::testing
