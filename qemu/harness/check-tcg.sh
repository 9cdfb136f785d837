#!/usr/bin/env bash
# check-tcg.sh - QEMU's own TCG tests (check-tcg: the guest tests, each
# also run under every tests/tcg/plugins plugin) on the upstream and the
# qpd build, side by side.
#
# usage: qemu/harness/check-tcg.sh [--qemu VER|SUITE]
#
# Needs the builds made by build.sh. For each build and each target
# (x86_64-linux-user, x86_64-softmmu) it runs
#   make -k -j$QPD_JOBS --trace run-tcg-tests-TARGET
# and takes each test's result from make itself: --trace names every
# run-* target make executed, "*** [...: run-X] Error" the ones that
# failed. A failed test is run once more on its own, serially: one that
# then passes is FLAKY (QEMU's tests are not all robust on a loaded
# 2-core machine, but a flaky result is still reported, never dropped).
#
# Verdict: qpd must pass every test upstream passes. A test that fails
# (or is flaky) on upstream is an "upstream failure", not held against
# qpd. Exit 0: no qpd-only failure; 1: qpd failed, or was flaky on, a test
# upstream passes; 2: infrastructure error (no test list, make failed
# outside the tests, build missing).
#
# Environment: QPD_BUILDS ("upstream qpd"), QPD_FULL=1 (SPEED=slow, which
# adds QEMU's slow tests, and the whole table on stdout), QPD_TCG_TARGETS
# (default: the configured targets), QPD_TCG_RETRY=0 (no retries),
# QPD_JOBS. Logs and the full table: $CACHE/VERSION/logs/tcg-*.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

INFRA=()                        # infrastructure errors, one line each
declare -A STATUS               # [build|target|test] = PASS FAIL FLAKY NOTRUN
declare -A TESTS                # [target] = test names, in make's order
declare -A SUITE_SECS           # [build|target] = seconds

speed() { if [ "${QPD_FULL:-0}" = 1 ]; then echo slow; else echo quick; fi; }

# list_tests DIR TARGET: the run-* targets of one target's check-tcg, as
# its Makefile's "help" lists them (the same RUN_TESTS "make run" builds).
list_tests() {
	make -C "$1/tests/tcg/$2" --no-print-directory SPEED="$(speed)" help 2>/dev/null |
		sed -n 's/^  \(run-[^ ]*\)$/\1/p'
}

# ran_targets LOG / failed_targets LOG: run-* targets make executed / that
# failed, according to make --trace and make's error lines.
ran_targets() {
	sed -n -e "s/.*target '\(run-[^']*\)' does not exist.*/\1/p" \
		-e "s/.*update target '\(run-[^']*\)' due to.*/\1/p" "$1" | sort -u
}
failed_targets() {
	sed -n 's/.*\*\*\* \[[^]]*: \(run-[^]]*\)\] .*/\1/p' "$1" | sort -u
}

# classify BUILD TARGET LOG: set STATUS for every listed test from LOG.
classify() {
	local b=$1 t=$2 log=$3 test
	local -A ran=() failed=()
	while read -r test; do [ -z "$test" ] || ran[$test]=1; done < <(ran_targets "$log")
	while read -r test; do [ -z "$test" ] || failed[$test]=1; done < <(failed_targets "$log")
	for test in ${TESTS[$t]}; do
		if [ -n "${failed[$test]:-}" ]; then STATUS[$b|$t|$test]=FAIL
		elif [ -n "${ran[$test]:-}" ]; then STATUS[$b|$t|$test]=PASS
		else STATUS[$b|$t|$test]=NOTRUN
		fi
	done
}

# retry BUILD TARGET: run each failed or unrun test of BUILD once more on
# its own (make -j1, so it does not compete with another test).
retry() {
	local b=$1 t=$2 dir test log
	dir=$(qpd_build_dir "$b")
	log=$QPD_LOGDIR/tcg-$b-$t.retry.log
	: >"$log"
	[ "${QPD_TCG_RETRY:-1}" = 1 ] || return 0
	for test in ${TESTS[$t]}; do
		case ${STATUS[$b|$t|$test]} in FAIL | NOTRUN) ;; *) continue ;; esac
		echo "=== retry $test" >>"$log"
		if make -C "$dir/tests/tcg/$t" --no-print-directory --trace \
			SPEED="$(speed)" "$test" >>"$log" 2>&1; then
			STATUS[$b|$t|$test]=FLAKY
			qpd_log "$b $t: $test failed, passed when retried alone (FLAKY)"
		else
			qpd_log "$b $t: $test failed again when retried alone"
		fi
	done
}

# run_suite BUILD TARGET: run one target's check-tcg on one build.
run_suite() {
	local b=$1 t=$2 dir log t0 rc=0 nfail
	dir=$(qpd_build_dir "$b")
	log=$QPD_LOGDIR/tcg-$b-$t.log
	qpd_log "$b: check-tcg $t (${TESTS[$t]:+$(wc -w <<<"${TESTS[$t]}") tests})"
	t0=$SECONDS
	make -C "$dir" -k -j"$QPD_JOBS" --trace SPEED="$(speed)" \
		"run-tcg-tests-$t" >"$log" 2>&1 || rc=$?
	SUITE_SECS[$b|$t]=$((SECONDS - t0))
	classify "$b" "$t" "$log"
	nfail=$(for test in ${TESTS[$t]}; do echo "${STATUS[$b|$t|$test]}"; done | grep -vc PASS || true)
	if [ "$rc" != 0 ] && [ "$nfail" = 0 ]; then
		INFRA+=("$b $t: make exited $rc but no test failed (see $log)")
		grep -m5 -E '\*\*\* |error' "$log" >&2 || true
	fi
	[ "$nfail" = 0 ] || retry "$b" "$t"
}

# count BUILD TARGET STATUS...: how many tests of TARGET have one of them.
count() {
	local b=$1 t=$2 n=0 test s
	shift 2
	for test in ${TESTS[$t]}; do
		for s in "$@"; do
			[ "${STATUS[$b|$t|$test]:-}" = "$s" ] && n=$((n + 1))
		done
	done
	echo $n
}

# verdict_of UP QPD: the row's verdict; "" for a pass on both.
verdict_of() {
	local up=$1 qpd=${2:-}
	if [ -z "$qpd" ]; then
		[ "$up" = PASS ] || echo "upstream failure"
	elif [ "$up" = PASS ]; then
		case $qpd in
		PASS) ;;
		FLAKY) echo "QPD FLAKY" ;;
		*) echo "QPD FAILURE" ;;
		esac
	elif [ "$qpd" = PASS ]; then
		echo "upstream failure (qpd passes)"
	else
		echo "upstream failure"
	fi
}

# report BUILD...: the per-test table (the whole table goes to a file; on
# stdout only rows with a verdict, unless QPD_FULL=1), the counts and the
# verdict. Returns the exit status.
report() {
	local builds=("$@") table=$QPD_LOGDIR/tcg-table.txt t test v b e
	local qpd_fail=0 up_fail=0 hidden=0 has_qpd=0 up q fmt='%-60s %-8s %-8s %s\n'
	[[ " ${builds[*]} " == *" qpd "* ]] && has_qpd=1
	echo
	echo "== check-tcg, qemu $QPD_QEMU_VERSION (SPEED=$(speed))"
	printf "  $fmt" test upstream "$([ $has_qpd = 0 ] || echo qpd)" verdict
	printf "$fmt" test upstream "$([ $has_qpd = 0 ] || echo qpd)" verdict >"$table"
	for t in $QPD_TCG_TARGETS_; do
		for test in ${TESTS[$t]}; do
			up=${STATUS[upstream|$t|$test]:-NOTRUN}
			q=""
			[ $has_qpd = 0 ] || q=${STATUS[qpd|$t|$test]:-NOTRUN}
			v=$(verdict_of "$up" "$q")
			printf "$fmt" "$t: ${test#run-}" "$up" "$q" "$v" >>"$table"
			if [ -n "$v" ] || [ "${QPD_FULL:-0}" = 1 ]; then
				printf "  $fmt" "$t: ${test#run-}" "$up" "$q" "$v"
			else
				hidden=$((hidden + 1))
			fi
			case $v in
			QPD*) qpd_fail=$((qpd_fail + 1)) ;;
			upstream*) up_fail=$((up_fail + 1)) ;;
			esac
		done
	done
	if [ $hidden -gt 0 ]; then
		if [ $((qpd_fail + up_fail)) = 0 ]; then
			echo "  (all $hidden pass on every build; whole table: $table)"
		else
			echo "  ... and $hidden more that pass on every build (whole table: $table)"
		fi
	fi
	echo
	printf '  %-20s' "ran/passed, time"
	for b in "${builds[@]}"; do printf ' %-24s' "$b"; done
	echo
	for t in $QPD_TCG_TARGETS_; do
		local n ran passed flaky cell
		n=$(wc -w <<<"${TESTS[$t]}")
		printf '  %-20s' "$t"
		for b in "${builds[@]}"; do
			ran=$((n - $(count "$b" "$t" NOTRUN)))
			passed=$(count "$b" "$t" PASS)
			flaky=$(count "$b" "$t" FLAKY)
			cell="$ran/$passed"
			[ "$flaky" = 0 ] || cell+=" +$flaky flaky"
			printf ' %-24s' "$cell $(qpd_fmt_secs "${SUITE_SECS[$b|$t]:-0}")"
		done
		echo " (of $n)"
	done
	echo
	for e in "${INFRA[@]}"; do echo "  INFRASTRUCTURE: $e"; done
	echo "  upstream failures (not held against qpd): $up_fail"
	if [ $has_qpd = 1 ]; then
		echo "  qpd-only failures: $qpd_fail"
	else
		echo "  qpd: not built (QPD_BUILDS=$(qpd_builds))"
	fi
	if [ ${#INFRA[@]} -gt 0 ]; then
		echo "check-tcg: INFRASTRUCTURE ERROR"
		return 2
	elif [ $qpd_fail -gt 0 ]; then
		echo "check-tcg: FAIL ($qpd_fail test(s) pass on upstream but not on qpd)"
		return 1
	fi
	echo "check-tcg: PASS"
}

main() {
	local b t dir builds=() list
	qpd_script_start 2,30 "$@"
	QPD_TCG_TARGETS_=${QPD_TCG_TARGETS:-${QPD_TARGET_LIST//,/ }}
	read -r -a builds <<<"$(qpd_builds)"
	for b in "${builds[@]}"; do
		dir=$(qpd_build_dir "$b")
		if [ ! -f "$dir/build.ninja" ]; then
			INFRA+=("$b: no build in $dir (run build.sh)")
			continue
		fi
		qpd_link_firmware "$dir"
	done
	if [ ${#INFRA[@]} -gt 0 ]; then
		printf 'check-tcg: %s\n' "${INFRA[@]}"
		return 2
	fi
	# The test list comes from upstream's tree (both trees share tests/tcg;
	# qpd's is checked to be the same).
	for t in $QPD_TCG_TARGETS_; do
		TESTS[$t]=$(list_tests "$QPD_UP_BUILD" "$t" | tr '\n' ' ')
		[ -n "${TESTS[$t]// /}" ] || INFRA+=("no tests listed for $t in $QPD_UP_BUILD")
		for b in "${builds[@]}"; do
			[ "$b" = upstream ] && continue
			list=$(list_tests "$(qpd_build_dir "$b")" "$t" | tr '\n' ' ')
			[ "$list" = "${TESTS[$t]}" ] || INFRA+=("$b lists other $t tests than upstream")
		done
	done
	for t in $QPD_TCG_TARGETS_; do
		[ -n "${TESTS[$t]// /}" ] || continue
		for b in "${builds[@]}"; do
			run_suite "$b" "$t"
		done
	done
	report "${builds[@]}"
}

main "$@"
