#!/usr/bin/env bash
# run-fuzz.sh SECONDS [libFuzzer options...]
#
# Builds the differential fuzz target (qpd against bench/legacy.c) with
# clang's libFuzzer, ASan and UBSan straight from the sources, then fuzzes
# for SECONDS starting from a copy of the committed corpus (the repository
# does not grow).  Prints the executions and any crash.  Exits 1 on a crash
# or a mismatch, whose input is kept with the fuzzer binary under $FUZZ_OUT
# (default: the temporary directory, then not removed), and 2 when clang
# cannot build with -fsanitize=fuzzer.
#
# Needs clang with -fsanitize=fuzzer (Debian: clang, libclang-rt-dev) and
# the development packages of ck, GLib and liburcu.
set -euo pipefail

secs=${1:?usage: run-fuzz.sh SECONDS [libFuzzer options...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cc=${CC_FUZZ:-clang}

work=$(mktemp -d)
keep=0
cleanup() { [ "$keep" = 1 ] || rm -rf "$work"; }
trap cleanup EXIT

if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { (void)d; return (int)n; }' |
	"$cc" -fsanitize=fuzzer -x c - -o "$work/probe" 2>/dev/null; then
	echo "run-fuzz.sh: $cc cannot build with -fsanitize=fuzzer" >&2
	exit 2
fi

bin=$work/fuzz-diff
# The libc allocator (no QPD_USE_JEMALLOC): the sanitizers track malloc only.
# shellcheck disable=SC2046
"$cc" -std=c11 -D_GNU_SOURCE -DFUZZ_DIFF_LIBFUZZER -g -O1 \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Wno-gnu-variable-sized-type-not-at-end -Wno-sizeof-array-decay \
	-I"$root/include" -I"$root/bench" \
	"$root"/src/*/*.c "$root/bench/legacy.c" "$here/fuzz_diff.c" \
	$(pkg-config --cflags --libs ck glib-2.0 liburcu-memb) -lpthread \
	-o "$bin"

mkdir -p "$work/corpus" "$work/artifacts"
cp "$here"/corpus/* "$work/corpus/"
log=$work/fuzz.log
set +e
start=$SECONDS
ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
	"$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=30 \
	-rss_limit_mb=4096 -artifact_prefix="$work/artifacts/" "$@" \
	"$work/corpus" >"$log" 2>&1
rc=$?
set -e

execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
echo "fuzz-diff: ${execs:-?} executions in $((SECONDS - start))s (${rate:-?}/s)," \
	"corpus $(find "$work/corpus" -type f | wc -l) inputs"
if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
	# The mismatch report, or the sanitizer's, without the stack dump.
	sed -n -e '/fuzz_diff: MISMATCH/,/FUZZ_DIFF_TRACE/p' \
		-e '/ERROR: \(AddressSanitizer\|LeakSanitizer\|libFuzzer: [^d]\)/,+12p' \
		-e '/runtime error/,+3p' "$log" | head -60 >&2
	out=${FUZZ_OUT:-$work}
	mkdir -p "$out"
	if [ "$out" != "$work" ]; then
		cp "$work"/artifacts/* "$bin" "$out"/ 2>/dev/null || true
	else
		mv "$work"/artifacts/* "$out"/ 2>/dev/null || true
		keep=1
	fi
	for f in "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-*; do
		[ -e "$f" ] && echo "fuzz-diff: input $f;" \
			"replay: FUZZ_DIFF_TRACE=1 $out/fuzz-diff $f" >&2
	done
	echo "fuzz-diff: FAILED (libFuzzer exit $rc)" >&2
	exit 1
fi
