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

CXXFLAGS := -std=c++20 -Wall -Wextra -Werror -Wshadow -Wnon-virtual-dtor -I. $(OPTFLAGS) $(SANFLAGS) -MMD -MP
LDFLAGS  := $(SANFLAGS)

# Debian packages the build and the tests need. `make deps` installs what is
# missing; every target that needs them depends on it.
DEB_PACKAGES := g++ make libgtest-dev libcli11-dev iproute2
# Kernel-side peers of the interop tests (tests/interop).
DEB_PACKAGES += socat iputils-ping tshark netcat-openbsd

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

.PHONY: all deps test demo bench clean

all: deps $(CORE_LIB) $(TEST_BIN) $(INTEROP_BIN)

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

test: all
	$(TEST_BIN) --gtest_brief=1
	$(INTEROP_BIN) --gtest_brief=1

demo: all
	@echo "make demo: not yet — the shim and launcher (issue 'Host, shim and launcher') do not exist yet."

BENCH_SRCS := $(wildcard bench/*.cpp)
BENCH_BINS := $(BENCH_SRCS:bench/%.cpp=$(BUILD)/bin/bench_%)

$(BUILD)/bin/bench_%: $(BUILD)/obj/bench/%.o $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) -o $@ $< $(CORE_LIB) -pthread

bench: all $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf build build-sanitize

-include $(CORE_OBJS:.o=.d) $(TEST_OBJS:.o=.d) $(INTEROP_OBJS:.o=.d)
