#!/usr/bin/env bash
# The same load on three brokers, interleaved, so that a reader sees whether a figure is the
# client's or the broker's: the embedded broker (fennec broker), mosquitto, and aedes (Node.js).
# Every load is `fennec bench pubsub` with MQTT 3.1.1 (aedes has no MQTT 5); the table gives the
# median of RUNS runs of each. Run from the repository root: make bench-brokers.
set -euo pipefail
RUNS=${RUNS:-3}
DURATION=${DURATION:-5s}
LOAD=${LOAD:--n 4 --subscribers 4}
RATE=${RATE:-1000} # messages per second per publisher, for the paced load
peers="${FENNEC_PEERS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fennec-peers}"
tmp=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done # by PID, never by name
	rm -rf "$tmp"
}
trap cleanup EXIT

go build -o "$tmp/fennec" ./cmd/fennec
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

declare -A port
port[embedded]=$(free_port)
"$tmp/fennec" broker --listen "tcp://127.0.0.1:${port[embedded]}" --pki-dir "$tmp/pki" --quiet >"$tmp/embedded.log" 2>&1 &
pids+=($!)

mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
port[mosquitto]=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nset_tcp_nodelay true\n' "${port[mosquitto]}" >"$tmp/mosquitto.conf"
chmod 755 "$tmp" && chmod 644 "$tmp/mosquitto.conf"
"$mosq" -c "$tmp/mosquitto.conf" >"$tmp/mosquitto.log" 2>&1 &
pids+=($!)

brokers=(embedded mosquitto)
if command -v node >/dev/null && [ -d "$peers/node_modules/aedes" ]; then
	port[aedes]=$(free_port)
	(cd "$peers" && NODE_PATH="$peers/node_modules" exec node -e "const a=require('aedes')();require('net').createServer(a.handle).listen(${port[aedes]},'127.0.0.1')") >"$tmp/aedes.log" 2>&1 &
	pids+=($!)
	brokers+=(aedes)
else
	echo "aedes is not installed in $peers (make deps installs it): measuring without it" >&2
fi
sleep 1

versions="embedded: mochi-mqtt $(grep 'mochi-mqtt/server/v2 ' go.mod | awk '{print $2}'); $("$mosq" -h 2>/dev/null | head -1 || true)"
[ -n "${port[aedes]:-}" ] && versions="$versions; aedes $(node -p "require('$peers/node_modules/aedes/package.json').version") on Node.js $(node --version)"

# a broker that dies is reported and left out of the later runs
declare -A dead
for run in $(seq "$RUNS"); do
	for load in flood paced; do
		for qos in 0 1; do
			for i in "${!brokers[@]}"; do
				b=${brokers[$(((i + run) % ${#brokers[@]}))]} # rotate the order between runs
				[ -n "${dead[$b]:-}" ] && continue
				extra=""
				[ "$load" = paced ] && extra="--rate $RATE"
				echo "run $run, $load, QoS $qos: $b" >&2
				# shellcheck disable=SC2086
				if ! "$tmp/fennec" bench pubsub -h 127.0.0.1 -p "${port[$b]}" -V 311 -q "$qos" --duration "$DURATION" $LOAD $extra \
					--progress none --json >"$tmp/r-$b-$load-$qos-$run.json" 2>"$tmp/err"; then
					dead[$b]="in run $run, $load load, QoS $qos: $(grep -m1 -E 'Error' "$tmp/$b.log" || head -1 "$tmp/err")"
					echo "$b failed ${dead[$b]}" >&2
					rm -f "$tmp/r-$b-$load-$qos-$run.json"
				fi
			done
		done
	done
done
for b in "${!dead[@]}"; do echo "$b stopped ${dead[$b]}" >"$tmp/dead-$b"; done

python3 - "$tmp" "$versions" "$LOAD" "$DURATION" "$RATE" "${brokers[@]}" <<'EOF'
import glob, json, statistics, sys
tmp, versions, load, duration, rate, brokers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6:]
print(f"fennec bench pubsub -V 311 {load} --duration {duration} (flood: unpaced; paced: --rate {rate} per publisher); medians of interleaved runs; {versions}\n")
print("| load | QoS | broker | runs | received msg/s | sent msg/s | end-to-end p50 | p99 | lost | duplicates |")
print("|---|---|---|---|---|---|---|---|---|---|")
for l in ("flood", "paced"):
    for q in (0, 1):
        for b in brokers:
            rs = [json.load(open(f)) for f in sorted(glob.glob(f"{tmp}/r-{b}-{l}-{q}-*.json"))]
            if not rs:
                print(f"| {l} | {q} | {b} | 0 | – | – | – | – | – | – |")
                continue
            m = lambda f: statistics.median(f(r) for r in rs)
            print(f"| {l} | {q} | {b} | {len(rs)} | {m(lambda r: r['received_per_s']):,.0f} | {m(lambda r: r['sent_per_s']):,.0f} | "
                  f"{m(lambda r: r['latency']['p50_us']) / 1000:.2f} ms | {m(lambda r: r['latency']['p99_us']) / 1000:.2f} ms | "
                  f"{m(lambda r: r['lost']):.0f} | {m(lambda r: r['receive']['duplicates']):.0f} |")
for f in glob.glob(f"{tmp}/dead-*"):
    print("\n" + open(f).read().strip())
EOF
