#!/usr/bin/env bash
# Proof that a fresh clone needs nothing but Python 3.11 and the package registries: clone the
# committed HEAD into a temporary folder, unset every *_URL variable (so the embedded servers
# are used, as on a new machine), empty the package caches, run `make test` there, then `make run` until GET /healthz
# answers 200, then one Ctrl-C, after which nothing of that run may be left running.
#
# Usage: scripts/check-fresh-clone.sh        (KEEP_CLONE=1 keeps the temporary folder)
set -euo pipefail
set -m # background jobs get a process group of their own, as in a terminal

source_dir="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d /tmp/cpn-fresh-clone-XXXXXX)"
run_pid=""
started=$SECONDS

cleanup() {
    if [[ -n "$run_pid" ]] && kill -0 "$run_pid" 2>/dev/null; then
        kill -KILL -- "-$run_pid" 2>/dev/null || true
    fi
    if [[ "${KEEP_CLONE:-}" == 1 ]]; then
        echo "kept $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

step() { printf '\n== %s (%ds)\n' "$1" "$((SECONDS - started))"; }

step "cloning $(git -C "$source_dir" rev-parse --short HEAD) into $work/cpn-sync"
git clone --quiet --no-checkout "$source_dir" "$work/cpn-sync"
git -C "$work/cpn-sync" checkout --quiet --detach "$(git -C "$source_dir" rev-parse HEAD)"
# CI keeps a copy of shared/ beside the checkout; the tests read the seed document there.
if [[ -d "$source_dir/../shared" ]]; then
    ln -s "$(cd "$source_dir/../shared" && pwd)" "$work/shared"
fi

for variable in $(env | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*_URL\)=.*/\1/p'); do
    unset "$variable"
done
unset MAKEFLAGS MFLAGS MAKELEVEL
# An empty package cache, as on a new machine: every wheel comes from the registry by the lock.
export PIP_NO_CACHE_DIR=1 UV_CACHE_DIR="$work/uv-cache"
cd "$work/cpn-sync"

step "make test"
make test

step "make run"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
DATA_DIR="$work/data" PORT="$port" make run >"$work/run.log" 2>&1 &
run_pid=$!
if ! python3 - "$port" <<'EOF'; then
import sys, time, urllib.request
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/healthz", timeout=2) as r:
            if r.status == 200:
                print("GET /healthz: 200", r.read().decode())
                sys.exit(0)
    except OSError:
        time.sleep(0.5)
sys.exit("no 200 from /healthz within 120 s")
EOF
    tail -n 40 "$work/run.log"
    exit 1
fi
grep -E '^(webhook URL|signing secret):' "$work/run.log" | sed 's/\(whsec_....\).*/\1…/'

step "Ctrl-C"
kill -INT -- "-$run_pid"
for _ in $(seq 1 80); do
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.5
done
if kill -0 "$run_pid" 2>/dev/null; then
    echo "make run still running 40 s after Ctrl-C" >&2
    tail -n 40 "$work/run.log"
    exit 1
fi
wait "$run_pid" || true
run_pid=""
tail -n 2 "$work/run.log"
sleep 2 # processes that have just exited may still be waiting for their parent to reap them
# (the folder goes through the environment, so that this awk does not match itself)
left="$(ps -eo pid=,stat=,args= | DIR="$work" awk '$2 !~ /^Z/ && index($0, ENVIRON["DIR"])' || true)"
if [[ -n "$left" ]]; then
    echo "left running after Ctrl-C:" >&2
    echo "$left" >&2
    exit 1
fi

step "fresh clone: make test passed; make run answered 200 and stopped on one Ctrl-C"
