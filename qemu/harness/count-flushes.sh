#!/usr/bin/env bash
# count-flushes.sh - how often a QEMU run flushes its translated code.
#
# usage: count-flushes.sh QEMU [QEMU-ARGS...]
#
# Runs QEMU under gdb with a breakpoint whose commands count and continue,
# and prints two lines: "qpd-flushes: N" and "qpd-exit: CODE" (or "signal
# S", or "unknown"). Exits with QEMU's status (128+S for a signal), 3 when
# the count is unknown. QEMU itself is not changed.
#
# Where a flush is counted: QEMU 10.0 flushes in the static do_tb_flush(),
# called directly (serial or exclusive context) or queued, so its address.
# QEMU 10.2 split it: tb_flush__exclusive_or_serial() flushes and
# do_tb_flush() only wraps the queued case, so count the former, at every
# location of it (do_tb_flush may have inlined it).
#
# gdb now and then loses the race with the exiting process ("Couldn't get
# registers: No such process") and stops its script before the summary;
# such a run is repeated, up to three times in all.
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 QEMU [ARGS...]" >&2; exit 2; }
qemu=$1

if gdb -batch -nx -ex 'info address tb_flush__exclusive_or_serial' "$qemu" 2>&1 |
	grep -q 'is a function at address'; then
	loc=tb_flush__exclusive_or_serial
elif gdb -batch -nx -ex 'info address do_tb_flush' "$qemu" 2>&1 |
	grep -q 'is a function at address'; then
	loc='*do_tb_flush'
else
	echo "count-flushes: no flush function in $qemu (stripped?)" >&2
	exit 3
fi

script=$(mktemp)
out=$(mktemp)
trap 'rm -f "$script" "$out"' EXIT
cat >"$script" <<EOF
set pagination off
set confirm off
set print thread-events off
set print inferior-events off
set disable-randomization off
handle all nostop noprint pass
set \$qpd_flushes = 0
break $loc
commands
silent
set \$qpd_flushes = \$qpd_flushes + 1
continue
end
run
printf "qpd-flushes: %d\\n", \$qpd_flushes
if \$_isvoid(\$_exitcode)
  if \$_isvoid(\$_exitsignal)
    printf "qpd-exit: unknown\\n"
  else
    printf "qpd-exit: signal %d\\n", \$_exitsignal
  end
else
  printf "qpd-exit: %d\\n", \$_exitcode
end
EOF

for attempt in 1 2 3; do
	gdb -batch -nx -x "$script" --args "$@" >"$out" 2>&1 </dev/null || true
	ex=$(sed -n 's/^qpd-exit: //p' "$out" | tail -n1)
	[ -z "$ex" ] || break
	echo "count-flushes: gdb ended before the summary (attempt $attempt):" >&2
	tail -n 5 "$out" >&2
done
grep -v '^qpd-\(flushes\|exit\): ' "$out" >&2 || true
flushes=$(sed -n 's/^qpd-flushes: \([0-9]*\)$/\1/p' "$out" | tail -n1)
echo "qpd-flushes: ${flushes:-unknown}"
echo "qpd-exit: ${ex:-unknown}"
case $ex in
0) [ -n "$flushes" ] || exit 3 ;;
signal*) exit $((128 + ${ex#signal })) ;;
[0-9]*) exit "$ex" ;;
*) exit 3 ;;
esac
