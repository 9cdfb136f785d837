#!/usr/bin/env bash
# user-checks.sh - qpd's QEMU-level checks in user mode (qemu-x86_64), run
# on an upstream build and a qpd build of the same QEMU source, side by side.
#
#   a. inline   QEMU's tests/tcg/plugins/libinline.so (asserts that callback
#               and inline counts agree) at 1, 16, 64 and 256 guest threads.
#   b. flushes  translated-code flushes counted with gdb (a breakpoint on
#               *do_tb_flush, or tb_flush__exclusive_or_serial from QEMU
#               10.2, whose commands count and continue), under
#               scoreboard plugins at 1/16/64/256 threads.  Upstream flushes
#               once more each time a vCPU index reaches the scoreboards'
#               capacity (16, 32, 64, ...); qpd must flush exactly as often
#               as with one thread (0 growth flushes).
#   c. reset    QEMU's libreset.so (if the version has it) and our
#               tests/plugin-reset.c, with 16 guest threads.
#   d. fork     tests/fork-threads.c (a 4-thread guest forking 3 children
#               that start 4 threads each) under every test plugin.
#
# Environment:
#   QPD_UP_BUILD, QPD_QPD_BUILD  QEMU build directories (required): each has
#                                qemu-x86_64 and tests/tcg/plugins/*.so
#   QPD_SRC_UP, QPD_SRC_QPD      their source trees (default: the build
#                                directory's parent); include/qemu/qemu-plugin.h
#                                is taken from there
#   QPD_FULL                     0 (default): CI's reduced matrix (fewer
#                                iterations, plugins and repetitions);
#                                1: everything
#   QPD_LOGDIR                   logs, guests and the result table
#                                (default $QPD_QEMU_CACHE/logs/user-checks)
#   QPD_QEMU_CACHE               cache root (default /var/cache/qpd-qemu)
#   QPD_QEMU_VERSION             shown in the report's title (optional)
#
# A check fails the script (exit 1) only where the qpd build fails; upstream
# failures are reported in the table as upstream's.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TESTS=$HERE/../tests
CACHE=${QPD_QEMU_CACHE:-/var/cache/qpd-qemu}
FULL=${QPD_FULL:-0}
LOGDIR=${QPD_LOGDIR:-$CACHE/logs/user-checks}
BUILDS=(up qpd)                 # labels; directories in BUILD_DIR[label]
declare -A BUILD_DIR SRC_DIR
ROWS=()                         # result rows: check|case|upstream|qpd|verdict
FAILED=0                        # number of rows where qpd failed
THREADS_MATRIX=(1 16 64 256)

# log MSG...: progress on stderr.
log() { printf '[user-checks %s] %s\n' "$(date +%T)" "$*" >&2; }

# die MSG...: report and stop.
die() { log "error: $*"; exit 2; }

# install_deps: install the Debian packages the checks need, if missing.
install_deps() {
	local missing=() p sudo=()
	for p in gcc gdb libglib2.0-dev pkg-config libc6-dev; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	[ "$(id -u)" -eq 0 ] || sudo=(sudo)
	log "installing: ${missing[*]}"
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
		"${missing[@]}" >/dev/null
}

# setup_builds: read the build and source directories from the environment
# and make sure each build has qemu-x86_64 and the test plugins.
setup_builds() {
	BUILD_DIR[up]=$(cd "${QPD_UP_BUILD:?set QPD_UP_BUILD to a QEMU build dir}" && pwd)
	BUILD_DIR[qpd]=$(cd "${QPD_QPD_BUILD:?set QPD_QPD_BUILD to a QEMU build dir}" && pwd)
	SRC_DIR[up]=${QPD_SRC_UP:-$(dirname "${BUILD_DIR[up]}")}
	SRC_DIR[qpd]=${QPD_SRC_QPD:-$(dirname "${BUILD_DIR[qpd]}")}
	local b dir
	for b in "${BUILDS[@]}"; do
		dir=${BUILD_DIR[$b]}
		[ -x "$dir/qemu-x86_64" ] || die "$dir/qemu-x86_64 missing"
		[ -f "${SRC_DIR[$b]}/include/qemu/qemu-plugin.h" ] ||
			die "${SRC_DIR[$b]}/include/qemu/qemu-plugin.h missing (set QPD_SRC_${b^^})"
		if ! compgen -G "$dir/tests/tcg/plugins/lib*.so" >/dev/null; then
			# QEMU 10 builds them by default; the alias target names them.
			log "$b: building the test plugins (ninja test-plugins)"
			ninja -C "$dir" test-plugins >"$LOGDIR/$b-test-plugins.log" 2>&1 ||
				die "ninja -C $dir test-plugins failed, see $LOGDIR/$b-test-plugins.log"
		fi
	done
}

# build_guests: compile the static guests and, per build, plugin-reset.so
# against that build's qemu-plugin.h.
build_guests() {
	local b
	python3 "$TESTS/guests.py" "$LOGDIR/bin" guest-threads fork-threads >/dev/null
	for b in "${BUILDS[@]}"; do
		mkdir -p "$LOGDIR/bin/$b"
		# shellcheck disable=SC2046 # pkg-config prints several words
		gcc -std=c11 -Wall -Wextra -Wno-unused-parameter -O2 -shared -fPIC \
			-I"${SRC_DIR[$b]}/include/qemu" $(pkg-config --cflags glib-2.0) \
			-o "$LOGDIR/bin/$b/libplugin-reset.so" "$TESTS/plugin-reset.c"
	done
}

# plugin B NAME: path of test plugin libNAME.so of build B.
plugin() { echo "${BUILD_DIR[$1]}/tests/tcg/plugins/lib$2.so"; }

# run_timed SECONDS LOG CMD...: run CMD with a time limit (then SIGTERM to
# its process group, SIGKILL 10 s later), output to LOG; exit code in RC
# (124 or 137: timed out).
run_timed() {
	local secs=$1 out=$2
	shift 2
	RC=0
	timeout -k 10 "$secs" "$@" >"$out" 2>&1 </dev/null || RC=$?
}

# qemu_run B SECONDS LOG PLUGIN-SPEC GUEST ARGS...: run a guest under
# build B's qemu-x86_64 with one plugin (none if PLUGIN-SPEC is empty) and
# the plugin's log on stderr.
qemu_run() {
	local b=$1 secs=$2 out=$3 spec=$4 opts=()
	shift 4
	[ -z "$spec" ] || opts=(-d plugin -plugin "$spec")
	run_timed "$secs" "$out" "${BUILD_DIR[$b]}/qemu-x86_64" "${opts[@]}" "$@"
}

# why RC LOG: how a failed run ended, in a few words: exit code or signal,
# and QEMU's first assertion or error message if the log has one.
why() {
	local rc=$1 out=$2 what msg
	case $rc in
	124 | 137) what="timeout" ;;
	*) if [ "$rc" -gt 128 ]; then what="signal $((rc - 128))"; else what="exit $rc"; fi ;;
	esac
	msg=$(grep -m1 -iE 'assert|error|already online|fatal' "$out" 2>/dev/null ||
		grep -m1 -iE 'abort|segmentation fault|killed by signal' "$out" 2>/dev/null || true)
	msg=${msg#Bail out! }
	echo "$what${msg:+: ${msg:0:160}}"
}

# verdict_ok STATUS: true if a cell's status says the run passed.
verdict_ok() { [[ $1 == pass* ]]; }

# add_row CHECK CASE UP-STATUS QPD-STATUS: record a result; a row fails
# only if qpd's status is not a pass.
add_row() {
	local verdict
	if verdict_ok "$4"; then
		verdict="ok"
		verdict_ok "$3" || verdict="ok (upstream fails)"
	else
		verdict="QPD FAILS"
		FAILED=$((FAILED + 1))
	fi
	ROWS+=("$1|$2|$3|$4|$verdict")
	log "$1 $2: upstream: $3; qpd: $4 -> $verdict"
}

# repeat_status PASSED RUNS FIRST-FAILURE: a cell for a repeated run.
repeat_status() {
	if [ "$1" -eq "$2" ]; then
		[ "$2" -eq 1 ] && echo "pass" || echo "pass ($1/$2)"
	elif [ "$2" -eq 1 ]; then
		echo "FAIL: $3"
	else
		echo "FAIL ($1/$2 passed; first failure: $3)"
	fi
}

# repeat_row CHECK CASE RUNS CMD...: runs "CMD... BUILD I" RUNS times on each
# build (CMD sets ST to pass or to why not) and adds one row for CASE.
repeat_row() {
	local check=$1 case=$2 runs=$3 b i
	local -A pass first
	shift 3
	for b in "${BUILDS[@]}"; do
		pass[$b]=0
		first[$b]=""
		for ((i = 1; i <= runs; i++)); do
			"$@" "$b" "$i"
			if [ "$ST" = pass ]; then
				pass[$b]=$((pass[$b] + 1))
			elif [ -z "${first[$b]}" ]; then
				first[$b]=$ST
			fi
		done
	done
	add_row "$check" "$case" \
		"$(repeat_status "${pass[up]}" "$runs" "${first[up]}")" \
		"$(repeat_status "${pass[qpd]}" "$runs" "${first[qpd]}")"
}

# ---- a. inline.c at 1..256 threads ------------------------------------------

# check_inline: libinline.so must exit 0 (its g_asserts hold) at every size.
check_inline() {
	local iters=$((FULL ? 4000000 : 1000000)) t b out st
	local -A cell
	for t in "${THREADS_MATRIX[@]}"; do
		for b in "${BUILDS[@]}"; do
			out=$LOGDIR/inline/$b-t$t.log
			qemu_run "$b" $((FULL ? 600 : 120)) "$out" "$(plugin "$b" inline)" \
				"$LOGDIR/bin/guest-threads" "$t" "$iters"
			if [ "$RC" -eq 0 ]; then st="pass"; else st="FAIL ($(why "$RC" "$out"))"; fi
			cell[$b]=$st
		done
		add_row "a. inline.c asserts" "libinline, threads=$t, iterations=$iters" \
			"${cell[up]}" "${cell[qpd]}"
	done
}

# ---- b. flush count with gdb ------------------------------------------------

# count_flushes B T SPEC LOG: run guest-threads T under build B's
# qemu-x86_64 and count-flushes.sh; sets FLUSHES (empty if unknown) and RC
# (the guest's exit code, 128+signal, 3 if gdb could not count, or
# timeout's 124/137).
count_flushes() {
	local b=$1 t=$2 spec=$3 out=$4
	run_timed $((FULL ? 600 : 180)) "$out" "$HERE/count-flushes.sh" \
		"${BUILD_DIR[$b]}/qemu-x86_64" -plugin "$spec" \
		"$LOGDIR/bin/guest-threads" "$t" "$FLUSH_ITERS"
	FLUSHES=$(sed -n 's/^qpd-flushes: \([0-9]*\)$/\1/p' "$out" | tail -n1)
}

# growth_expected T: upstream's growth flushes for vCPU indices 0..T: one
# per scoreboard capacity (16, 32, 64, ...) that an index reaches.
growth_expected() {
	local cap=16 n=0
	while [ "$cap" -le "$1" ]; do n=$((n + 1)); cap=$((cap * 2)); done
	echo "$n"
}

# check_flushes: per plugin, the count at 1 thread is the baseline; qpd's
# count at 16/64/256 must equal it, upstream's is reported with its growth.
check_flushes() {
	local specs=("inline" "bb,inline=on") name args t b out g st
	local -A base cell
	FLUSH_ITERS=$((FULL ? 200000 : 20000))
	for name in "${specs[@]}"; do
		args=${name#*,}
		[ "$args" = "$name" ] && args=""
		for t in "${THREADS_MATRIX[@]}"; do
			for b in "${BUILDS[@]}"; do
				out=$LOGDIR/flushes/$b-${name//[,=]/_}-t$t.log
				count_flushes "$b" "$t" "$(plugin "$b" "${name%%,*}")${args:+,$args}" "$out"
				if [ -z "$FLUSHES" ] || [ "$RC" -ne 0 ]; then
					st="FAIL (flushes ${FLUSHES:-?}; $(why "$RC" "$out"))"
				elif [ "$t" -eq 1 ]; then
					base[$b]=$FLUSHES
					st="pass: $FLUSHES (baseline)"
				elif [ -z "${base[$b]:-}" ]; then
					st="FAIL: $FLUSHES (no baseline)"
				else
					g=$((FLUSHES - base[$b]))
					if [ "$b" = up ]; then
						st="pass: $FLUSHES, growth $g (expected $(growth_expected "$t"))"
					elif [ "$g" -eq 0 ]; then
						st="pass: $FLUSHES, growth 0"
					else
						st="FAIL: $FLUSHES, growth $g"
					fi
				fi
				cell[$b]=$st
			done
			add_row "b. tb flushes (gdb)" "lib$name, threads=$t" "${cell[up]}" "${cell[qpd]}"
		done
	done
}

# ---- c. reset / uninstall ---------------------------------------------------

# reset_run B KIND LOG: one reset test run of build B; sets ST.
# KIND: qemu (QEMU's libreset.so) or ours (tests/plugin-reset.c).
reset_run() {
	local b=$1 kind=$2 out=$3 spec ok
	if [ "$kind" = qemu ]; then
		spec=$(plugin "$b" reset)
	else
		spec="$LOGDIR/bin/$b/libplugin-reset.so,syscalls=300"
	fi
	qemu_run "$b" $((FULL ? 180 : 90)) "$out" "$spec" \
		"$LOGDIR/bin/guest-threads" 16 "$RESET_ITERS"
	if [ "$kind" = qemu ]; then
		grep -q '^reset done' "$out" && grep -q '^uninstall done' "$out" && ok=1 || ok=0
	else
		grep -q '^plugin-reset: PASS' "$out" && ok=1 || ok=0
	fi
	if [ "$RC" -eq 0 ] && [ "$ok" -eq 1 ]; then
		ST=pass
	elif [ "$RC" -eq 0 ]; then
		ST="no PASS line: $(grep -m1 '^plugin-reset:' "$out" || echo 'reset/uninstall not reported')"
	else
		ST=$(why "$RC" "$out")
	fi
}

# check_reset: both reset plugins, 16 guest threads, repeated in full mode.
check_reset() {
	local runs=$((FULL ? 20 : 3)) kind label
	# After the reset the guest runs uninstrumented and fast; phase 2 of
	# plugin-reset needs 300 more system calls after the reset's callback,
	# which qpd runs from its reclaimer thread: with 2M iterations a loaded
	# host now and then ended the guest first.  20M leaves ~0.3 s.
	RESET_ITERS=20000000
	for kind in qemu ours; do
		if [ "$kind" = qemu ] && [ ! -f "$(plugin up reset)" ]; then
			log "libreset.so not in this QEMU version: skipped"
			continue
		fi
		label="libreset (QEMU's reset.c)"
		[ "$kind" = ours ] && label="libplugin-reset, syscalls=300"
		repeat_row "c. reset/uninstall" "$label, threads=16" "$runs" \
			reset_once "$kind"
	done
}

# reset_once KIND BUILD I: run I of reset_run, with its own log.
reset_once() {
	reset_run "$2" "$1" "$LOGDIR/reset/$2-$1-$3.log"
}

# ---- d. fork with threads ---------------------------------------------------

# plugin_args NAME: the arguments a test plugin runs with here.
plugin_args() {
	case $1 in
	patch) echo "use_hwaddr=false,target=0f0b,patch=0f0b" ;; # ud2: never run
	*) echo "" ;;
	esac
}

# fork_specs: the plugin configurations of the fork test: "none" (no
# plugin: the guest itself works under qemu-user), every test plugin both
# builds have (its default arguments), and in full mode the inline variants
# of bb, insn and mem as well.
fork_specs() {
	local p name args
	echo none
	for p in "${BUILD_DIR[up]}"/tests/tcg/plugins/lib*.so; do
		name=$(basename "$p" .so)
		name=${name#lib}
		[ -f "$(plugin qpd "$name")" ] || continue
		args=$(plugin_args "$name")
		echo "$name${args:+,$args}"
		[ "$FULL" -eq 1 ] || continue
		case $name in
		bb | insn) echo "$name,inline=on" ;;
		mem) echo "mem,inline=on,callback=off" ;;
		esac
	done
}

# check_fork: fork-threads (3 children x 4 threads, parent 4 threads) under
# each plugin configuration; a run passes if the guest prints PASS, exit 0.
check_fork() {
	local runs=$((FULL ? 5 : 1)) iters=$((FULL ? 400000 : 100000)) spec label
	for spec in $(fork_specs); do
		label="lib$spec"
		[ "$spec" = none ] && label="no plugin (control)"
		repeat_row "d. fork with threads" "$label, iterations=$iters" "$runs" \
			fork_once "$spec" "$iters"
	done
}

# fork_once SPEC ITERS BUILD I: one fork-threads run; ST = pass or why not.
fork_once() {
	local spec=$1 iters=$2 b=$3 name args plug="" out
	name=${spec%%,*}
	args=${spec#*,}
	[ "$args" = "$spec" ] && args=""
	[ "$spec" = none ] || plug="$(plugin "$b" "$name")${args:+,$args}"
	out=$LOGDIR/fork/$b-${spec//[,=]/_}-$4.log
	qemu_run "$b" $((FULL ? 300 : 90)) "$out" "$plug" \
		"$LOGDIR/bin/fork-threads" 3 4 "$iters"
	if [ "$RC" -eq 0 ] && grep -q '^fork-threads: PASS' "$out"; then
		ST=pass
	else
		ST="$(why "$RC" "$out"); $(sed -n \
			's/^fork-threads: .* ok=\([0-9]*\) .*/\1\/3 children ok/p' "$out" |
			grep . || echo 'no summary')"
	fi
}

# ---- report -----------------------------------------------------------------

# report: the table (stdout and $LOGDIR/user-checks.md) and the verdict.
report() {
	local row
	{
		echo "## qpd user-mode checks: QEMU ${QPD_QEMU_VERSION:-?}, QPD_FULL=$FULL"
		echo
		echo "upstream: ${BUILD_DIR[up]}"
		echo "qpd:      ${BUILD_DIR[qpd]}"
		echo
		echo "| check | case | upstream | qpd | verdict |"
		echo "| --- | --- | --- | --- | --- |"
		for row in "${ROWS[@]}"; do
			echo "| ${row//|/ | } |"
		done
		echo
		if [ "$FAILED" -eq 0 ]; then
			echo "verdict: PASS (qpd passed every check; logs in $LOGDIR)"
		else
			echo "verdict: FAIL ($FAILED check(s) failed on qpd; logs in $LOGDIR)"
		fi
	} | tee "$LOGDIR/user-checks.md"
}

main() {
	local start=$SECONDS
	mkdir -p "$LOGDIR"/{inline,flushes,reset,fork}
	install_deps
	setup_builds
	build_guests
	check_inline
	check_flushes
	check_reset
	check_fork
	report
	log "done in $((SECONDS - start)) s"
	[ "$FAILED" -eq 0 ]
}

main "$@"
