#!/usr/bin/env bash
# main.sh - what "./run qemu", "./run qemu-bench" and "./run qemu-gate" run:
# QEMU built as upstream and as the qpd variant from one source, then
#   check  (./run qemu)        the two compared with QEMU's own TCG tests, a
#                              Linux boot, qpd's user-mode checks and a short
#                              timing of a few workloads;
#   bench  (./run qemu-bench)  the whole-QEMU benchmark (qemu/bench/qemu-bench):
#                              results in bench/results/qemu-bench-VERSION.*;
#   gate   (./run qemu-gate)   the instruction-count regression gate
#                              (qemu/gate/qemu-gate) against its baseline.
#
# usage: main.sh [check|bench|gate] [--qemu VER|SUITE] [--full] [TOOL-OPTIONS]
#   --qemu VER|SUITE  QEMU to use, from Debian's source packages: a version
#                     (10.2 = newest 10.2.x; 10.0.13; 1:10.2.2+ds-1) or a
#                     suite (trixie, sid, forky). Default: trixie's (10.0.x).
#   --full            check: everything: QEMU's slow TCG tests, the full
#                     per-test table, the boot and user checks' full matrices.
#   TOOL-OPTIONS      bench and gate: passed on (e.g. --only REGEX, --runs N;
#                     --update)
#
# Phases: deps, source, build (build.sh), then for check: check-tcg
# (check-tcg.sh), boot (boot.sh), user-checks (user-checks.sh) and perf
# (qemu-bench's CI set); for bench or gate the one tool. The check scripts
# get QPD_UP_BUILD, QPD_QPD_BUILD, QPD_QEMU_VERSION, QPD_FULL and
# QPD_LOGDIR (a subdirectory of the logs named after them). Each phase's
# time and result is summarised at the end. Exit 0 if every phase passed,
# 1 if one failed (qpd failures and gate regressions included), 2 if the
# harness could not get a QEMU to test.
#
# Environment: QPD_QEMU_CACHE (cache root, default /var/cache/qpd-qemu),
# QPD_BUILDS ("upstream qpd"; "upstream" before qemu/apply exists),
# QPD_APPLY, QPD_JOBS (default 2).
set -euo pipefail
HARNESS=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HARNESS/lib.sh"

SUMMARY=()                      # "phase|result|seconds"
FAILED=0

# phase NAME CMD...: run one phase, record its result and time; never
# stops the run (a later phase's report is still worth having).
phase() {
	local name=$1 t0 rc=0
	shift
	echo
	echo "=============== $name"
	t0=$SECONDS
	"$@" || rc=$?
	if [ $rc = 0 ]; then
		SUMMARY+=("$name|pass|$((SECONDS - t0))")
	else
		SUMMARY+=("$name|FAILED (exit $rc)|$((SECONDS - t0))")
		FAILED=1
	fi
	return $rc
}

# skip NAME WHY: record a phase that was not run.
skip() {
	SUMMARY+=("$1|skipped: $2|0")
}

# summary T0: the table of phases and the overall result.
summary() {
	local row name result secs
	echo
	echo "=============== summary: qemu ${QPD_QEMU_VERSION:-?} (${QPD_DEB_VERSION:-?}), builds: $(qpd_builds)"
	for row in "${SUMMARY[@]}"; do
		IFS='|' read -r name result secs <<<"$row"
		printf '  %-12s %8s  %s\n' "$name" "$(qpd_fmt_secs "$secs")" "$result"
	done
	printf '  %-12s %8s\n' total "$(qpd_fmt_secs $((SECONDS - $1)))"
	echo "  logs: ${QPD_LOGDIR:-?}"
	local what=qemu
	[ "${2:-check}" = check ] || what=qemu-$2
	if [ $FAILED = 0 ]; then echo "$what: PASS"; else echo "$what: FAIL"; fi
}

# lib_call FUNC ARGS...: run a lib.sh function in a bash of its own, so
# that "set -e" holds inside it (bash ignores -e in a function whose
# status is tested, as phase does) and its qpd_die ends the phase only.
lib_call() {
	bash -c 'set -euo pipefail; . "$0"; "$@"' "$HARNESS/lib.sh" "$@"
}

# check_script NAME: run one of the check scripts (boot.sh, user-checks.sh)
# on the two builds, its logs in LOGDIR/NAME.
check_script() {
	QPD_FULL=$QPD_FULL QPD_LOGDIR=$QPD_LOGDIR/$1 QPD_QEMU_CACHE=$QPD_CACHE \
		QPD_UP_BUILD=$QPD_UP_BUILD QPD_QPD_BUILD=$QPD_QPD_BUILD \
		QPD_QEMU_VERSION=$QPD_QEMU_VERSION bash "$HARNESS/$1.sh"
}

# bench ARGS...: qemu/bench/qemu-bench on the two builds.
bench() {
	python3 "$HARNESS/../bench/qemu-bench" --up "$QPD_UP_BUILD" \
		--qpd "$QPD_QPD_BUILD" --qemu-version "$QPD_QEMU_VERSION" "$@"
}

# gate ARGS...: qemu/gate/qemu-gate on the two builds.
gate() {
	QPD_QEMU_CACHE=$QPD_CACHE python3 "$HARNESS/../gate/qemu-gate" \
		--up "$QPD_UP_BUILD" --qpd "$QPD_QPD_BUILD" \
		--qemu-version "$QPD_QEMU_VERSION" "$@"
}

# checks: what ./run qemu runs after the build.
checks() {
	local name
	phase check-tcg "$HARNESS/check-tcg.sh" || true
	for name in boot user-checks; do
		phase "$name" check_script "$name" || true
	done
	# A short timing, informational (qemu-bench's CI set).
	phase perf bench --set ci --runs 3 --no-flushes \
		--out "$QPD_LOGDIR/perf" --logdir "$QPD_LOGDIR/perf/logs" || true
}

main() {
	local spec="" t0=$SECONDS mode=check tool_args=()
	QPD_FULL=0
	case ${1:-} in
	check | bench | gate) mode=$1; shift ;;
	esac
	while [ $# -gt 0 ]; do
		case $1 in
		--qemu) spec=${2:?--qemu needs a version or a Debian suite}; shift 2 ;;
		--qemu=*) spec=${1#--qemu=}; shift ;;
		--full) QPD_FULL=1; shift ;;
		-h | --help) sed -n '2,33p' "$0"; exit 0 ;;
		*)
			if [ "$mode" = check ]; then
				echo "usage: ./run qemu [--qemu VER|SUITE] [--full]" >&2
				exit 2
			fi
			tool_args+=("$1"); shift ;;
		esac
	done
	export QPD_FULL
	qpd_lock

	if ! phase deps lib_call qpd_install_deps ||
		! phase source lib_call qpd_select_source "$spec"; then
		summary "$t0"
		exit 2
	fi
	read -r QPD_QEMU_VERSION QPD_DEB_VERSION <"$QPD_CACHE/.selected"
	export QPD_QEMU_VERSION QPD_DEB_VERSION
	qpd_use_version ""          # the paths, from the resolved version
	qpd_log "qemu $QPD_DEB_VERSION; logs in $QPD_LOGDIR"

	if ! phase build "$HARNESS/build.sh"; then
		skip "$mode" "build failed"
	elif [[ " $(qpd_builds) " != *" qpd "* ]]; then
		skip "$mode" "no qpd build (QPD_BUILDS=$(qpd_builds))"
	else
		case $mode in
		check) checks ;;
		bench) phase bench bench "${tool_args[@]}" || true ;;
		gate) phase gate gate "${tool_args[@]}" || true ;;
		esac
	fi
	summary "$t0" "$mode"
	exit $FAILED
}

main "$@"
