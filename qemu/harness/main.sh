#!/usr/bin/env bash
# main.sh - what "./run qemu" runs: QEMU built as upstream and as the qpd
# variant, and the two compared with QEMU's own TCG tests, a Linux boot
# and qpd's user-mode checks.
#
# usage: ./run qemu [--qemu VER|SUITE] [--full]
#   --qemu VER|SUITE  QEMU to use, from Debian's source packages: a version
#                     (10.2 = newest 10.2.x; 10.0.13; 1:10.2.2+ds-1) or a
#                     suite (trixie, sid, forky). Default: trixie's (10.0.x).
#   --full            everything: QEMU's slow TCG tests, the full per-test
#                     table, the boot and user checks' full matrices.
#
# Phases: deps, source, build (build.sh), check-tcg (check-tcg.sh), boot
# (boot.sh), user-checks (user-checks.sh) and perf (perf.sh) -- the last
# three only if present; they get QPD_UP_BUILD, QPD_QPD_BUILD,
# QPD_QEMU_VERSION, QPD_FULL and QPD_LOGDIR (boot and user-checks: a
# subdirectory of the logs named after them; perf adds its own). Each
# phase's time and result is summarised at the end. Exit 0 if every phase passed, 1 if one failed (qpd failures
# included), 2 if the harness could not get a QEMU to test.
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
	if [ $FAILED = 0 ]; then echo "qemu: PASS"; else echo "qemu: FAIL"; fi
}

# lib_call FUNC ARGS...: run a lib.sh function in a bash of its own, so
# that "set -e" holds inside it (bash ignores -e in a function whose
# status is tested, as phase does) and its qpd_die ends the phase only.
lib_call() {
	bash -c 'set -euo pipefail; . "$0"; "$@"' "$HARNESS/lib.sh" "$@"
}

# check_script NAME LOGDIR: run one of the check scripts (boot.sh,
# user-checks.sh, perf.sh) on the two builds.
check_script() {
	QPD_FULL=$QPD_FULL QPD_LOGDIR=$2 QPD_QEMU_CACHE=$QPD_CACHE \
		QPD_UP_BUILD=$QPD_UP_BUILD QPD_QPD_BUILD=$QPD_QPD_BUILD \
		QPD_QEMU_VERSION=$QPD_QEMU_VERSION bash "$HARNESS/$1.sh"
}

main() {
	local spec="" t0=$SECONDS name logdir builds_ok=1
	QPD_FULL=0
	while [ $# -gt 0 ]; do
		case $1 in
		--qemu) spec=${2:?--qemu needs a version or a Debian suite}; shift 2 ;;
		--qemu=*) spec=${1#--qemu=}; shift ;;
		--full) QPD_FULL=1; shift ;;
		-h | --help) sed -n '2,25p' "$0"; exit 0 ;;
		*) echo "usage: ./run qemu [--qemu VER|SUITE] [--full]" >&2; exit 2 ;;
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

	phase build "$HARNESS/build.sh" || builds_ok=0
	if [ $builds_ok = 1 ]; then
		phase check-tcg "$HARNESS/check-tcg.sh" || true
	else
		skip check-tcg "build failed"
	fi
	for name in boot user-checks perf; do
		if [ ! -f "$HARNESS/$name.sh" ]; then
			skip "$name" "$name.sh not present"
		elif [ $builds_ok = 0 ]; then
			skip "$name" "build failed"
		elif [[ " $(qpd_builds) " != *" qpd "* ]]; then
			skip "$name" "no qpd build (QPD_BUILDS=$(qpd_builds))"
		else
			logdir=$QPD_LOGDIR/$name
			[ "$name" != perf ] || logdir=$QPD_LOGDIR # perf.sh adds /perf
			phase "$name" check_script "$name" "$logdir" || true
		fi
	done
	summary "$t0"
	exit $FAILED
}

main "$@"
