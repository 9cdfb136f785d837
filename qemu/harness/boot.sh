#!/usr/bin/env bash
# boot.sh - qpd's Linux boot check: boot Debian 12's kernel with a busybox
# initramfs under qemu-system-x86_64 (q35, MTTCG, 4 vCPUs) of an upstream
# build and a qpd build of the same QEMU source, once per test plugin of
# QEMU's tests/tcg/plugins, and compare the two.
#
# The guest's /init (boot/init) runs qemu/tests/guest-threads.c (4 threads,
# fixed work, deterministic output) and boot/patch-target.c (the instruction
# libpatch rewrites), prints their output on "QPD-WORKLOAD:" lines and powers
# off. A boot passes when QEMU exits 0 before the time limit, the guest got
# to "QPD-BOOT: done" with 4 CPUs, no kernel panic or oops, the workload
# succeeded, and the plugin's output is plausible (totals non-zero, the
# entry's expected strings present). The builds agree when both pass, their
# workload lines are identical and their plugin outputs have the same shape
# (the same set of lines once counts are replaced by N: counts differ from
# run to run under MTTCG). libinline.so checks itself: it aborts QEMU when
# its callback and inline counts disagree.
#
# Environment:
#   QPD_UP_BUILD, QPD_QPD_BUILD  QEMU build directories (required), each with
#                                qemu-system-x86_64 and tests/tcg/plugins/
#   QPD_FULL                     0 (default): CI's reduced matrix (inline,
#                                bb inline=on, mem callback=on, bb with
#                                idle=on, reset, insn: about 2 minutes on 2
#                                idle cores); 1: every entry of MATRIX below
#   QPD_LOGDIR                   serial logs, plugin outputs, the table
#                                (default $QPD_QEMU_CACHE/logs/boot)
#   QPD_QEMU_CACHE               cache root (default /var/cache/qpd-qemu);
#                                the kernel, busybox and the initramfs are
#                                kept under boot/, keyed by package version
#   QPD_BOOT_TIMEOUT             seconds allowed per boot (default 300; a
#                                boot takes 3-60 s on 2 idle cores)
#   QPD_BOOT_ITERS               guest-threads iterations (default 1000000)
#   QPD_BOOT_KERNEL              vmlinux (default): boot the ELF kernel
#                                extracted from the package's vmlinuz (PVH);
#                                bzimage: boot vmlinuz itself (linuxboot_dma)
#   QPD_BOOT_APPEND              more kernel arguments (e.g. initcall_debug
#                                ignore_loglevel, to see where a boot's time goes)
#   QPD_BOOT_ONLY                an extended regex: run only the matrix
#                                entries (of the chosen matrix) whose label
#                                matches it, e.g. '^(inline|bb)$'
#
# boot.sh --command QEMU-BUILD-DIR SERIAL [LIB.so[,ARGS]] prepares the
# kernel and initramfs and prints the QEMU command line of one such boot,
# an argument per line, for timing it elsewhere (qemu/bench/qemu-bench).
#
# Exit status: 0 when qpd passes wherever upstream passes, 1 when qpd fails
# where upstream passes, 2 when the check itself cannot run.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BOOTSRC=$HERE/boot
TESTS=$HERE/../tests
CACHE=${QPD_QEMU_CACHE:-/var/cache/qpd-qemu}
FULL=${QPD_FULL:-0}
LOGDIR=${QPD_LOGDIR:-$CACHE/logs/boot}
TIMEOUT=${QPD_BOOT_TIMEOUT:-300}
ITERS=${QPD_BOOT_ITERS:-1000000}
ONLY=${QPD_BOOT_ONLY:-}
KERNEL_FORMAT=${QPD_BOOT_KERNEL:-vmlinux}
SMP=4
# The guest's kernel command line. No crypto self-tests (23 s of a 55 s boot
# under libinline), no lockup detectors or RCU stall warnings (emulation
# under a plugin is slow enough to trip them), a panic reboots at once and
# -no-reboot turns that into an exit.
CMDLINE="console=ttyS0 quiet panic=-1 cryptomgr.notests nowatchdog rcupdate.rcu_cpu_stall_suppress=1"
BUILDS=(up qpd)
declare -A BUILD_DIR
KERNEL=""      # the kernel QEMU boots: vmlinux extracted from vmlinuz, or vmlinuz
INITRD=""      # path of the initramfs (gzipped newc cpio)
ROWS=()        # result rows: plugin|upstream|qpd|verdict
FAILED=0       # rows where qpd failed and upstream passed
UP_OK=0        # rows where upstream passed
UP_FAILED=0    # rows where upstream failed

# The plugin matrix, one entry per boot pair:
#   label|library|arguments|in CI's matrix (1/0)|expected strings
# "Expected strings" are ';'-separated fixed strings that must appear in the
# plugin output or the QPD-WORKLOAD lines. Libraries a build lacks (libpatch
# and libdiscons are 10.2's) are skipped. libpatch rewrites patch-target's
# `movabs $0x5150445f4f524947, %rax` into `movabs $0x5150445f50415443, %rax`.
# Known upstream failures (QEMU 10.0.13/10.2.2), kept so that they show:
# mem region-summary=on asserts on the first access that crosses one of its
# 16 KiB regions (it is made for QEMU's own memory test); libdiscons aborts
# on the first PC mismatch it sees (an interrupt, under a second into the
# boot), so it runs once more with abort=off, printing the mismatches.
MATRIX=(
	"no plugin|||0|patch-target=original"
	"inline|libinline.so||1|"
	"bb inline=on|libbb.so|inline=on|1|"
	"mem callback=on|libmem.so|callback=on|1|mem accesses"
	"bb inline=on,idle=on|libbb.so|inline=on,idle=on|1|Idling CPU"
	"reset|libreset.so||1|reset done;uninstall done;plugin exit"
	"empty|libempty.so||0|"
	"bb|libbb.so||0|"
	"insn|libinsn.so||1|total insns"
	"insn inline=on|libinsn.so|inline=on|0|total insns"
	"mem inline=on|libmem.so|inline=on|0|mem accesses"
	"mem callback=on,haddr=on|libmem.so|callback=on,haddr=on|0|io accesses"
	"mem region-summary=on|libmem.so|region-summary=on|0|Region Base"
	"syscall|libsyscall.so||0|syscall no."
	"discons|libdiscons.so||0|"
	"discons abort=off|libdiscons.so|abort=off|0|"
	"patch|libpatch.so|target=48b84749524f5f445051,patch=48b8435441505f445051|0|Success!;patch-target=patched"
)

# log MSG...: progress on stderr.
log() { printf '[boot %s] %s\n' "$(date +%T)" "$*" >&2; }

# die MSG...: report an infrastructure failure and stop.
die() { log "error: $*"; exit 2; }

# as_root CMD...: run CMD as root (sudo when not root).
as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# apt_update: refresh the package lists, once per run.
APT_UPDATED=0
apt_update() {
	[ "$APT_UPDATED" = 1 ] && return 0
	log "apt-get update"
	as_root apt-get -o DPkg::Lock::Timeout=600 update -qq || die "apt-get update failed"
	APT_UPDATED=1
}

# install_deps: install the Debian packages the check uses on the host: the
# guest's compiler (static glibc is in libc6-dev), cpio, xz, and the
# firmware (SeaBIOS; pvh.bin, linuxboot_dma.bin and kvmvapic.bin from
# qemu-system-data; iPXE ROMs, which a NIC would load: the guest has none,
# but the three go together). Debian's QEMU source ships without these blobs.
install_deps() {
	local missing=() p
	for p in gcc libc6-dev cpio gzip xz-utils seabios qemu-system-data ipxe-qemu; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	apt_update
	log "installing: ${missing[*]}"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
		install -y -qq "${missing[@]}" >/dev/null || die "apt-get install failed"
}

# candidate PKG: the version apt would install, empty if unknown.
candidate() {
	apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" { print $2 }'
}

# kernel_package: the linux-image-6.1.0-*-amd64 package that Debian's
# linux-image-amd64 depends on.
kernel_package() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}

# fetch_deb PKG VERSION: download PKG=VERSION and extract it (dpkg-deb -x, no
# installation) into the cache once; prints the extracted tree's path.
fetch_deb() {
	local pkg=$1 ver=$2 dir tmp
	dir=$CACHE/boot/deb/${pkg}_${ver//:/_}
	if [ ! -f "$dir/.complete" ]; then
		log "downloading $pkg $ver"
		mkdir -p "$CACHE/boot/deb"
		tmp=$(mktemp -d "$CACHE/boot/deb/.dl.XXXXXX")
		# apt drops root for downloads: let its user write the directory.
		if getent passwd _apt >/dev/null; then chown _apt "$tmp" 2>/dev/null || true; fi
		if ! (cd "$tmp" && apt-get download -qq "$pkg=$ver" >/dev/null 2>&1); then
			apt_update # stale lists name files the mirror no longer has
			(cd "$tmp" && apt-get download -qq "$pkg=$ver" >/dev/null) ||
				{ rm -rf "$tmp"; die "apt-get download $pkg=$ver failed"; }
		fi
		mkdir "$tmp/root"
		dpkg-deb -x "$tmp"/*.deb "$tmp/root" || { rm -rf "$tmp"; die "dpkg-deb -x $pkg failed"; }
		touch "$tmp/root/.complete"
		rm -rf "$dir"
		mv "$tmp/root" "$dir"
		rm -rf "$tmp"
	fi
	echo "$dir"
}

# newest_cached PATTERN: the most recent cached tree matching PATTERN, for
# a machine whose package lists cannot be refreshed.
newest_cached() {
	local d
	# shellcheck disable=SC2012,SC2086 # $1 is a glob; the names are ours
	d=$(ls -dt "$CACHE"/boot/deb/$1 2>/dev/null | head -n 1 || true)
	[ -n "$d" ] && [ -f "$d/.complete" ] && echo "$d"
}

# extract_vmlinux VMLINUZ: the uncompressed ELF kernel inside Debian's
# bzImage (xz-compressed), cached beside it; prints its path. QEMU boots it
# through its PVH entry point (pvh.bin from qemu-system-data). Booting the
# bzImage itself costs some 4.5 G guest instructions of xz decompression
# before Linux starts, the bulk of a boot's instructions: minutes under
# plugins that call back on every instruction.
extract_vmlinux() {
	local z=$1 out off
	out=$(dirname "$z")/vmlinux
	if [ ! -f "$out" ]; then
		off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$z" | head -n 1 | cut -d: -f1)
		[ -n "$off" ] || die "no xz stream in $z (set QPD_BOOT_KERNEL=bzimage)"
		# xz stops at the end of its stream and complains about the rest
		tail -c +$((off + 1)) "$z" | xz -dc >"$out.tmp" 2>/dev/null || true
		[ "$(head -c 4 "$out.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
			{ rm -f "$out.tmp"; die "cannot extract vmlinux from $z"; }
		mv "$out.tmp" "$out"
	fi
	echo "$out"
}

# get_guest_packages: set KERNEL and BUSYBOX from Debian's current kernel and
# busybox-static packages (downloaded, not installed: busybox-static
# conflicts with the busybox package a host may need).
BUSYBOX=""
BUSYBOX_VER=""
get_guest_packages() {
	local kpkg kver dir
	kpkg=$(kernel_package)
	BUSYBOX_VER=$(candidate busybox-static)
	if [ -z "$kpkg" ] || [ -z "$BUSYBOX_VER" ]; then
		apt_update
		kpkg=$(kernel_package)
		BUSYBOX_VER=$(candidate busybox-static)
	fi
	[ -n "$kpkg" ] && kver=$(candidate "$kpkg") || kver=""
	if [ -n "$kver" ]; then
		dir=$(fetch_deb "$kpkg" "$kver")
	else
		dir=$(newest_cached 'linux-image-6.1.0-*-amd64_*') ||
			die "cannot resolve linux-image-amd64's kernel package"
		log "using cached kernel $dir"
	fi
	KERNEL=$(find "$dir/boot" -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | head -n 1)
	[ -f "$KERNEL" ] || die "no vmlinuz in $dir"
	[ "$KERNEL_FORMAT" = bzimage ] || KERNEL=$(extract_vmlinux "$KERNEL")
	if [ -n "$BUSYBOX_VER" ]; then
		dir=$(fetch_deb busybox-static "$BUSYBOX_VER")
	else
		dir=$(newest_cached 'busybox-static_*') || die "cannot resolve busybox-static"
		BUSYBOX_VER=${dir##*/}
	fi
	BUSYBOX=$dir/bin/busybox
	[ -x "$BUSYBOX" ] || die "no bin/busybox in $dir"
	log "kernel ${KERNEL#"$CACHE"/}, busybox $BUSYBOX_VER"
}

# build_initramfs: the guest's initramfs (busybox, /init, the workload and the
# patch target, /dev/console), cached under a key of everything it holds.
build_initramfs() {
	local key stage out
	key=$( {
		echo "busybox $BUSYBOX_VER"
		gcc -dumpfullversion
		dpkg-query -W -f='${Version}\n' libc6-dev
		cat "$BOOTSRC/init" "$TESTS/guest-threads.c" "$BOOTSRC/patch-target.c"
		declare -f build_initramfs
	} | sha256sum | cut -c1-16)
	out=$CACHE/boot/initramfs-$key.cpio.gz
	INITRD=$out
	[ -f "$out" ] && return 0
	log "building initramfs $key"
	stage=$(mktemp -d)
	mkdir -p "$stage"/{bin,dev,proc,sys,tmp}
	cp "$BUSYBOX" "$stage/bin/busybox"
	install -m 755 "$BOOTSRC/init" "$stage/init"
	gcc -O2 -static -pthread -o "$stage/bin/guest-threads" "$TESTS/guest-threads.c" ||
		die "cannot build guest-threads"
	gcc -O2 -static -o "$stage/bin/patch-target" "$BOOTSRC/patch-target.c" ||
		die "cannot build patch-target"
	# The kernel opens /dev/console for init before any devtmpfs is mounted.
	mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null ||
		log "warning: cannot mknod /dev/console (not root?): early init output is lost"
	(cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -9) \
		>"$out.tmp" || die "cannot write the initramfs"
	mv "$out.tmp" "$out"
	rm -rf "$stage"
}

# setup_builds: read the two build directories and check what they hold.
setup_builds() {
	BUILD_DIR[up]=$(cd "${QPD_UP_BUILD:?set QPD_UP_BUILD to a QEMU build dir}" && pwd)
	BUILD_DIR[qpd]=$(cd "${QPD_QPD_BUILD:?set QPD_QPD_BUILD to a QEMU build dir}" && pwd)
	local b
	for b in "${BUILDS[@]}"; do
		[ -x "${BUILD_DIR[$b]}/qemu-system-x86_64" ] ||
			die "${BUILD_DIR[$b]}/qemu-system-x86_64 missing"
		compgen -G "${BUILD_DIR[$b]}/tests/tcg/plugins/lib*.so" >/dev/null ||
			die "no plugins in ${BUILD_DIR[$b]}/tests/tcg/plugins (ninja -C ${BUILD_DIR[$b]} test-plugins)"
	done
}

# boot_cmd QEMU-BUILD-DIR SERIAL [PLUGIN-SPEC [PLUGIN-LOG]]: set CMD to the
# QEMU command line of one boot (no time limit), the serial console going
# to the file SERIAL, with a plugin (LIB.so[,ARGS] of the build's
# tests/tcg/plugins) if given, its output in PLUGIN-LOG.
boot_cmd() {
	local build=$1 serial=$2 spec=${3:-} plog=${4:-} plugin=()
	if [ -n "$spec" ]; then
		plugin=(-plugin "$build/tests/tcg/plugins/$spec")
		[ -z "$plog" ] || plugin+=(-d plugin -D "$plog")
	fi
	# shellcheck disable=SC2054 # the commas belong to QEMU's options
	CMD=("$build/qemu-system-x86_64"
		-M q35 -accel tcg,thread=multi -smp "$SMP" -m 256M
		-nodefaults -no-user-config -display none -no-reboot
		-L /usr/share/seabios -L /usr/share/qemu
		-kernel "$KERNEL" -initrd "$INITRD"
		-append "$CMDLINE"
		-serial "file:$serial"
		"${plugin[@]}")
}

# run_boot BUILD LIB ARGS DIR: boot once under BUILD's QEMU with plugin LIB
# (none if empty) and ARGS; leave serial.log, plugin.log, qemu.log, cmd,
# rc and seconds in DIR.
run_boot() {
	local build=$1 lib=$2 args=$3 dir=$4 t0 t1 rc=0
	mkdir -p "$dir"
	rm -f "$dir"/{serial,plugin,qemu}.log
	boot_cmd "${BUILD_DIR[$build]}" "$dir/serial.log" \
		"${lib:+$lib${args:+,$args}}" "$dir/plugin.log"
	local cmd=(timeout -k 10 "$TIMEOUT" "${CMD[@]}")
	printf '%q ' "${cmd[@]}" >"$dir/cmd"
	echo >>"$dir/cmd"
	t0=$(date +%s.%N)
	"${cmd[@]}" </dev/null >"$dir/qemu.log" 2>&1 || rc=$?
	t1=$(date +%s.%N)
	echo "$rc" >"$dir/rc"
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' >"$dir/seconds"
	touch "$dir/serial.log" "$dir/plugin.log"
}

# workload DIR: the guest's QPD-WORKLOAD lines.
workload() {
	tr -d '\r' <"$1/serial.log" | grep '^QPD-WORKLOAD:' || true
}

# shape DIR: the plugin output's set of lines with every number (decimal,
# hex with or without 0x) replaced by N; vCPU indices ("cpu 1", "CPU1",
# "VCPU 1") are kept.
shape() {
	perl -pe 's/((?i:v?cpu) ?)(\d+)|\b(?:0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*\b/defined $2 ? "$1<$2>" : "N"/ge' \
		"$1/plugin.log" | LC_ALL=C sort -u
}

# implausible DIR: why the plugin output is implausible, or nothing: a total
# that is zero (libinline's, libbb's, libinsn's and libmem's totals).
implausible() {
	grep -E '^(Total: |total insns: |mem accesses: |tb: |insn: |mem: )' "$1/plugin.log" |
		grep -E '(^|[^0-9])0([^0-9]|$)' | head -n 1 | sed 's/^/zero total: /' || true
}

# status DIR EXPECT: "ok" or what went wrong in the boot left in DIR.
status() {
	local dir=$1 expect=$2 rc s bad e
	rc=$(cat "$dir/rc")
	s=$(tr -d '\r' <"$dir/serial.log")
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		echo "timeout"; return
	fi
	if grep -q 'Kernel panic' <<<"$s"; then
		echo "kernel panic"; return
	fi
	if [ "$rc" != 0 ]; then
		if [ "$rc" -gt 128 ]; then echo "qemu signal $((rc - 128))"; else echo "qemu rc=$rc"; fi
		return
	fi
	if ! grep -q '^QPD-BOOT: done' <<<"$s"; then
		echo "no power-off marker"; return
	fi
	if ! grep -q '^QPD-BOOT: oops=0' <<<"$s"; then
		echo "kernel oops"; return
	fi
	if ! grep -qx "QPD-WORKLOAD: cpus=$SMP" <<<"$s"; then
		echo "not $SMP CPUs"; return
	fi
	if workload "$dir" | grep -v 'cpus=' | grep -qv '^QPD-WORKLOAD: rc=0 '; then
		echo "workload failed"; return
	fi
	bad=$(implausible "$dir")
	if [ -n "$bad" ]; then
		echo "$bad"; return
	fi
	local IFS=';'
	for e in $expect; do
		if ! { cat "$dir/plugin.log"; workload "$dir"; } | grep -qF -- "$e"; then
			echo "missing \"$e\""; return
		fi
	done
	echo ok
}

# have_lib BUILD LIB: whether BUILD has plugin LIB (no plugin: always).
have_lib() {
	[ -z "$2" ] || [ -f "${BUILD_DIR[$1]}/tests/tcg/plugins/$2" ]
}

# check_entry ENTRY: boot upstream and qpd under one matrix entry, compare,
# add a row to ROWS.
check_entry() {
	local label lib args ci expect dir b st_up st_qpd verdict
	IFS='|' read -r label lib args ci expect <<<"$1"
	if ! have_lib up "$lib"; then
		log "$label: upstream has no $lib, skipped"
		ROWS+=("$label|absent|-|skipped")
		return
	fi
	if ! have_lib qpd "$lib"; then
		ROWS+=("$label|-|absent|FAIL (qpd build lacks $lib)")
		FAILED=$((FAILED + 1))
		return
	fi
	dir=$LOGDIR/$(tr -c 'A-Za-z0-9=.\n-' '_' <<<"$label")
	rm -f "$dir"/*.diff
	for b in "${BUILDS[@]}"; do
		log "$label: booting $b"
		run_boot "$b" "$lib" "$args" "$dir/$b"
		log "$label: $b: $(status "$dir/$b" "$expect"), $(cat "$dir/$b/seconds") s"
	done
	st_up=$(status "$dir/up" "$expect")
	st_qpd=$(status "$dir/qpd" "$expect")
	if [ "$st_up" != ok ]; then
		verdict="upstream failure"
		UP_FAILED=$((UP_FAILED + 1))
	elif [ "$st_qpd" != ok ]; then
		verdict="FAIL"
	elif ! diff <(workload "$dir/up") <(workload "$dir/qpd") >"$dir/workload.diff"; then
		verdict="FAIL (workload output differs)"
	elif ! diff <(shape "$dir/up") <(shape "$dir/qpd") >"$dir/shape.diff"; then
		verdict="FAIL (plugin output shape differs)"
	else
		verdict="pass"
	fi
	[ "$st_up" != ok ] || UP_OK=$((UP_OK + 1))
	case "$verdict" in FAIL*) FAILED=$((FAILED + 1)) ;; esac
	if [ -s "$dir/workload.diff" ] || [ -s "$dir/shape.diff" ]; then
		log "$label: differences (< upstream, > qpd):"
		cat "$dir"/*.diff | grep '^[<>]' | head -n 20 >&2 || true
	fi
	ROWS+=("$label|$st_up, $(cat "$dir/up/seconds") s|$st_qpd, $(cat "$dir/qpd/seconds") s|$verdict")
}

# print_table: the result rows as a Markdown table, also kept in the log dir.
print_table() {
	local r
	{
		echo "| plugin | upstream (status, time) | qpd (status, time) | verdict |"
		echo "| --- | --- | --- | --- |"
		for r in "${ROWS[@]}"; do
			echo "| ${r//|/ | } |"
		done
	} | tee "$LOGDIR/table.md"
}

# prepare: the host packages, the guest's kernel and initramfs.
prepare() {
	install_deps
	mkdir -p "$CACHE/boot" "$LOGDIR"
	get_guest_packages
	build_initramfs
	CMDLINE+=" qpd.threads=$SMP qpd.iters=$ITERS${QPD_BOOT_APPEND:+ $QPD_BOOT_APPEND}"
}

main() {
	local e ci
	if [ "${1:-}" = --command ]; then
		[ $# -ge 3 ] || die "usage: boot.sh --command QEMU-BUILD-DIR SERIAL [LIB.so[,ARGS]]"
		prepare
		boot_cmd "$(cd "$2" && pwd)" "$3" "${4:-}"
		printf '%s\n' "${CMD[@]}"
		return 0
	fi
	setup_builds
	prepare
	log "initramfs ${INITRD#"$CACHE"/}, logs in $LOGDIR, matrix: $([ "$FULL" = 1 ] && echo full || echo CI)"
	for e in "${MATRIX[@]}"; do
		ci=$(cut -d'|' -f4 <<<"$e")
		[ "$FULL" = 1 ] || [ "$ci" = 1 ] || continue
		[ -z "$ONLY" ] || grep -qE -- "$ONLY" <<<"${e%%|*}" || continue
		check_entry "$e"
	done
	[ ${#ROWS[@]} -gt 0 ] || die "no matrix entry selected"
	print_table
	[ "$UP_FAILED" -eq 0 ] || log "$UP_FAILED upstream failure(s): not counted against qpd"
	if [ "$FAILED" -gt 0 ]; then
		log "$FAILED plugin(s): qpd fails where upstream passes"
		exit 1
	fi
	# Nothing compared at all: the kernel, initramfs or firmware is broken.
	[ "$UP_OK" -gt 0 ] || die "upstream passed no boot: nothing was compared (see $LOGDIR)"
	log "qpd agrees with upstream wherever upstream passes ($UP_OK compared)"
}

main "$@"
