#!/usr/bin/env bash
# make demo: ustack's port semantics, shown with unmodified programs.
#
#   tools/demo.sh BUILD_DIR
#
# Everything happens in a private network namespace (unshare -n) with one
# TAP device: the kernel is 10.77.0.1 on it, ustack is 10.77.0.2 behind it.
# Nothing touches the machine's own network, and the namespace — with every
# process the demo started — is gone when the script ends, however it ends.
set -euo pipefail

BUILD=${1:-build}
BUILD=$(cd "$BUILD" && pwd)
BIN=$BUILD/bin

if [[ "${1:-}" != "--inside" && "${2:-}" != "--inside" ]]; then
    if [[ $(id -u) != 0 ]]; then
        echo "make demo needs root (a private network namespace and a TAP device)" >&2
        exit 1
    fi
    for tool in unshare ip curl python3; do
        command -v "$tool" >/dev/null || { echo "demo: $tool is not installed (make deps)" >&2; exit 1; }
    done
    exec unshare --net -- bash "$0" "$BUILD" --inside
fi

KERNEL=10.77.0.1
STACK=10.77.0.2
TAP=ustap0
DEV=tap:$TAP
PY=/usr/bin/python3
[[ -x $PY ]] || PY=python3
WORK=$(mktemp -d /tmp/ustack-demo-XXXXXX)
PIDS=()

cleanup() {
    set +e
    exec 2>/dev/null  # no "Killed" notices for the servers stopped here
    for pid in "${PIDS[@]}"; do
        kill -9 "$pid" 2>/dev/null
    done
    "$BIN/ustackctl" --dev "$DEV" down >/dev/null 2>&1
    # Anything else still in this private namespace was started by the demo
    # (e.g. a program a killed launcher left behind): stop it by pid.
    local ours pid
    ours=$(readlink /proc/$$/ns/net)
    for p in /proc/[0-9]*; do
        pid=${p#/proc/}
        if [[ $pid != "$$" && $(readlink "$p/ns/net" 2>/dev/null) == "$ours" ]]; then
            kill -9 "$pid" 2>/dev/null
        fi
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

bold() { printf '\n\033[1m%s\033[0m\n' "$*"; }
say() { printf '  %s\n' "$*"; }
# Prints a command as typed, then its output, indented; never stops the demo.
show() {
    printf '  $ %s\n' "$*"
    "$@" 2>&1 | sed 's/^/    /' || true
}
ustackctl() { "$BIN/ustackctl" --dev "$DEV" "$@"; }
ctl() { ustackctl "$@"; }
RUN=("$BIN/ustack-run" --dev "$DEV" --addr "$STACK/24")
run() { "${RUN[@]}" "$@"; }

# Waits until the ustack host lists a listener on port $1.
wait_listen() {
    for _ in $(seq 200); do
        if ctl ss 2>/dev/null | grep -q "LISTEN.*:$1 "; then
            return 0
        fi
        sleep 0.05
    done
    echo "demo: nothing listened on $STACK:$1 in 10 s" >&2
    return 1
}

# Runs an executable in the background, remembering its pid for cleanup
# (an executable, not a shell function: $! must be the program itself, and
# ustack-run execs the program, so the pid stays the program's).
background() {
    "$@" &
    PIDS+=($!)
}

ip link set lo up
ip tuntap add dev $TAP mode tap
ip addr add $KERNEL/24 dev $TAP
ip link set $TAP up

mkdir -p "$WORK/www"
echo "<h1>hello from python3 -m http.server, running on ustack</h1>" >"$WORK/www/index.html"

bold "1. An unmodified python3 -m http.server on ustack, fetched by the kernel's curl"
say "In a private namespace: the kernel is $KERNEL on TAP $TAP, ustack is $STACK behind it."
say "ustack-run starts the ustack daemon for $DEV (TIME_WAIT 60 s, as Linux) and runs python under it."
background "${RUN[@]}" --time-wait 60000 -- "$PY" -m http.server 8000 --directory "$WORK/www" >"$WORK/server1.log" 2>&1
SERVER=$!
wait_listen 8000
show ustackctl ss
for i in 1 2 3; do
    printf '  $ curl http://%s:8000/  (fetch %d)\n' "$STACK" "$i"
    curl -sS --max-time 10 "http://$STACK:8000/" | sed 's/^/    /'
done
say "Each fetch was a TCP connection to ustack. http.server (HTTP/1.0) closes after its"
say "reply; each connection that ustack closed first (the active closer) is now in"
say "TIME_WAIT on ustack's side (curl may close first on some: those leave none):"
show ustackctl ss -t state time-wait

bold "2. Restart the server while those TIME_WAIT entries exist"
kill -9 "$SERVER"
wait "$SERVER" 2>/dev/null || true
for _ in $(seq 100); do
    ctl ss 2>/dev/null | grep -q "LISTEN.*:8000 " || break
    sleep 0.05
done
say "The server was killed (SIGKILL). Its listener is gone; its connections are in TIME_WAIT:"
show ustackctl ss
show ustackctl ss -t state time-wait
say ""
say "Restart WITHOUT SO_REUSEADDR. python3 -m http.server always sets it"
say "(HTTPServer.allow_reuse_address = 1), so this is the same module, run with"
say "that one attribute turned off (a 9-line wrapper script; the module's own"
say "dual-stack server and handler, otherwise unmodified):"
cat >"$WORK/no_reuse.py" <<'EOF'
import contextlib, functools, http.server, socket, sys
http.server.HTTPServer.allow_reuse_address = False  # the only change
class DualStackServer(http.server.ThreadingHTTPServer):  # as in http.server's __main__
    def server_bind(self):
        with contextlib.suppress(Exception):
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        return super().server_bind()
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
http.server.test(HandlerClass=handler, ServerClass=DualStackServer, port=int(sys.argv[1]))
EOF
set +e
run -- timeout 10 "$PY" "$WORK/no_reuse.py" 8000 "$WORK/www" >"$WORK/server2.log" 2>&1
status=$?
set -e
tail -n 1 "$WORK/server2.log" | sed 's/^/    /'
if grep -q "Address already in use" "$WORK/server2.log"; then
    say "=> EADDRINUSE: a TIME_WAIT entry owns 10.77.0.2:8000, and without SO_REUSEADDR on"
    say "   the new socket it conflicts — exactly what Linux does."
else
    say "=> UNEXPECTED (exit $status): the restart without SO_REUSEADDR did not fail with EADDRINUSE"
fi
say ""
say "Restart the unmodified python3 -m http.server (SO_REUSEADDR on, as on the old one):"
background "${RUN[@]}" -- "$PY" -m http.server 8000 --directory "$WORK/www" >"$WORK/server3.log" 2>&1
if wait_listen 8000; then
    printf '  $ curl http://%s:8000/\n' "$STACK"
    curl -sS --max-time 10 "http://$STACK:8000/" | sed 's/^/    /'
    say "=> it binds and serves while the old TIME_WAIT entries still exist:"
    say "   both the old and the new socket had SO_REUSEADDR, as Linux requires."
    show ustackctl ss -t state time-wait
else
    say "=> UNEXPECTED: the restart with SO_REUSEADDR did not listen"
    sed 's/^/    /' "$WORK/server3.log"
fi

bold "3. Connection churn: 50 ephemeral ports, tcp_tw_reuse off, then on"
# The kernel-side peer: accepts, and closes when the client does.
"$PY" - <<'EOF' >"$WORK/peer.log" 2>&1 &
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.77.0.1", 9001)); s.listen(512)
def hold(c):
    while c.recv(4096): pass
    c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=hold, args=(c,), daemon=True).start()
EOF
PIDS+=($!)
for _ in $(seq 100); do ss -Htln 'sport = :9001' | grep -q . && break; sleep 0.05; done
cat >"$WORK/churn.py" <<'EOF'
# Opens N connections, one every 25 ms, each closed by us first (so each
# leaves a TIME_WAIT entry on our side); stops at the first error.
import errno, socket, sys, time
n = int(sys.argv[1])
for i in range(1, n + 1):
    time.sleep(0.025)
    s = socket.socket()
    try:
        s.connect(("10.77.0.1", 9001))
    except OSError as e:
        print(f"connection {i}: connect() failed: {errno.errorcode[e.errno]} ({e.strerror})")
        sys.exit(1)
    s.close()
print(f"all {n} connections succeeded")
EOF
say "The ephemeral range shrinks to 50 ports; each connection is closed by the"
say "ustack side, so each leaves a TIME_WAIT entry on its port."
show ustackctl sysctl net.ipv4.ip_local_port_range="40000 40049"
show ustackctl sysctl net.ipv4.tcp_tw_reuse=0
say "\$ ustack-run -- python3 churn.py 60     (60 connections to $KERNEL:9001, one per 25 ms)"
set +e
run -- "$PY" "$WORK/churn.py" 60 2>&1 | sed 's/^/    /'
set -e
tw=$(ctl ss -t state time-wait 2>/dev/null | grep -c ':9001' || true)
say "TIME_WAIT entries toward $KERNEL:9001: $tw"
say "=> with tcp_tw_reuse=0, once all 50 ports are in TIME_WAIT toward the same peer,"
say "   connect() fails with EADDRNOTAVAIL, as on Linux."
say ""
sleep 1.1
show ustackctl sysctl net.ipv4.tcp_tw_reuse=1
say "(tcp_tw_reuse_delay is 1000 ms, Linux's default: the entries are old enough now)"
say "\$ ustack-run -- python3 churn.py 200    (the same pace: a port comes round every 1.25 s)"
set +e
run -- "$PY" "$WORK/churn.py" 200 2>&1 | sed 's/^/    /'
set -e
say "=> with tcp_tw_reuse=1 a new connection takes over a TIME_WAIT entry whose last"
say "   timestamp is older than tcp_tw_reuse_delay (RFC 7323 timestamps + PAWS keep"
say "   old segments out), so 200 connections go through 50 ports."

bold "Done"
say "Settings shown: --time-wait, tcp_tw_reuse, ip_local_port_range; see ustack-run --help."
say "Cleaning up: the namespace, the TAP, the daemon and the servers go away now."
