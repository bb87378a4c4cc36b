#!/usr/bin/env bash
# Runs franz-go's own kgo test suite (the *_test.go files of
# github.com/twmb/franz-go/pkg/kgo at the version go.mod pins) against a
# real Gregor broker. `make conformance` calls it.
#
# What it does:
#   1. builds gregor (and scripts/freeport) into a temporary directory, so
#      a bin/gregor someone else is running is left alone;
#   2. starts `gregor serve` with a fresh temporary data dir on four free
#      loopback ports (Kafka, HTTP, etcd client, etcd peer) and waits for
#      /readyz; fixed ports such as 9092/2379 may be taken on a shared box;
#   3. runs `go test -v github.com/twmb/franz-go/pkg/kgo` with the variables
#      franz-go's helpers_test.go reads: KGO_SEEDS (our broker), KGO_TEST_RF=1
#      (one broker), KGO_TEST_RECORDS (records per ETL test; franz-go's
#      default of 500000 takes far too long for CI). TLS, SASL, chaos and
#      "unsafe" transaction knobs are unset so a developer's shell cannot
#      leak them in;
#   4. prints one line per top-level test result, and on failure the last
#      50 lines of the broker log; always stops the broker (SIGTERM, SIGKILL
#      after 30 s) and removes the data dir. Exits with go test's status.
#
# The test dependencies of kgo (klauspost/compress, pierrec/lz4, kmsg) are
# all in Gregor's go.mod already, so the tests build from this module's
# build list: no extra module, no go.mod change.
#
# Knobs (environment):
#   CONFORMANCE_RUN      regexp for go test -run (default: every test)
#   CONFORMANCE_SKIP     regexp for go test -skip (default: none)
#   CONFORMANCE_TIMEOUT  go test -timeout (default 10m)
#   CONFORMANCE_RECORDS  KGO_TEST_RECORDS (default 2000)
#   CONFORMANCE_BROKERS  1 (default), or 3: a cluster of three brokers with an
#                        embedded etcd quorum, tested with KGO_TEST_RF=3
#   CONFORMANCE_OUT      directory for the logs (default bin/conformance)
#   CONFORMANCE_LOG_LEVEL gregor --log-level (default warn)
#   KGO_LOG_LEVEL        franz-go client logs in tests: info (default), debug, none
#   GO                   the go command (default go)
#
# Usage: scripts/conformance.sh   (or: make conformance)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

go_cmd=${GO:-go}
run=${CONFORMANCE_RUN:-}
skip=${CONFORMANCE_SKIP:-}
timeout=${CONFORMANCE_TIMEOUT:-10m}
records=${CONFORMANCE_RECORDS:-2000}
brokers=${CONFORMANCE_BROKERS:-1}
case "$brokers" in
1 | 3) ;;
*)
	echo "conformance: CONFORMANCE_BROKERS must be 1 or 3, not $brokers" >&2
	exit 2
	;;
esac
out=${CONFORMANCE_OUT:-bin/conformance}
log_level=${CONFORMANCE_LOG_LEVEL:-warn}

gow() { "$go_cmd" "$@"; }

mkdir -p "$out"
out=$(cd "$out" && pwd)
broker_log="$out/gregor.log"
test_log="$out/kgo-test.log"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gregor-conformance.XXXXXX")
broker_pids=()

# stop_brokers sends SIGTERM to every broker, waits at most 30 s for each,
# then SIGKILLs.
stop_brokers() {
	local pid
	for pid in "${broker_pids[@]}"; do
		kill -TERM "$pid" 2>/dev/null || true
	done
	for pid in "${broker_pids[@]}"; do
		for _ in $(seq 1 300); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "conformance: gregor $pid did not exit within 30s of SIGTERM; killing it" >&2
			kill -KILL "$pid" 2>/dev/null || true
		fi
		local rc=0
		wait "$pid" 2>/dev/null || rc=$?
		if [ "$rc" -ne 0 ]; then
			echo "conformance: gregor $pid exited with status $rc" >&2
		fi
	done
	broker_pids=()
}

# brokers_alive reports whether every started broker still runs.
brokers_alive() {
	local pid
	for pid in "${broker_pids[@]}"; do
		kill -0 "$pid" 2>/dev/null || return 1
	done
}

cleanup() {
	stop_brokers
	rm -rf "$tmp"
}
trap cleanup EXIT
# Turn Ctrl-C / SIGTERM into a normal exit so the EXIT trap stops the broker.
trap 'exit 130' INT
trap 'exit 143' TERM

echo "conformance: building gregor"
CGO_ENABLED=0 gow build -trimpath -o "$tmp/gregor" ./cmd/gregor
gow build -o "$tmp/freeport" ./scripts/freeport

# start_brokers starts $brokers gregor processes on fresh free ports (one
# embedded etcd quorum when there are three) and waits up to 60 s for
# each /readyz. It returns non-zero if one exits first (for example
# because another process took one of the ports between freeport and the
# bind).
start_brokers() {
	local ports i members="" kafka_addrs=() http_addrs=()
	mapfile -t ports < <("$tmp/freeport" $((4 * brokers)))
	for ((i = 0; i < brokers; i++)); do
		kafka_addrs+=("127.0.0.1:${ports[4 * i]}")
		http_addrs+=("127.0.0.1:${ports[4 * i + 1]}")
		members+="${members:+,}$((i + 1))=http://127.0.0.1:${ports[4 * i + 3]}"
	done
	rm -rf "$tmp/data"
	for ((i = 0; i < brokers; i++)); do
		local extra=()
		if [ "$brokers" -gt 1 ]; then
			extra=(--node-id "$((i + 1))" --etcd-initial-cluster "$members")
		fi
		mkdir -p "$tmp/data/$i"
		"$tmp/gregor" serve \
			--data-dir "$tmp/data/$i" \
			--listen "${kafka_addrs[i]}" \
			--http-addr "${http_addrs[i]}" \
			--etcd-client-addr "127.0.0.1:${ports[4 * i + 2]}" \
			--etcd-peer-addr "127.0.0.1:${ports[4 * i + 3]}" \
			"${extra[@]}" \
			--log-level "$log_level" >>"$broker_log" 2>&1 &
		broker_pids+=($!)
	done
	for ((i = 0; i < brokers; i++)); do
		local ready=""
		for _ in $(seq 1 600); do
			if ! brokers_alive; then
				stop_brokers
				return 1
			fi
			if curl -sf --max-time 1 "http://${http_addrs[i]}/readyz" >/dev/null 2>&1; then
				ready=1
				break
			fi
			sleep 0.1
		done
		if [ -z "$ready" ]; then
			echo "conformance: gregor ${kafka_addrs[i]} not ready after 60s" >&2
			stop_brokers
			return 1
		fi
	done
	seeds=$(IFS=,; echo "${kafka_addrs[*]}")
}

: >"$broker_log"
started=""
for attempt in 1 2 3; do
	if start_brokers; then
		started=1
		break
	fi
	echo "conformance: gregor did not start (attempt $attempt)" >&2
done
if [ -z "$started" ]; then
	echo "conformance: giving up; last 50 lines of $broker_log:" >&2
	tail -n 50 "$broker_log" >&2
	exit 1
fi
echo "conformance: $brokers gregor broker(s) (pids ${broker_pids[*]}) on $seeds, logs in $out"

unset KGO_TEST_TLS KGO_TEST_SCRAM KGO_TEST_SCRAM_SEEDS KGO_TEST_CHAOS KGO_TEST_UNSAFE KGO_TEST_MAX_TOPIC_PARTS
export KGO_SEEDS="$seeds"
export KGO_TEST_RF="$brokers"
export KGO_TEST_RECORDS="$records"

args=(test -v -count=1 -timeout "$timeout")
if [ -n "$run" ]; then
	args+=(-run "$run")
fi
if [ -n "$skip" ]; then
	args+=(-skip "$skip")
fi
args+=(github.com/twmb/franz-go/pkg/kgo)

echo "conformance: go ${args[*]} (KGO_TEST_RECORDS=$records)"
start=$(date +%s)
status=0
gow "${args[@]}" 2>&1 | tee "$test_log" || status=$?
elapsed=$(($(date +%s) - start))

# Top-level results are the unindented "--- PASS/FAIL/SKIP" lines of -v.
echo
echo "conformance: top-level results (${elapsed}s, full output in $test_log):"
grep -E '^--- (PASS|FAIL|SKIP): ' "$test_log" | sed 's/^/  /' || true
for r in PASS FAIL SKIP; do
	printf '  %s: %s\n' "$r" "$(grep -cE "^--- $r: " "$test_log" || true)"
done
if grep -q '^panic: test timed out' "$test_log"; then
	echo "conformance: go test hit -timeout $timeout; tests still running then:"
	sed -n '/^panic: test timed out/,/^$/p' "$test_log" | sed 's/^/  /'
fi

if [ "$status" -ne 0 ]; then
	if ! brokers_alive; then
		echo "conformance: a gregor broker is no longer running" >&2
	fi
	echo "conformance: FAILED (go test status $status); last 50 lines of $broker_log:" >&2
	tail -n 50 "$broker_log" >&2
fi
exit "$status"
