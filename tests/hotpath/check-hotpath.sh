#!/usr/bin/env bash
# Fails if an inline dispatch path contains a locked or atomic
# read-modify-write instruction, a fence, or a call other than the
# callback's indirect call.  x86-64 only; elsewhere it skips (exit 77).
set -euo pipefail
bin=$1
[ "$(uname -m)" = x86_64 ] || exit 77
command -v objdump >/dev/null || exit 77
funcs=(hot_tb_trans hot_syscall hot_syscall_ret hot_syscall_filter hot_discon
       hot_inline_add hot_dyn_exec hot_dyn_exec_mem)
bad=0
dump=$(objdump -d --no-show-raw-insn "$bin")
for f in "${funcs[@]}"; do
	body=$(printf '%s\n' "$dump" |
		awk -v f="<$f>:" '$2 == f {on = 1; next} on && /^$/ {on = 0} on')
	if [ -z "$body" ]; then
		echo "$f: not found"; bad=1; continue
	fi
	n=$(printf '%s\n' "$body" | wc -l)
	hits=$(printf '%s\n' "$body" |
		grep -E '\block\b|xchg +[^,]*,.*\(|cmpxchg|xadd|mfence|lfence|sfence|\bcall +[0-9a-f]+ <' || true)
	if [ -n "$hits" ]; then
		echo "$f: forbidden instructions:"; printf '%s\n' "$hits"; bad=1
	else
		echo "$f: $n instructions, no lock/RMW/fence/direct call"
	fi
done
exit $bad
