#!/usr/bin/env bash
# perf.sh - upstream vs qpd QEMU on the workloads qpd is for, side by side.
#
# Each workload is two hyperfine invocations with both builds, one in each
# order (same guest,
# same plugin, same arguments), so both see the same machine; the ratio
# qpd/upstream of the mean wall time and of the mean CPU time (user +
# system) is what to read: on these noisy 2-core VMs absolute times swing
# by tens of percent between runs, ratios within one run much less.
#
#   no plugin        guest-threads 4: what loading qpd costs a plain run
#   bb inline 2T     spin 2 under libbb.so,inline=on: scoreboard counters
#                    of two vCPUs (upstream packs them 8 bytes apart)
#   mem inline 2T    spin 2 under libmem.so,inline=true
#   storm 256T       guest-threads 256 under libbb.so,inline=on: 256 vCPU
#                    indices appear (upstream stops every vCPU and flushes
#                    all translated code at 16, 32, 64, 128, 256)
#
# Informational: prints the table and writes perf.json; exits non-zero only
# when a run fails (hyperfine stops on a non-zero exit status).
#
# Environment: QPD_UP_BUILD, QPD_QPD_BUILD (required), QPD_FULL (0: 5 runs
# per command, 1: 10), QPD_LOGDIR.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

UP=${QPD_UP_BUILD:?QPD_UP_BUILD: upstream build directory}
QPD=${QPD_QPD_BUILD:?QPD_QPD_BUILD: qpd build directory}
LOGDIR=${QPD_LOGDIR:-$QPD_CACHE/logs}/perf
RUNS=5
[ "${QPD_FULL:-0}" = 1 ] && RUNS=10
mkdir -p "$LOGDIR"

# guest NAME: builds qemu/tests/NAME.c as a static guest, once.
guest() {
	local out=$LOGDIR/$1
	if [ ! -x "$out" ] || [ "$QPD_REPO/qemu/tests/$1.c" -nt "$out" ]; then
		gcc -O2 -Wall -static -pthread -o "$out" "$QPD_REPO/qemu/tests/$1.c"
	fi
	echo "$out"
}

# compare LABEL PLUGIN GUEST ARGS...: one hyperfine run of both builds.
# PLUGIN is "" or a tests/tcg/plugins library with its arguments.
compare() {
	local label=$1 plugin=$2; shift 2
	local json=$LOGDIR/${label// /_}.json cmd_up cmd_qpd
	cmd_up="$UP/qemu-x86_64"
	cmd_qpd="$QPD/qemu-x86_64"
	if [ -n "$plugin" ]; then
		cmd_up+=" -plugin $UP/tests/tcg/plugins/$plugin"
		cmd_qpd+=" -plugin $QPD/tests/tcg/plugins/$plugin"
	fi
	qpd_log "perf: $label"
	# Both orders: the command hyperfine runs second is measurably favoured
	# on these VMs (a few per cent), so each build gets each place once.
	hyperfine -N -w 1 -r "$RUNS" --export-json "$json.a" \
		-n upstream "$cmd_up $*" -n qpd "$cmd_qpd $*" \
		>"$LOGDIR/${label// /_}.txt" 2>&1 &&
	hyperfine -N -w 1 -r "$RUNS" --export-json "$json.b" \
		-n qpd "$cmd_qpd $*" -n upstream "$cmd_up $*" \
		>>"$LOGDIR/${label// /_}.txt" 2>&1 ||
		{ cat "$LOGDIR/${label// /_}.txt" >&2; return 1; }
	python3 - "$label" "$json" <<'EOF'
import json, statistics, sys
label, path = sys.argv[1], sys.argv[2]
runs = {"upstream": [], "qpd": []}
for part in (".a", ".b"):
    for x in json.load(open(path + part))["results"]:
        runs[x["command"]].append(x)
# Every run of both invocations; CPU = mean user + system (hyperfine 1.15
# exports those as means per invocation).
merged = {}
for name, xs in runs.items():
    times = [t for x in xs for t in x["times"]]
    merged[name] = {"command": name, "times": times,
                    "mean": statistics.mean(times),
                    "stddev": statistics.stdev(times),
                    "cpu": statistics.mean(x["user"] + x["system"]
                                           for x in xs)}
json.dump({"results": list(merged.values())}, open(path, "w"), indent=1)
u, q = merged["upstream"], merged["qpd"]
print("| %s | %.3f ± %.3f | %.3f ± %.3f | %.2f | %.3f | %.3f | %.2f |" % (
    label, u["mean"], u["stddev"], q["mean"], q["stddev"],
    q["mean"] / u["mean"], u["cpu"], q["cpu"], q["cpu"] / u["cpu"]))
EOF
}

main() {
	local spin threads rows=() failed=0
	spin=$(guest spin)
	threads=$(guest guest-threads)
	{
		echo "### upstream vs qpd, hyperfine -N -w 1 -r $RUNS, in both orders (same run)"
		echo
		echo "| workload | upstream s | qpd s | wall ratio | upstream CPU s | qpd CPU s | CPU ratio |"
		echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
	} >"$LOGDIR/table.md"
	compare "no plugin" "" "$threads" 4 20000000 >>"$LOGDIR/table.md" || failed=1
	compare "bb inline 2T" "libbb.so,inline=on" "$spin" 2 20000000 \
		>>"$LOGDIR/table.md" || failed=1
	compare "mem inline 2T" "libmem.so,inline=true" "$spin" 2 20000000 \
		>>"$LOGDIR/table.md" || failed=1
	compare "storm 256T" "libbb.so,inline=on" "$threads" 256 400000 \
		>>"$LOGDIR/table.md" || failed=1
	cat "$LOGDIR/table.md"
	python3 - "$LOGDIR" >"$LOGDIR/perf.json" <<'EOF'
import glob, json, os, sys
out = {}
for p in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    if os.path.basename(p) != "perf.json":
        out[os.path.basename(p)[:-5]] = json.load(open(p))["results"]
json.dump(out, sys.stdout, indent=1)
EOF
	return "$failed"
}

main "$@"
