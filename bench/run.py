#!/usr/bin/env python3
"""ustack against the Linux kernel, side by side, in one run.

    python3 bench/run.py --bin build/bin        (make bench runs this)
    BENCH_QUICK=1 python3 bench/run.py ...       (short runs, one repetition)

Every workload runs, in the same run and against the same kernel peer,
three ways:

  kernel   the workload program natively in namespace "app", over a veth
           pair to the peer namespace (the kernel stack at both ends);
  TAP      the same program under ustack-run in the peer namespace, the
           stack on a TAP whose kernel side is the peer's;
  PACKET   the same program under ustack-run in namespace "pkt", the stack
           on a veth end through AF_PACKET, the other end the peer's.

    +--------- peer netns (kernel peer: bench_peer, restart driver) ---------+
    | vk 10.81.1.1/24        ut (TAP) 10.81.2.1/24       pk 10.81.3.1/24       |
    +----|------------------------|-------------------------|----------------+
    app netns: va 10.81.1.2   ustack 10.81.2.2 (tap:ut)   pkt netns: ps, ustack
    (kernel client)           program in peer netns       10.81.3.2 (packet:ps)

Every namespace is created by this script with a unique name and deleted at
the end (also on failure or Ctrl-C); nothing touches the machine's own
network. Each workload gets a fresh topology per repetition, so TIME_WAIT
left by one run cannot change the next. Results: a table on stdout,
bench/RESULTS.md and bench/ratios.png (gnuplot). Needs root.
"""
import argparse
import datetime
import os
import platform
import re
import shutil
import statistics
import select
import subprocess
import sys
import time

QUICK = os.environ.get("BENCH_QUICK", "0") not in ("", "0")
HERE = os.path.dirname(os.path.abspath(__file__))

PEER_NATIVE, APP_NATIVE = "10.81.1.1", "10.81.1.2"
PEER_TAP, STACK_TAP = "10.81.2.1", "10.81.2.2"
PEER_PKT, STACK_PKT = "10.81.3.1", "10.81.3.2"
CHURN_RANGE = (41000, 41999)  # 1 000 ports

# Sizes and durations: full run (make bench) and BENCH_QUICK=1.
P = dict(
    # Five repetitions: single 3 s runs on this shared 2-core VM spread by
    # up to ±30 % (crr over TAP ran 7 340–10 127 /s within one make bench
    # at 9e88e0c); the median of five moves less than the median of three.
    reps=5, rr_s=3.0, crr_s=3.0, bulk_bytes=1 << 30, bulk_limit_s=6.0, churn_s=10.0, churn_slow_s=5.0,
    # scale: 10 000 idle connections (issue 7). The host visits only the
    # sockets that changed, so opening n connections is O(n). Measured once
    # (memory per connection does not need repetitions).
    # restart: one run of 100 restarts is its own distribution (median of
    # 100); the 10 000-entry fill is what makes it slow to repeat.
    restart_fill=10000, restarts=100, restart_reps=1, idle_conns=10000, scale_reps=1,
) if not QUICK else dict(
    reps=1, rr_s=1.0, crr_s=1.0, bulk_bytes=64 << 20, bulk_limit_s=3.0, churn_s=3.0, churn_slow_s=3.0,
    restart_fill=1000, restarts=10, restart_reps=1, idle_conns=1000, scale_reps=1,
)

CONFIGS = ("kernel", "tap", "packet")
CONFIG_TITLE = {"kernel": "kernel (veth)", "tap": "ustack TAP", "packet": "ustack AF_PACKET"}


class BenchError(Exception):
    """One measurement failed; the message goes into the table cell."""


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def sh(argv, timeout=30, check=True, **kwargs):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if check and r.returncode != 0:
        raise BenchError(f"{' '.join(argv[:6])}: exit {r.returncode}: {last_line(r.stderr or r.stdout)}")
    return r


def last_line(text):
    lines = [l for l in (text or "").strip().splitlines() if l.strip()]
    return lines[-1][:160] if lines else "(no output)"


def parse_result(text):
    for line in (text or "").splitlines():
        if line.startswith("RESULT "):
            out = {}
            for item in line.split()[1:]:
                k, _, v = item.partition("=")
                out[k] = float(v)
            return out
    return None


class Topology:
    """Three namespaces (peer, app, pkt), the links between them, and the
    kernel peer server. Use as a context manager: teardown always runs."""

    serial = 0

    def __init__(self, bins):
        Topology.serial += 1
        base = f"ub{os.getpid() % 100000}x{Topology.serial}"
        self.peer, self.app, self.pkt = base + "p", base + "a", base + "k"
        self.bins = bins
        self.peer_proc = None

    def __enter__(self):
        try:
            self._build()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc):
        self.teardown()

    def ns(self, name, argv):
        return ["ip", "netns", "exec", name] + argv

    def _build(self):
        for n in (self.peer, self.app, self.pkt):
            sh(["ip", "netns", "add", n])
            sh(["ip", "-n", n, "link", "set", "lo", "up"])
        p, a, k = self.peer, self.app, self.pkt
        sh(["ip", "-n", p, "link", "add", "vk", "type", "veth", "peer", "name", "va", "netns", a])
        sh(["ip", "-n", p, "addr", "add", PEER_NATIVE + "/24", "dev", "vk"])
        sh(["ip", "-n", p, "link", "set", "vk", "up"])
        sh(["ip", "-n", a, "addr", "add", APP_NATIVE + "/24", "dev", "va"])
        sh(["ip", "-n", a, "link", "set", "va", "up"])
        sh(["ip", "-n", p, "tuntap", "add", "dev", "ut", "mode", "tap"])
        sh(["ip", "-n", p, "addr", "add", PEER_TAP + "/24", "dev", "ut"])
        sh(["ip", "-n", p, "link", "set", "ut", "up"])
        sh(["ip", "-n", p, "link", "add", "pk", "type", "veth", "peer", "name", "ps", "netns", k])
        sh(["ip", "-n", p, "addr", "add", PEER_PKT + "/24", "dev", "pk"])
        sh(["ip", "-n", p, "link", "set", "pk", "up"])
        # The AF_PACKET end has no kernel address; keep IPv6 chatter off it.
        sh(self.ns(k, ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]))
        sh(["ip", "-n", k, "link", "set", "ps", "up"])
        self.peer_proc = subprocess.Popen(self.ns(p, [self.bins.prog("peer")]), stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True)
        if self.peer_proc.stdout.readline().strip() != "READY":
            raise BenchError("bench_peer did not start: " + last_line(self.peer_proc.stderr.read()))

    def teardown(self):
        # Only processes inside our own namespaces, by pid.
        for n in (self.pkt, self.app, self.peer):
            r = subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True)
            for pid in r.stdout.split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
        if self.peer_proc is not None:
            self.peer_proc.wait()
        for n in (self.pkt, self.app, self.peer):
            subprocess.run(["ip", "netns", "del", n], capture_output=True)

    # How a client program runs in each configuration, and whom it talks to.
    def peer_addr(self, config):
        return {"kernel": PEER_NATIVE, "tap": PEER_TAP, "packet": PEER_PKT}[config]

    def stack_addr(self, config):
        return {"kernel": APP_NATIVE, "tap": STACK_TAP, "packet": STACK_PKT}[config]

    def device(self, config):
        return {"tap": "tap:ut", "packet": "packet:ps"}[config]

    def program_ns(self, config):
        return {"kernel": self.app, "tap": self.peer, "packet": self.pkt}[config]

    def under_ustack(self, config, argv, mode="inproc", flags=()):
        if config == "kernel":
            return argv
        return [self.bins.tool("ustack-run"), "--dev", self.device(config), "--addr",
                self.stack_addr(config) + "/24", "--mode", mode, *flags, "--"] + argv

    def client(self, config, argv, mode="inproc", flags=()):
        return self.ns(self.program_ns(config), self.under_ustack(config, argv, mode, flags))

    def kernel_sysctl(self, *settings):
        sh(self.ns(self.app, ["sysctl", "-qw", *settings]))

    def ustackctl(self, config, *args, check=True):
        return sh(self.ns(self.program_ns(config), [self.bins.tool("ustackctl"), "--dev", self.device(config),
                                                    *args]), check=check)


class Bins:
    def __init__(self, bin_dir):
        self.dir = os.path.abspath(bin_dir)

    def prog(self, name):
        return os.path.join(self.dir, "bench_" + name)

    def tool(self, name):
        return os.path.join(self.dir, name)


def run_client(topo, config, argv, timeout, mode="inproc", flags=()):
    cmd = topo.client(config, argv, mode, flags)
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"timed out after {timeout:.0f} s")
    res = parse_result(r.stdout)
    if r.returncode != 0 or res is None:
        raise BenchError(f"exit {r.returncode}: {last_line(r.stderr + r.stdout)}")
    return res


# --- workloads: each returns {metric: value} for one configuration --------

# The host's busy poll for the *_busy rows (ustack-run --busy-poll, Linux's
# net.core.busy_poll for the host loop; off by default). The kernel rows of
# those workloads are the kernel as always: net.core.busy_poll is not per
# namespace, and this bench changes nothing outside its namespaces.
BUSY_POLL_US = 50


def w_rr_with(prefix, flags=()):
    def run(topo, config):
        r = run_client(topo, config, [topo.bins.prog("rr"), "--addr", topo.peer_addr(config), "--seconds",
                                      str(P["rr_s"])], P["rr_s"] + 30, flags=flags)
        return {prefix + "_rate": r["rtt_per_s"], prefix + "_p50": r["p50_us"], prefix + "_p99": r["p99_us"]}
    return run


def w_crr_with(prefix, flags=()):
    def run(topo, config):
        r = run_client(topo, config, [topo.bins.prog("crr"), "--addr", topo.peer_addr(config), "--seconds",
                                      str(P["crr_s"])], P["crr_s"] + 30, flags=flags)
        if r["errors"] > 0:
            raise BenchError(f"{r['errors']:.0f} failed connections ({r['count']:.0f} good)")
        return {prefix + "_rate": r["conn_per_s"]}
    return run


def bulk(direction, streams):
    def run(topo, config):
        r = run_client(topo, config, [topo.bins.prog("bulk"), "--addr", topo.peer_addr(config), "--direction",
                                      direction, "--bytes", str(P["bulk_bytes"]), "--streams", str(streams),
                                      "--time-limit", str(P["bulk_limit_s"])], P["bulk_limit_s"] + 60)
        out = {f"bulk{streams}_{direction}": r["gbit_per_s"]}
        if r["capped"]:
            out["_note"] = f"time limit: {r['bytes'] / 2**20:.0f} MiB in {r['seconds']:.1f} s"
        return out
    return run


# tcp_rfc1337=1 for the tw_reuse=0 count, on both stacks: the count is the
# port rule's (the range, every port held by its TIME_WAIT entry), and an
# RST must not end an entry early. One does, now and then: the peer's ACK
# and FIN for a connection leave it from two CPUs when its thread moves,
# veth delivers them in the other order, the FIN takes the connection to
# TIME_WAIT and the late ACK, out of window there, draws an ACK (as Linux's
# tcp_timewait_state_process) that the peer, closed, answers with RST.
# Without the setting both stacks counted 1 001-1 002 from 1 000 ports in
# some runs (the kernel 1 in 5, ustack over AF_PACKET 4 in 5 in one run).
def churn_flags(reuse, delay_ms=None, rfc1337=0):
    lo, hi = CHURN_RANGE
    flags = ["--port-range", f"{lo}-{hi}", "--tw-reuse", str(reuse), "--rfc1337", str(rfc1337)]
    return flags + (["--tw-reuse-delay", str(delay_ms)] if delay_ms is not None else [])


def churn_kernel_setup(topo, reuse, delay_ms=None, rfc1337=0):
    lo, hi = CHURN_RANGE
    settings = [f"net.ipv4.ip_local_port_range={lo} {hi}", f"net.ipv4.tcp_tw_reuse={reuse}",
                f"net.ipv4.tcp_rfc1337={rfc1337}"]
    if delay_ms is not None:
        settings.append(f"net.ipv4.tcp_tw_reuse_delay={delay_ms}")  # Linux 6.12+
    topo.kernel_sysctl(*settings)


def churn_reuse(delay_ms, seconds_key, prefix):
    """tcp_tw_reuse=1. With Linux's default reuse delay (1 s) a port comes
    back 1 s after it entered TIME_WAIT, so 1 000 ports cap any stack at
    1 000 connections/s and a faster client meets EADDRNOTAVAIL while it
    waits; with a 1 ms delay the stack's own speed is the limit."""
    def run(topo, config):
        if config == "kernel":
            churn_kernel_setup(topo, 1, delay_ms)
        r = run_client(topo, config, [topo.bins.prog("churn"), "--addr", topo.peer_addr(config), "--seconds",
                                      str(P[seconds_key])], P[seconds_key] + 60, flags=churn_flags(1, delay_ms))
        return {prefix + "_rate": r["conn_per_s"], prefix + "_fail": r["eaddrnotavail"]}
    return run


def w_churn_noreuse(topo, config):
    if config == "kernel":
        churn_kernel_setup(topo, 0, rfc1337=1)
    # Graceful closes (shutdown, the peer's FIN, close): every port surely
    # enters TIME_WAIT, so the count is the stack's rule, not a race with
    # the peer's accept queue (see bench/programs/churn.cpp).
    r = run_client(topo, config, [topo.bins.prog("churn"), "--addr", topo.peer_addr(config), "--seconds", "30",
                                  "--stop-at-eaddrnotavail", "1", "--graceful", "1"], 90,
                   flags=churn_flags(0, rfc1337=1))
    if r["first_eaddrnotavail_at"] < 0:
        raise BenchError(f"no EADDRNOTAVAIL within 30 s ({r['conns']:.0f} connections)")
    out = {"churn0_count": r["first_eaddrnotavail_at"]}
    if r.get("resets"):
        out["_note"] = f"{r['resets']:.0f} connections reset by the peer (no TIME_WAIT for those)"
    return out


def w_restart(topo, config):
    # The server is the program under test; ustack runs it in daemon mode,
    # the host that keeps the TIME_WAIT entries across the restarts.
    server = topo.under_ustack(config, [topo.bins.prog("restart"), "server", "--port", "6000"], mode="daemon")
    netns = "-" if config == "tap" else "/run/netns/" + topo.program_ns(config)
    cmd = topo.ns(topo.peer, [topo.bins.prog("restart"), "driver", "--addr", topo.stack_addr(config), "--port",
                              "6000", "--fill", str(P["restart_fill"]), "--restarts", str(P["restarts"]),
                              "--server-netns", netns, "--"] + server)
    try:
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
        except subprocess.TimeoutExpired:
            raise BenchError("timed out after 240 s")
        res = parse_result(r.stdout)
        if r.returncode != 0 or res is None:
            raise BenchError(f"exit {r.returncode}: {last_line(r.stderr + r.stdout)}")
        held = time_wait_held(topo, config)
    finally:
        if config != "kernel":
            topo.ustackctl(config, "down", check=False)
    want = P["restart_fill"] + P["restarts"]
    out = {"restart_p50": res["p50_ms"], "restart_max": res["max_ms"]}
    note = f"TIME_WAIT held at the end: {held} (want {want}); run {res['seconds']:.0f} s"
    if held < want:
        out["_note"] = note + " — FEWER THAN WANTED"
    else:
        out["_note"] = note
    return out


def time_wait_held(topo, config):
    if config == "kernel":
        r = sh(topo.ns(topo.app, ["ss", "-Htan", "state", "time-wait", "sport", "=", ":6000"]))
        return len([l for l in r.stdout.splitlines() if l.strip()])
    r = topo.ustackctl(config, "status", check=False)
    m = re.search(r"^time_wait (\d+)", r.stdout, re.M)
    if not m:
        raise BenchError("ustackctl status shows no time_wait count: " + last_line(r.stderr + r.stdout))
    return int(m.group(1))


class MemoryCgroup:
    """A child memory cgroup (v1) of ours: usage_in_bytes counts the pages
    and the kernel objects (sockets, files: SLAB_ACCOUNT) of what runs in it.
    None when the machine has no usable memory cgroup."""

    @staticmethod
    def create():
        try:
            with open("/proc/self/cgroup") as f:
                rel = next(l.split(":", 2)[2].strip() for l in f if l.split(":")[1] == "memory")
            base = "/sys/fs/cgroup/memory" + rel
            path = os.path.join(base, f"ustack-bench-{os.getpid()}")
            os.makedirs(path, exist_ok=True)
            return MemoryCgroup(path)
        except (OSError, StopIteration, IndexError):
            return None

    def __init__(self, path):
        self.path = path

    def enter_fn(self):
        procs = os.path.join(self.path, "cgroup.procs")

        def enter():
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        return enter

    def usage(self):
        with open(os.path.join(self.path, "memory.usage_in_bytes")) as f:
            return int(f.read())

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.1)


def host_stats(topo, config):
    """`ustackctl stats` of the config's host as {name: int}; {} on failure."""
    r = topo.ustackctl(config, "stats", check=False)
    stats = {}
    for line in (r.stdout or "").splitlines():
        name, _, value = line.partition(" ")
        if value.strip().isdigit():
            stats[name] = int(value)
    return stats


def w_scale(topo, config, cgroup):
    if cgroup is None:
        raise BenchError("no memory cgroup (v1) to measure in")
    n = P["idle_conns"]
    # Daemon mode: in-process, the host would hold the far end of every
    # socket's socketpair in the same process, two fds per connection, and
    # RLIMIT_NOFILE may not be raisable (a container's hard limit: 20 000).
    # RLIMIT_NOFILE: one fd per connection in the program, and one host end
    # per connection in the ustackd its first connect starts (inheriting the
    # program's limits). The harness raises both limits for this command
    # only (prlimit; we are root), whatever the machine's default hard limit;
    # bench_idle raises its soft limit to n + 256 within that.
    fds = n + 1024
    cmd = ["prlimit", f"--nofile={fds}:{fds}", "--"] + topo.client(
        config, [topo.bins.prog("idle"), "--addr", topo.peer_addr(config), "--count", str(n)], mode="daemon")
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=cgroup.enter_fn())
    try:
        def expect(word, timeout):
            # Never wait forever on a stuck program: a deadline on each line.
            ready, _, _ = select.select([proc.stdout], [], [], timeout)
            if not ready:
                proc.kill()
                raise BenchError(f"no {word} within {timeout:.0f} s")
            line = proc.stdout.readline()
            if not line.startswith(word):
                proc.kill()
                raise BenchError(f"expected {word}, got {line.strip()!r}: {last_line(proc.stderr.read())}")
        expect("BASELINE", 30)
        time.sleep(0.3)
        before = cgroup.usage()
        stats_before = host_stats(topo, config) if config != "kernel" else {}
        proc.stdin.write("go\n")
        proc.stdin.flush()
        t0 = time.time()
        expect("HOLDING", 240)
        open_s = time.time() - t0
        time.sleep(0.5)
        after = cgroup.usage()
        stats_after = host_stats(topo, config) if config != "kernel" else {}
        proc.stdin.write("done\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if config != "kernel":
            topo.ustackctl(config, "down", check=False)
    res = parse_result(out)
    if proc.returncode != 0 or res is None:
        raise BenchError(f"exit {proc.returncode}: {last_line(err)}")
    out = {"scale_mem": (after - before) / n, "scale_open_s": open_s}
    walks = stats_after.get("host_walks", 0) - stats_before.get("host_walks", 0)
    visits = stats_after.get("host_socket_visits", 0) - stats_before.get("host_socket_visits", 0)
    if walks > 0:
        # Sockets the host looked at per pass while the n connections
        # opened: O(1) when only changed sockets are visited (it was the
        # number of open sockets, up to n, before the ready list).
        out["scale_visits"] = visits / walks
    return out


# metric key → (workload label, metric label, better, target, target check on the ratio)
ROWS = [
    ("rr_rate", "rr", "round trips/s", "higher", "≥ 0.8", lambda q: q >= 0.8),
    ("rr_p50", "rr", "p50 latency µs", "lower", "", None),
    ("rr_p99", "rr", "p99 latency µs", "lower", "", None),
    ("crr_rate", "crr", "connections/s", "higher", "≥ 0.8", lambda q: q >= 0.8),
    ("rrb_rate", f"rr, busy-poll {BUSY_POLL_US} µs", "round trips/s", "higher", "≥ 0.8", lambda q: q >= 0.8),
    ("rrb_p50", f"rr, busy-poll {BUSY_POLL_US} µs", "p50 latency µs", "lower", "", None),
    ("rrb_p99", f"rr, busy-poll {BUSY_POLL_US} µs", "p99 latency µs", "lower", "", None),
    ("crrb_rate", f"crr, busy-poll {BUSY_POLL_US} µs", "connections/s", "higher", "≥ 0.8", lambda q: q >= 0.8),
    ("bulk1_up", "bulk 1 stream", "Gbit/s up", "higher", "≥ 0.5", lambda q: q >= 0.5),
    ("bulk1_down", "bulk 1 stream", "Gbit/s down", "higher", "≥ 0.5", lambda q: q >= 0.5),
    ("bulk8_up", "bulk 8 streams", "Gbit/s up", "higher", "", None),
    ("bulk8_down", "bulk 8 streams", "Gbit/s down", "higher", "", None),
    ("churn1_rate", "churn tw_reuse=1 (delay 1 s)", "connections/s", "higher", "≥ 0.99 (both capped at 1 000/s)",
     lambda q: q >= 0.99),
    ("churn1_fail", "churn tw_reuse=1 (delay 1 s)", "EADDRNOTAVAIL", "count", "", None),
    ("churnf_rate", "churn tw_reuse=1 (delay 1 ms)", "connections/s", "higher", "≥ 1.0", lambda q: q >= 1.0),
    ("churnf_fail", "churn tw_reuse=1 (delay 1 ms)", "EADDRNOTAVAIL", "zero", "0", None),
    ("churn0_count", "churn tw_reuse=0", "conns before EADDRNOTAVAIL", "equal", "= kernel (ratio of the minima)", lambda q: q == 1.0),
    ("restart_p50", "restart", "exec→accept p50 ms", "lower", "≤ 2.0", lambda q: q <= 2.0),
    ("restart_max", "restart", "exec→accept max ms", "lower", "", None),
    ("scale_mem", "scale: idle connections", "bytes/connection", "lower", "", None),
    ("scale_open_s", "scale: idle connections", "seconds to open them all", "lower", "", None),
    ("scale_visits", "scale: idle connections", "host: sockets visited per pass", "ustack only", "O(1)", None),
]

# name (for --only) → (function, the metrics it yields)
WORKLOADS = [
    ("rr", w_rr_with("rr"), ("rr_rate", "rr_p50", "rr_p99")), ("crr", w_crr_with("crr"), ("crr_rate",)),
    ("rr_busy", w_rr_with("rrb", ("--busy-poll", str(BUSY_POLL_US))), ("rrb_rate", "rrb_p50", "rrb_p99")),
    ("crr_busy", w_crr_with("crrb", ("--busy-poll", str(BUSY_POLL_US))), ("crrb_rate",)),
    ("bulk1_up", bulk("up", 1), ("bulk1_up",)), ("bulk1_down", bulk("down", 1), ("bulk1_down",)),
    ("bulk8_up", bulk("up", 8), ("bulk8_up",)), ("bulk8_down", bulk("down", 8), ("bulk8_down",)),
    ("churn_reuse", churn_reuse(None, "churn_slow_s", "churn1"), ("churn1_rate", "churn1_fail")),
    ("churn_fast", churn_reuse(1, "churn_s", "churnf"), ("churnf_rate", "churnf_fail")),
    ("churn_noreuse", w_churn_noreuse, ("churn0_count",)),
    ("restart", w_restart, ("restart_p50", "restart_max")), ("scale", None, ("scale_mem", "scale_open_s", "scale_visits")),
]


def probe_ustack(bins, config):
    """Whether TCP works under ustack-run on this device kind: a short rr.
    Returns None, or the reason it does not."""
    for tool in ("ustack-run", "ustackd", "ustackctl"):
        if not os.access(bins.tool(tool), os.X_OK):
            return f"{bins.tool(tool)} not built"
    try:
        with Topology(bins) as topo:
            run_client(topo, config, [bins.prog("rr"), "--addr", topo.peer_addr(config), "--seconds", "0.3"], 20)
            return None
    except BenchError as e:
        return f"TCP under ustack-run fails: {e}"


def profile(bins, workload, config, out_path):
    """perf record (cpu-clock, call graphs) of one ustack workload over one
    device, whole process (the in-process host thread included), and the
    top functions by self time into PROFILE.md. Returns a problem or None."""
    if shutil.which("perf") is None:
        return "perf not installed (linux-perf)"
    argv_of = {
        "bulk1_up": lambda t, c: [bins.prog("bulk"), "--addr", t.peer_addr(c), "--direction", "up", "--bytes",
                                  str(P["bulk_bytes"]), "--time-limit", str(P["bulk_limit_s"])],
        "bulk1_down": lambda t, c: [bins.prog("bulk"), "--addr", t.peer_addr(c), "--direction", "down", "--bytes",
                                    str(P["bulk_bytes"]), "--time-limit", str(P["bulk_limit_s"])],
        "rr": lambda t, c: [bins.prog("rr"), "--addr", t.peer_addr(c), "--seconds", str(P["rr_s"])],
        "crr": lambda t, c: [bins.prog("crr"), "--addr", t.peer_addr(c), "--seconds", str(P["crr_s"])],
    }
    if workload not in argv_of:
        return f"cannot profile '{workload}' (one of {', '.join(argv_of)})"
    data = f"/tmp/ustack-bench-{os.getpid()}.perf"
    try:
        with Topology(bins) as topo:
            inner = topo.under_ustack(config, argv_of[workload](topo, config))
            cmd = topo.ns(topo.program_ns(config), ["perf", "record", "-q", "-e", "cpu-clock", "-F", "2000", "-g",
                                                    "-o", data, "--"] + inner)
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                return f"perf record: exit {r.returncode}: {last_line(r.stderr)}"
            result = parse_result(r.stdout)
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                              "--percent-limit", "0.7", "--sort", "dso,symbol"],
                             capture_output=True, text=True, timeout=300)
        top = [re.sub(r"(\s+-)+\s*$", "", l) for l in rep.stdout.splitlines() if l.strip() and not l.startswith("#")]
        by_dso = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none",
                                 "--sort", "dso"], capture_output=True, text=True, timeout=300)
        dsos = [l.rstrip() for l in by_dso.stdout.splitlines() if l.strip() and not l.startswith("#")][:8]

    finally:
        if os.path.exists(data):
            os.unlink(data)
    with open(out_path, "w") as f:
        f.write(f"# CPU profile: {workload} under ustack ({CONFIG_TITLE[config]}, inproc)\n\n")
        f.write("Written by bench/run.py --profile: `perf record -e cpu-clock -g` of the whole program (the "
                "application thread and the in-process host thread, user and kernel), self time.\n")
        f.write(f"Result of the profiled run: {result}\n\n")
        f.write("## By binary\n\n```\n" + "\n".join(dsos) + "\n```\n\n")
        f.write("## Top functions (≥ 0.7 % self time)\n\n```\n" + "\n".join(top[:45]) + "\n```\n")
    return None


def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def summary(values):
    if not values:
        return None, None, None
    return statistics.median(values), min(values), max(values)


def cell(values, errors):
    med, lo, hi = summary(values)
    if med is None:
        return "failed: " + (errors[0] if errors else "no result")
    text = fmt(med)
    if len(values) > 1:
        text += f" ({fmt(lo)}–{fmt(hi)})"
    if errors:
        text += f" [{len(errors)} failed]"
    return text


def ratio(key, kernel_med, ustack_med):
    if kernel_med is None or ustack_med is None or kernel_med == 0:
        return None
    return ustack_med / kernel_med


def paired_ratios(kernel_by_rep, ustack_by_rep):
    """ustack / kernel within each repetition that has both: the two ran
    seconds apart, so the machine's drift between repetitions cancels."""
    return [ustack_by_rep[r] / kernel_by_rep[r] for r in sorted(kernel_by_rep)
            if r in ustack_by_rep and kernel_by_rep[r] != 0]


def tw_scale(bins):
    """The existing 1 M TIME_WAIT bench (stack only) and the kernel's
    TIME_WAIT object size (tw_sock_TCP in /proc/slabinfo)."""
    out = {}
    try:
        r = sh([os.path.join(bins.dir, "bench_time_wait_scale")], timeout=600)
        out["text"] = r.stdout.strip()
        for line in r.stdout.splitlines():
            cols = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cols) >= 4 and cols[0].isdigit():
                out[int(cols[0])] = dict(bind_ns=float(cols[1]), connect_ns=float(cols[2]), bytes=float(cols[3]))
    except (BenchError, subprocess.TimeoutExpired, OSError) as e:
        out["error"] = str(e)
    try:
        with open("/proc/slabinfo") as f:
            for line in f:
                if line.startswith("tw_sock_TCP "):
                    out["kernel_tw_bytes"] = int(line.split()[3])
    except OSError:
        pass
    return out


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return dict(cpu=cpu, cores=os.cpu_count(), mem=mem, kernel=platform.release(),
                load=" ".join(f"{x:.2f}" for x in os.getloadavg()),
                commit=commit + (" (with uncommitted changes)" if dirty else ""))


def chart(rows, path):
    """Bars of ustack/kernel per metric (inverted for lower-is-better, so
    up is always better), TAP and AF_PACKET side by side, log scale."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        return "gnuplot not installed (apt-get install gnuplot-nox): no chart"
    data = path + ".dat"
    with open(data, "w") as f:
        for label, qt, qp in rows:
            f.write('"{}" {} {}\n'.format(label.replace('"', "'"), qt if qt else "NaN", qp if qp else "NaN"))
    script = f"""
set terminal pngcairo size 1200,650 font "sans,9" noenhanced
set bmargin 12
set rmargin 16
set output "{path}"
set title "ustack relative to the kernel, same run (1 = parity, higher is better; latency and memory inverted)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [0.01:10]
set grid ytics
set xtics rotate by -35 scale 0
set key top right
set arrow from graph 0, first 1 to graph 1, first 1 nohead lc rgb "black" dt 2
plot "{data}" using 2:xtic(1) title "TAP" lc rgb "#4477aa", "" using 3 title "AF_PACKET" lc rgb "#ee6677"
"""
    r = subprocess.run([gnuplot], input=script, capture_output=True, text=True)
    os.unlink(data)
    if r.returncode != 0:
        return "gnuplot failed: " + last_line(r.stderr)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "bin"), help="the build's bin directory")
    ap.add_argument("--out", default=HERE, help="where RESULTS.md and ratios.png go")
    ap.add_argument("--only", default="", help="comma-separated workload names (for iteration)")
    ap.add_argument("--profile", default="", metavar="WORKLOAD[:tap|packet]",
                    help="only profile WORKLOAD under ustack with perf into PROFILE.md (e.g. bulk1_up:tap)")
    args = ap.parse_args()
    bins = Bins(args.bin)
    os.makedirs(args.out, exist_ok=True)

    if os.geteuid() != 0:
        sys.exit("bench/run.py: needs root (private network namespaces, TAP, AF_PACKET)")
    for prog in ("peer", "rr", "crr", "bulk", "churn", "idle", "restart"):
        if not os.access(bins.prog(prog), os.X_OK):
            sys.exit(f"bench/run.py: {bins.prog(prog)} not built (make bench builds it)")
    if args.profile:
        workload, _, config = args.profile.partition(":")
        problem = profile(bins, workload, config or "tap", os.path.join(args.out, "PROFILE.md"))
        if problem:
            sys.exit("bench/run.py --profile: " + problem)
        log(f"wrote {os.path.join(args.out, 'PROFILE.md')}")
        return

    started = time.time()
    info = machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    only = set(filter(None, args.only.split(",")))

    unavailable = {}
    for config in ("tap", "packet"):
        reason = probe_ustack(bins, config)
        if reason:
            unavailable[config] = reason
            log(f"ustack {config}: not available ({reason})")
    configs = [c for c in CONFIGS if c not in unavailable]

    values = {}  # (metric, config) → [values]
    by_rep = {}  # (metric, config) → {repetition: value}, for the paired ratios
    errors = {}  # (metric, config) → [messages]
    notes = []
    cgroup = MemoryCgroup.create()
    try:
        for rep in range(P["reps"]):
            for name, fn, metrics_of in WORKLOADS:
                if only and name not in only:
                    continue
                if (name == "scale" and rep >= P["scale_reps"]) or (name == "restart" and rep >= P["restart_reps"]):
                    continue
                with Topology(bins) as topo:
                    # The order rotates from one repetition to the next: a
                    # slow spell of this shared VM (the kernel's own crr
                    # went 4 600 -> 9 800 /s within one run) then lands on
                    # each configuration in turn, not always on the last.
                    for config in configs[rep % len(configs):] + configs[:rep % len(configs)]:
                        t0 = time.time()
                        try:
                            out = w_scale(topo, config, cgroup) if name == "scale" else fn(topo, config)
                            note = out.pop("_note", None)
                            if note:
                                notes.append(f"{name} {CONFIG_TITLE[config]} rep {rep + 1}: {note}")
                            for k, v in out.items():
                                values.setdefault((k, config), []).append(v)
                                by_rep.setdefault((k, config), {})[rep] = v
                            log(f"rep {rep + 1} {name:13} {config:7} {time.time() - t0:5.1f} s  " +
                                " ".join(f"{k}={fmt(v)}" for k, v in out.items()))
                        except BenchError as e:
                            for k in metrics_of:
                                errors.setdefault((k, config), []).append(str(e))
                            log(f"rep {rep + 1} {name:13} {config:7} FAILED: {e}")
    finally:
        if cgroup is not None:
            cgroup.remove()

    tw = tw_scale(bins) if not only or "tw" in only else {}
    elapsed = time.time() - started

    # The table.
    header = ["workload", "metric", "kernel (veth)", "ustack TAP", "ratio", "ustack AF_PACKET", "ratio", "target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    chart_rows = []
    per_rep_lines = {}  # (workload, metric) → per configuration: its paired ratios
    for key, wl, metric, better, target, check in ROWS:
        if not any((key, c) in values or (key, c) in errors for c in CONFIGS):
            continue
        # "equal" rows compare the minimum over repetitions: the first
        # EADDRNOTAVAIL with tw_reuse=0 comes once every port of the range is
        # in TIME_WAIT, and a repetition may see a few more connections when
        # a TIME_WAIT entry ends early (the kernel itself gives 1 000-1 024).
        pick = 1 if better == "equal" else 0
        kmed = summary(values.get((key, "kernel"), []))[pick]
        row = [wl, metric, "n/a" if better == "ustack only" else
               cell(values.get((key, "kernel"), []), errors.get((key, "kernel"), []))]
        ratios = []
        for config in ("tap", "packet"):
            if config in unavailable:
                row += ["ustack: not available", "–"]
                ratios.append(None)
                continue
            umed = summary(values.get((key, config), []))[pick]
            q = ratio(key, kmed, umed)
            if better in ("higher", "lower"):
                paired = paired_ratios(by_rep.get((key, "kernel"), {}), by_rep.get((key, config), {}))
                if paired:
                    q = statistics.median(paired)
                    if len(paired) > 1:
                        per_rep_lines.setdefault((wl, metric), []).append(
                            f"{CONFIG_TITLE[config]} {' '.join(fmt(x) for x in paired)} (median {fmt(q)}; "
                            f"ratio of the medians {fmt(ratio(key, kmed, umed))})")
            mark = ""
            if better == "zero":
                mark = "" if umed is None else (" ✓" if umed == 0 else " ✗")
            elif q is not None and check is not None:
                mark = " ✓" if check(q) else " ✗"
            row += [cell(values.get((key, config), []), errors.get((key, config), [])),
                    (fmt(q) + mark) if q is not None else ("–" + mark)]
            ratios.append(q)
        row.append(target)
        lines.append("| " + " | ".join(row) + " |")
        if better in ("higher", "lower"):
            inv = [None if q in (None, 0) else (q if better == "higher" else 1 / q) for q in ratios]
            chart_rows.append((f"{wl}: {metric}", inv[0], inv[1]))
    if tw:
        big = tw.get(1000000, {})
        lines.append("| TIME_WAIT 1 M | bytes/entry | {} | {} | {} | (stack only: bench_time_wait_scale) | – | ≤ 64 bytes |"
                     .format(f"{tw['kernel_tw_bytes']} (tw_sock_TCP slab object)" if "kernel_tw_bytes" in tw else "?",
                             fmt(big.get("bytes")) if big else "failed: " + tw.get("error", "?"),
                             fmt(big["bytes"] / tw["kernel_tw_bytes"]) if big and "kernel_tw_bytes" in tw else "–"))
        if big:
            lines.append(f"| TIME_WAIT 1 M | bind / connect ns per op | – | {fmt(big['bind_ns'])} / "
                         f"{fmt(big['connect_ns'])} | – | (stack only) | – | O(1): same as at 1 k "
                         f"({fmt(tw.get(1000, {}).get('bind_ns'))} / {fmt(tw.get(1000, {}).get('connect_ns'))}) |")
    table = "\n".join(lines)
    print(table)

    png = os.path.join(args.out, "ratios.png")
    chart_problem = chart(chart_rows, png) if chart_rows and len(unavailable) < 2 else "no ustack figures"

    md = [
        "# ustack vs the Linux kernel — benchmark results",
        "",
        f"Written by `make bench` (bench/run.py{', BENCH_QUICK=1' if QUICK else ''}) on {date}, "
        f"in {elapsed / 60:.1f} min.",
        "",
        f"- machine: {info['cpu']}, {info['cores']} cores, {info['mem']}, Linux {info['kernel']}; "
        f"load average at start {info['load']} (the machine is shared: figures move with its load)",
        f"- ustack commit: {info['commit']}",
        f"- {P['reps']} repetition(s) per figure (restart: {P['restart_reps']} run of {P['restarts']} restarts, "
        f"median and max over the restarts; scale: {P['scale_reps']} run): median (min–max). Ratio = the median over "
        "the repetitions of ustack / kernel within each repetition (a repetition runs the three configurations "
        "back to back in a fresh topology, in an order that rotates from one repetition to the next; the "
        "per-repetition ratios and the ratio of the medians are listed below the table); the tw_reuse=0 count "
        "compares the minima. ✓/✗ against the target of issue 7.",
        "- kernel: the program natively in its own namespace over veth; ustack: the same binary under "
        "`ustack-run --mode inproc` (restart and scale: `--mode daemon`; restart needs the host that keeps "
        "TIME_WAIT across restarts) "
        "over a TAP, and over a veth end through AF_PACKET; the peer is one kernel process (bench_peer) for all.",
        f"- rr/crr {P['rr_s']:g} s each (the busy-poll rows: ustack-run --busy-poll {BUSY_POLL_US}, the host "
        f"spinning that long after each event before it sleeps; their kernel figures are the kernel as always); bulk {P['bulk_bytes'] / 2**20:.0f} MiB per direction (time limit "
        f"{P['bulk_limit_s']:g} s: a capped run counts what arrived); churn from ports "
        f"{CHURN_RANGE[0]}–{CHURN_RANGE[1]}, each connection closed by us at once: {P['churn_slow_s']:g} s with "
        "Linux's default tcp_tw_reuse_delay (1 s: a port returns 1 s after entering TIME_WAIT, so 1 000 ports cap "
        f"both stacks at 1 000 connections/s and EADDRNOTAVAIL is what a faster client meets meanwhile), "
        f"{P['churn_s']:g} s with tcp_tw_reuse_delay=1 ms (the stack's own speed); with tcp_tw_reuse=0 graceful "
        "closes until the first EADDRNOTAVAIL, tcp_rfc1337=1 on both stacks (no RST ends a TIME_WAIT entry early: "
        "see churn_flags in run.py); restart: "
        f"{P['restart_fill']} TIME_WAIT entries then "
        f"{P['restarts']} restarts; scale: {P['idle_conns']} idle connections opened one after the other ({P['scale_reps']} run), "
        "memory = growth of a memory cgroup holding the program and its ustackd (daemon mode: in-process, the "
        "host's end of every socketpair would double the fds), kernel socket objects included.",
    ]
    for config, reason in unavailable.items():
        md.append(f"- ustack {CONFIG_TITLE[config].split()[-1]}: not available ({reason})")
    md += ["", table, ""]
    if chart_problem is None:
        md += ["![ratios](ratios.png)", ""]
    else:
        md += [f"(chart: {chart_problem})", ""]
    if per_rep_lines:
        md += ["## Ratios per repetition (ustack / kernel, in repetition order)", ""]
        md += [f"- {wl}, {metric}: " + "; ".join(parts) for (wl, metric), parts in per_rep_lines.items()] + [""]
    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if tw.get("text"):
        md += ["## TIME_WAIT scale (bench_time_wait_scale)", "", tw["text"], ""]
    profile_md = os.path.join(args.out, "PROFILE.md")
    if os.path.exists(os.path.join(HERE, "ANALYSIS.md")):
        md += ["Where the time goes and what would close the gaps: ANALYSIS.md.", ""]
    if os.path.exists(profile_md):
        md += ["CPU profile of the hottest ustack workload: PROFILE.md (`bench/run.py --profile`).", ""]
    with open(os.path.join(args.out, "RESULTS.md"), "w") as f:
        f.write("\n".join(md))
    log(f"wrote {os.path.join(args.out, 'RESULTS.md')}" + ("" if chart_problem else f" and {png}") +
        f" in {elapsed / 60:.1f} min")


if __name__ == "__main__":
    main()
