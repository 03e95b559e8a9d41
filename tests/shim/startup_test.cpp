// How programs start under ustack-run (bench restart measures the time):
// libustack.so carries its own statically linked C++ runtime, so a C
// program maps no libstdc++, and a C++ program's own runtime (exceptions,
// iostreams, threads) keeps working next to the shim's private copy.
// Private network namespace with a TAP (shimenv::UstackNetns).
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "tests/shim/ustack_netns.h"

namespace ustack::testing {
namespace {

using shimenv::bin;
using shimenv::stack_ip;

class StartupTest : public ::testing::TestWithParam<std::string> {
protected:
    void SetUp() override {
#if defined(__SANITIZE_ADDRESS__)
        GTEST_SKIP() << "the sanitizer build links libustack.so against the shared C++ runtime (ASan needs it)";
#endif
        auto env = shimenv::UstackNetns::create(GetParam());
        if (!env) {
            GTEST_SKIP() << env.error();
        }
        env_ = std::move(*env);
    }

    CommandResult under_ustack(const std::vector<std::string>& command) {
        return env_->netns().run(env_->under_ustack(command), Duration::from_secs(30));
    }

    std::unique_ptr<shimenv::UstackNetns> env_;
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
