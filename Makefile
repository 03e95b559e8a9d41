# ustack — build, test, demo. See README.md.
#   make            build everything into build/
#   make test       build and run every test (SANITIZE=1: ASan + UBSan build)
#   make demo       the end-to-end demonstration in a private namespace
#   make deps       install missing Debian packages (run by the targets above)

CXX      ?= g++
SANITIZE ?= 0
ifeq ($(SANITIZE),1)
BUILD    ?= build-sanitize
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
# GCC 12 reports std::optional members as maybe-uninitialized under ASan at
# -O1 (false positives, e.g. StackPairOptions::pcap_path); the normal build
# keeps the warning as an error.
OPTFLAGS := -O1 -g -Wno-maybe-uninitialized
else
BUILD    ?= build
SANFLAGS :=
OPTFLAGS := -O2 -g
endif

# -fPIC: the same core objects also go into the preload library libustack.so.
CXXFLAGS := -std=c++20 -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -fPIC -I. $(OPTFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS  := $(SANFLAGS)

# Debian packages the build and the tests need. `make deps` installs what is
# missing; every target that needs them depends on it.
DEB_PACKAGES := g++ make libgtest-dev libcli11-dev iproute2
# Kernel-side peers of the interop tests (tests/interop).
DEB_PACKAGES += socat iputils-ping tshark netcat-openbsd ethtool
# Real programs of the shim tests (tests/shim/real_programs_test.cpp) and make demo.
DEB_PACKAGES += python3 curl redis-server redis-tools nginx wrk iperf3

CORE_SRCS := $(shell find stack netdev -name '*.cpp' | sort)
TEST_SRCS := $(shell find tests/unit tests/pair tests/support -name '*.cpp' 2>/dev/null | sort)
CORE_OBJS := $(CORE_SRCS:%.cpp=$(BUILD)/obj/%.o)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/obj/%.o)

CORE_LIB  := $(BUILD)/lib/libustack_core.a
TEST_BIN  := $(BUILD)/bin/ustack_tests

# Interop tests: the stack against the Linux kernel over TAP and AF_PACKET,
# each test in a private network namespace (needs root).
INTEROP_SRCS := $(shell find tests/interop tests/support -name '*.cpp' 2>/dev/null | sort)
INTEROP_OBJS := $(INTEROP_SRCS:%.cpp=$(BUILD)/obj/%.o)
INTEROP_BIN  := $(BUILD)/bin/ustack_interop_tests

# Host, shim and launcher: the preload library, the tools, and the shim
# tests (unmodified programs under ustack-run in a private namespace, with
# their own test programs in tests/shim/programs).
SHIM_SRCS      := $(wildcard shim/*.cpp)
SHIM_OBJS      := $(SHIM_SRCS:%.cpp=$(BUILD)/obj/%.o)
SHIM_LIB       := $(BUILD)/lib/libustack.so
TOOL_BINS      := $(BUILD)/bin/ustack-run $(BUILD)/bin/ustackd $(BUILD)/bin/ustackctl
SHIM_TEST_SRCS := $(sort $(wildcard tests/shim/*.cpp) $(wildcard tests/support/*.cpp))
SHIM_TEST_OBJS := $(SHIM_TEST_SRCS:%.cpp=$(BUILD)/obj/%.o)
SHIM_TEST_BIN  := $(BUILD)/bin/ustack_shim_tests
SHIM_PROG_SRCS := $(wildcard tests/shim/programs/*.cpp)
SHIM_PROG_BINS := $(SHIM_PROG_SRCS:tests/shim/programs/%.cpp=$(BUILD)/bin/shim_prog_%)

.PHONY: all deps test demo bench bench-programs clean

all: deps $(CORE_LIB) $(TEST_BIN) $(INTEROP_BIN)
all: $(SHIM_LIB) $(TOOL_BINS) $(SHIM_TEST_BIN) $(SHIM_PROG_BINS)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

$(BUILD)/obj/%.o: %.cpp | deps
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(CORE_LIB): $(CORE_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(TEST_BIN): $(TEST_OBJS) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $(TEST_OBJS) $(CORE_LIB) -lgtest -lgtest_main -pthread

$(INTEROP_BIN): $(INTEROP_OBJS) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $(INTEROP_OBJS) $(CORE_LIB) -lgtest -lgtest_main -pthread

# Start-up cost of every program under ustack-run (bench restart): the shim
# carries its own libstdc++/libgcc (kept local by the version script, unused
# code dropped), so a C program loads no libstdc++/libm/libgcc_s; ustack-run
# is static, so its exec needs no dynamic loader. ASan needs the shared C++
# runtime and a dynamic executable: the sanitizer build links as before.
ifeq ($(SANITIZE),1)
SHIM_LINK_FLAGS :=
RUN_LINK_FLAGS  :=
else
SHIM_LINK_FLAGS := -static-libstdc++ -static-libgcc -Wl,-O1,--as-needed,--gc-sections
RUN_LINK_FLAGS  := -static
endif

$(SHIM_LIB): $(SHIM_OBJS) $(CORE_LIB) shim/libustack.map
	@mkdir -p $(dir $@)
	$(CXX) -shared $(LDFLAGS) $(SHIM_LINK_FLAGS) -Wl,--version-script=shim/libustack.map -Wl,-z,defs -o $@ $(SHIM_OBJS) $(CORE_LIB) -ldl -pthread

$(BUILD)/bin/ustack-run: $(BUILD)/obj/tools/ustack_run.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $(RUN_LINK_FLAGS) -o $@ $< $(CORE_LIB) -pthread

$(BUILD)/bin/ustackd: $(BUILD)/obj/tools/ustackd.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(CORE_LIB) -pthread

$(BUILD)/bin/ustackctl: $(BUILD)/obj/tools/ustackctl.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(CORE_LIB) -pthread

$(SHIM_TEST_BIN): $(SHIM_TEST_OBJS) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $(SHIM_TEST_OBJS) $(CORE_LIB) -lgtest -lgtest_main -pthread

# Plain socket-API programs run under ustack-run (no ustack code linked in).
$(BUILD)/bin/shim_prog_%: $(BUILD)/obj/tests/shim/programs/%.o
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $<

test: all
	$(TEST_BIN) --gtest_brief=1
	$(INTEROP_BIN) --gtest_brief=1
	$(SHIM_TEST_BIN) --gtest_brief=1

# An unmodified python3 -m http.server on ustack in a private namespace:
# restart with and without SO_REUSEADDR over TIME_WAIT, churn with
# tcp_tw_reuse off and on (tools/demo.sh; needs root).
demo: all
	@bash tools/demo.sh $(BUILD)

BENCH_SRCS := $(wildcard bench/*.cpp)
BENCH_BINS := $(BENCH_SRCS:bench/%.cpp=$(BUILD)/bin/bench_%)

$(BUILD)/bin/bench_%: $(BUILD)/obj/bench/%.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(CORE_LIB) -pthread

# Workload programs of bench/run.py: plain socket API, run natively and
# under ustack-run unchanged (no ustack code linked in).
BENCH_PROG_SRCS := $(wildcard bench/programs/*.cpp)
BENCH_PROG_BINS := $(BENCH_PROG_SRCS:bench/programs/%.cpp=$(BUILD)/bin/bench_%)

$(BENCH_PROG_BINS): $(BUILD)/bin/bench_%: $(BUILD)/obj/bench/programs/%.o
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< -pthread

# What only the benchmarks need (the chart).
BENCH_DEB_PACKAGES := gnuplot-nox

# Builds what bench/run.py runs, without running it (`make bench` runs
# the whole benchmark and rewrites bench/RESULTS.md).
bench-programs: all $(BENCH_BINS) $(BENCH_PROG_BINS)

# bench/run.py: kernel vs ustack (TAP, AF_PACKET) in private namespaces,
# writes bench/RESULTS.md and bench/ratios.png. BENCH_QUICK=1: short runs.
bench: bench-programs
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_DEB_PACKAGES)"
	python3 bench/run.py --bin $(BUILD)/bin

clean:
	rm -rf build build-sanitize

-include $(CORE_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(INTEROP_OBJS:.o=.d) \
	$(SHIM_OBJS:.o=.d) $(SHIM_TEST_OBJS:.o=.d) $(SHIM_PROG_SRCS:%.cpp=$(BUILD)/obj/%.d) $(BUILD)/obj/tools/*.d \
	$(BENCH_PROG_SRCS:%.cpp=$(BUILD)/obj/%.d)
