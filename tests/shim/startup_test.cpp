// How programs start under ustack-run (bench restart measures the time):
// libustack.so carries its own statically linked C++ runtime, so a C
// program maps no libstdc++, and a C++ program's own runtime (exceptions,
// iostreams, threads) keeps working next to the shim's private copy.
// Private network namespace with a TAP, as in shim_test.cpp.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/netns.h"
#include "tests/support/subprocess.h"

namespace ustack::testing {
namespace {

constexpr const char* kernel_ip = "10.77.4.1";
constexpr const char* stack_ip = "10.77.4.2";
constexpr const char* tap = "ustap4";
constexpr const char* device = "tap:ustap4";

std::string bin(const std::string& name) {
    char path[4096];
    const ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    std::string p(path, n > 0 ? static_cast<size_t>(n) : 0);
    return p.substr(0, p.rfind('/')) + "/" + name;
}

class StartupTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
        GTEST_SKIP() << "the sanitizer build links libustack.so against the shared C++ runtime (ASan needs it)";
#endif
        auto ns = PrivateNetns::enter();
        if (!ns) {
            GTEST_SKIP() << "no private network namespace: " << ns.error();
        }
        netns_ = std::move(*ns);
        if (::access("/dev/net/tun", R_OK | W_OK) != 0) {
            GTEST_SKIP() << "/dev/net/tun is not available (modprobe tun)";
        }
        must_run({"ip", "tuntap", "add", "dev", tap, "mode", "tap"});
        must_run({"ip", "addr", "add", std::string(kernel_ip) + "/24", "dev", tap});
        must_run({"ip", "link", "set", tap, "up"});
        ::setenv("USTACK_IDLE_EXIT", "1000", 1);
        ::unsetenv("USTACK_ADDR");
        ::unsetenv("USTACK_DEV");
        ::unsetenv("USTACK_MODE");
    }

    void TearDown() override {
        if (netns_) {
            for (int i = 0; i < 100; ++i) {
                if (!netns_->run({bin("ustackctl"), "--dev", device, "down"}).ok()) {
                    break;
                }
                ::usleep(20000);
            }
        }
        netns_.reset();
    }

    void must_run(const std::vector<std::string>& argv) {
        const CommandResult r = netns_->run(argv);
        ASSERT_TRUE(r.ok()) << argv[0] << ": " << r.describe();
    }

    CommandResult under_ustack(const std::vector<std::string>& command) {
        std::vector<std::string> argv = {bin("ustack-run"), "--dev",  device, "--addr", std::string(stack_ip) + "/24",
                                         "--mode",          GetParam(), "--"};
        argv.insert(argv.end(), command.begin(), command.end());
        return netns_->run(argv, Duration::from_secs(30));
    }

    std::unique_ptr<PrivateNetns> netns_;
};

TEST_P(StartupTest, CProgramMapsNoCxxRuntime) {
    // cat is a C program: under the shim its memory map has libustack.so
    // and no libstdc++ (nor libgcc_s, which only C++ code would need).
    const CommandResult r = under_ustack({"cat", "/proc/self/maps"});
    ASSERT_TRUE(r.ok()) << r.describe();
    EXPECT_NE(r.out.find("libustack.so"), std::string::npos) << "the shim is not loaded:\n" << r.out;
    EXPECT_EQ(r.out.find("libstdc++"), std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("libgcc_s"), std::string::npos) << r.out;
}

TEST_P(StartupTest, CxxProgramKeepsItsOwnRuntime) {
    const CommandResult r = under_ustack({bin("shim_prog_cxx_runtime"), stack_ip, "7400"});
    EXPECT_TRUE(r.ok()) << r.out << r.err;
    EXPECT_NE(r.out.find("PASS cxx_runtime"), std::string::npos) << r.out << r.err;
}

INSTANTIATE_TEST_SUITE_P(Modes, StartupTest, ::testing::Values("daemon", "inproc"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) { return param_info.param; });

}  // namespace
}  // namespace ustack::testing
