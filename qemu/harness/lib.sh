# shellcheck shell=bash
# Shared functions of the QEMU harness (sourced by build.sh, check-tcg.sh,
# main.sh). The harness gets QEMU's source from Debian (the only archive a
# CI machine can reach), builds it twice -- upstream as is and the qpd
# variant made by qemu/apply -- and runs QEMU's own tests on both.
#
# Everything it downloads or builds lives under one cache root,
# $QPD_QEMU_CACHE (default /var/cache/qpd-qemu), so CI can keep it between
# runs and a second run is incremental:
#   apt/                 private apt configuration, lists and .debs
#   ccache/              compiler cache shared by all trees
#   src/qemu-V/          pristine unpacked Debian source (never built in)
#   V/upstream/          copy of the pristine source, build dir V/upstream/build
#   V/qpd-stage/         pristine copy that qemu/apply rewrites on every run
#   V/qpd/               content-synced from qpd-stage, build dir V/qpd/build
#   V/logs/              configure/build/test logs of the last run
# No mirror host name is written here: the archive URI is read from the
# system's apt configuration at run time.

QPD_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QPD_CACHE=${QPD_QEMU_CACHE:-/var/cache/qpd-qemu}
QPD_JOBS=${QPD_JOBS:-2}
QPD_TARGET_LIST=${QPD_TARGET_LIST:-x86_64-linux-user,x86_64-softmmu}

# The configure line known to work with Debian's "+ds" tarballs (blobs and
# downloadable subprojects are stripped, so nothing may be downloaded or
# installed from pc-bios; firmware comes from Debian packages instead).
# shellcheck disable=SC2034 # used by build.sh
QPD_CONFIGURE_FLAGS=(
	--python=/usr/bin/python3
	"--target-list=$QPD_TARGET_LIST"
	--enable-plugins --disable-docs --disable-download --disable-werror
	--disable-install-blobs --disable-containers --disable-tools
	--disable-guest-agent
)

# Debian 12 packages the harness needs. meson and python3-pycotap come
# from bookworm-backports (QEMU 10 needs meson >= 1.5; bookworm has 1.0).
QPD_DEB_PKGS=(
	build-essential pkg-config ninja-build python3 python3-venv python3-pip
	python3-setuptools libglib2.0-dev zlib1g-dev flex bison
	device-tree-compiler ccache libck-dev libjemalloc-dev libnuma-dev gdb
	hyperfine dpkg-dev rsync xz-utils debian-archive-keyring
	seabios qemu-system-data ipxe-qemu
)
QPD_BPO_PKGS=(meson python3-pycotap)
QPD_MESON_MIN=1.5

# ---------------------------------------------------------------- logging

qpd_log() { printf '[qemu %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
qpd_warn() { qpd_log "WARNING: $*"; }
qpd_die() { qpd_log "ERROR: $*"; exit 1; }

# qpd_fmt_secs S: 754 -> "12m34s", so phase times read at a glance.
qpd_fmt_secs() {
	local s=$1
	if [ "$s" -ge 60 ]; then printf '%dm%02ds' $((s / 60)) $((s % 60))
	else printf '%ds' "$s"; fi
}

# qpd_sudo CMD...: the harness runs as root in CI; elsewhere use sudo.
qpd_sudo() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# ------------------------------------------------------------ private apt

QPD_APT_DIR=$QPD_CACHE/apt
QPD_APT_CONF=$QPD_APT_DIR/apt.conf
# Source suites always listed; a suite asked for by name is added.
QPD_SRC_SUITES=${QPD_SRC_SUITES:-trixie sid}

# qpd_mirror_uri: the URI of the system's Debian archive, taken from the
# entry serving bookworm (deb822 .sources or one-line .list format), so
# the harness follows whatever mirror the machine is set up for.
qpd_mirror_uri() {
	if [ -n "${QPD_DEBIAN_MIRROR:-}" ]; then
		echo "$QPD_DEBIAN_MIRROR"
		return
	fi
	local f uri
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		# Paragraph mode: one stanza per record; skip comments and
		# disabled stanzas; the suite must be exactly "bookworm".
		uri=$(awk 'BEGIN { RS = ""; FS = "\n" }
			{
				uris = ""; suites = ""; on = 1
				for (i = 1; i <= NF; i++) {
					l = $i
					if (l ~ /^[ \t]*#/) continue
					k = tolower(l)
					v = l; sub(/^[^:]*:[ \t]*/, "", v)
					if (k ~ /^uris:/) uris = v
					else if (k ~ /^suites:/) suites = " " v " "
					else if (k ~ /^enabled:[ \t]*no/) on = 0
				}
				if (on && uris != "" && suites ~ /[ \t]bookworm[ \t]/) {
					split(uris, u, /[ \t]+/); print u[1]; exit
				}
			}' "$f")
		if [ -n "$uri" ]; then echo "$uri"; return; fi
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		# "deb [opts...] URI SUITE COMPONENTS": skip the bracketed options.
		uri=$(awk '$1 == "deb" || $1 == "deb-src" {
				i = 2
				if ($i ~ /^\[/) { while (i < NF && $i !~ /\]$/) i++; i++ }
				if ($(i + 1) == "bookworm") { print $i; exit }
			}' "$f")
		if [ -n "$uri" ]; then echo "$uri"; return; fi
	done
	return 1
}

# qpd_apt_setup [SUITE...]: write the private apt configuration. It adds
# bookworm-backports binaries and the source suites without touching
# /etc/apt; SourceParts stays the system's, so the system's own entries
# still resolve dependencies. Sets QPD_APT_CHANGED=1 if sources changed.
qpd_apt_setup() {
	local uri suites s key=/usr/share/keyrings/debian-archive-keyring.gpg
	uri=$(qpd_mirror_uri) ||
		qpd_die "no bookworm entry in /etc/apt; set QPD_DEBIAN_MIRROR=URI"
	mkdir -p "$QPD_APT_DIR/lists/partial" "$QPD_APT_DIR/archives/partial"
	# Suites added by earlier runs stay listed: dropping one would only
	# force another apt-get update when it is asked for again.
	suites=$QPD_SRC_SUITES
	for s in "$@" $(awk '$1 == "deb-src" { print $(NF - 1) }' \
		"$QPD_APT_DIR/sources.list" 2>/dev/null); do
		case " $suites " in *" $s "*) ;; *) suites+=" $s" ;; esac
	done
	local list
	list="deb [signed-by=$key] $uri bookworm-backports main"$'\n'
	for s in $suites; do
		list+="deb-src [signed-by=$key] $uri $s main"$'\n'
	done
	QPD_APT_CHANGED=0
	if [ "$(cat "$QPD_APT_DIR/sources.list" 2>/dev/null)"$'\n' != "$list" ]; then
		printf '%s' "$list" >"$QPD_APT_DIR/sources.list"
		QPD_APT_CHANGED=1
	fi
	# pkgcache "": the binary caches would be built from the private
	# lists and clash with the system's; apt rebuilds them in memory.
	cat >"$QPD_APT_CONF" <<-EOF
		Dir::Etc::SourceList "$QPD_APT_DIR/sources.list";
		Dir::State::Lists "$QPD_APT_DIR/lists";
		Dir::Cache::archives "$QPD_APT_DIR/archives";
		Dir::Cache::pkgcache "";
		Dir::Cache::srcpkgcache "";
		Acquire::Languages "none";
		DPkg::Lock::Timeout "600";
	EOF
}

# qpd_apt CMD ARGS...: run apt-get/apt-cache with the private configuration.
qpd_apt() {
	local cmd=$1
	shift
	APT_CONFIG=$QPD_APT_CONF DEBIAN_FRONTEND=noninteractive "$cmd" "$@"
}

# qpd_apt_update [force]: refresh the private lists when they are missing,
# older than QPD_APT_MAX_AGE minutes (default 360), the sources changed,
# or when forced (before installing). A failed refresh with usable old
# lists is only a warning: a cached source tree may still be enough.
qpd_apt_update() {
	local force=${1:-} stamp=$QPD_APT_DIR/lists/.qpd-updated
	if [ -z "$force" ] && [ "${QPD_APT_CHANGED:-0}" = 0 ] && [ -f "$stamp" ] &&
		[ -z "$(find "$stamp" -mmin +"${QPD_APT_MAX_AGE:-360}")" ]; then
		return 0
	fi
	qpd_log "apt-get update (private configuration)"
	if qpd_apt apt-get update -qq >"$QPD_APT_DIR/update.log" 2>&1; then
		touch "$stamp"
	elif [ -f "$stamp" ]; then
		qpd_warn "apt-get update failed, using older lists ($QPD_APT_DIR/update.log)"
	else
		cat "$QPD_APT_DIR/update.log" >&2
		qpd_die "apt-get update failed"
	fi
}

# ------------------------------------------------------ script arguments

# qpd_script_start HELP_LINES ARGS...: the options build.sh and check-tcg.sh
# share (--qemu VER|SUITE, -h); takes the cache lock and selects the
# version.  HELP_LINES is the sed range of the calling script's usage text.
qpd_script_start() {
	local help=$1 spec=""
	shift
	while [ $# -gt 0 ]; do
		case $1 in
		--qemu) spec=${2:?--qemu needs a version or suite}; shift 2 ;;
		-h | --help) sed -n "${help}p" "$0"; exit 0 ;;
		*) qpd_die "unknown argument $1" ;;
		esac
	done
	qpd_lock
	qpd_use_version "$spec"
}

# ----------------------------------------------------------- dependencies

qpd_pkg_installed() {
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# qpd_meson_ok: QEMU 10's configure refuses meson older than 1.5.
qpd_meson_ok() {
	local v
	v=$(dpkg-query -W -f='${Version}' meson 2>/dev/null) || return 1
	dpkg --compare-versions "$v" ge "$QPD_MESON_MIN"
}

# qpd_install_deps: install only what is missing (after an apt-get update,
# since a fresh machine's lists may be stale or empty).
qpd_install_deps() {
	local missing=() bpo=() p
	for p in "${QPD_DEB_PKGS[@]}"; do
		qpd_pkg_installed "$p" || missing+=("$p")
	done
	qpd_meson_ok || bpo+=(meson)
	for p in "${QPD_BPO_PKGS[@]}"; do
		[ "$p" = meson ] && continue
		qpd_pkg_installed "$p" || bpo+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ] && [ ${#bpo[@]} -eq 0 ]; then
		qpd_log "dependencies: all installed"
		return 0
	fi
	qpd_apt_setup
	qpd_apt_update force
	if [ ${#missing[@]} -gt 0 ]; then
		qpd_log "installing: ${missing[*]}"
		qpd_sudo env APT_CONFIG="$QPD_APT_CONF" DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends "${missing[@]}" \
			>"$QPD_APT_DIR/install.log" 2>&1 ||
			{ tail -n 30 "$QPD_APT_DIR/install.log" >&2; qpd_die "apt-get install failed"; }
	fi
	if [ ${#bpo[@]} -gt 0 ]; then
		qpd_log "installing from bookworm-backports: ${bpo[*]}"
		qpd_sudo env APT_CONFIG="$QPD_APT_CONF" DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends \
			-t bookworm-backports "${bpo[@]}" >"$QPD_APT_DIR/install-bpo.log" 2>&1 ||
			{ tail -n 30 "$QPD_APT_DIR/install-bpo.log" >&2; qpd_die "apt-get install -t bookworm-backports failed"; }
	fi
	qpd_meson_ok || qpd_die "meson >= $QPD_MESON_MIN still missing"
}

# ------------------------------------------------------- version selection

# qpd_upstream_of DEBVER: 1:10.0.13+ds-0+deb13u1 -> 10.0.13
qpd_upstream_of() {
	local v=${1#*:}
	v=${v%-*}
	echo "${v%%+*}"
}

# qpd_newest: the newest of the Debian versions on stdin (dpkg's order:
# sort -V gets "~" wrong).
qpd_newest() {
	local best="" v
	while read -r v; do
		[ -n "$v" ] || continue
		if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then
			best=$v
		fi
	done
	[ -n "$best" ] && echo "$best"
}

# qpd_resolve_version SPEC: sets QPD_DEB_VERSION (Debian's) and
# QPD_QEMU_VERSION (upstream's). SPEC is
#   ""          the version trixie serves (Debian 13's QEMU, 10.0.x),
#   10.2        the newest 10.2.x served by any listed suite,
#   10.0.13     that upstream version (newest Debian revision of it),
#   1:10.2.2+ds-1   that exact Debian version,
#   sid, forky  the newest version that suite serves.
qpd_resolve_version() {
	local spec=${1:-trixie} suite="" lines
	case "$spec" in
	[0-9]*) ;;
	*) suite=$spec ;;
	esac
	if [ -n "$suite" ]; then
		qpd_apt_setup "$suite"
	else
		qpd_apt_setup
	fi
	qpd_apt_update
	# madison: "qemu | 1:10.2.2+ds-1 | URI sid/main Sources"
	lines=$(qpd_apt apt-cache madison qemu | awk -F' *[|] *' '$3 ~ / Sources$/ {
			n = split($3, w, " "); split(w[n - 1], s, "/"); print $2, s[1] }')
	[ -n "$lines" ] || qpd_die "no qemu source package in the private apt lists"
	if [ -n "$suite" ]; then
		QPD_DEB_VERSION=$(awk -v s="$suite" '$2 == s { print $1 }' <<<"$lines" | qpd_newest) ||
			qpd_die "suite '$suite' serves no qemu source (have: $(tr '\n' ' ' <<<"$lines"))"
	elif [[ $spec == *:* || $spec == *-* || $spec == *+* ]]; then
		QPD_DEB_VERSION=$(awk -v v="$spec" '$1 == v || $1 == "1:" v { print $1 }' <<<"$lines" | qpd_newest) ||
			qpd_die "qemu $spec is not served (have: $(tr '\n' ' ' <<<"$lines"))"
	else
		# 10.2 matches 10.2.x; 10.0.13 matches exactly that release.
		local v up
		QPD_DEB_VERSION=$(while read -r v _; do
				up=$(qpd_upstream_of "$v")
				if [[ $up == "$spec" || $up == "$spec".* ]]; then echo "$v"; fi
			done <<<"$lines" | qpd_newest) ||
			qpd_die "no qemu $spec.x is served (have: $(tr '\n' ' ' <<<"$lines"))"
	fi
	QPD_QEMU_VERSION=$(qpd_upstream_of "$QPD_DEB_VERSION")
	export QPD_DEB_VERSION QPD_QEMU_VERSION
}

# qpd_use_version SPEC: like qpd_resolve_version, but when main.sh already
# resolved (QPD_QEMU_VERSION in the environment) or SPEC names an upstream
# version whose source is already unpacked, no apt lookup is done.
qpd_use_version() {
	local spec=${1:-}
	if [ -z "$spec" ] && [ -n "${QPD_QEMU_VERSION:-}" ]; then
		:
	elif [[ $spec =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] &&
		[ -f "$QPD_CACHE/src/qemu-$spec/.qpd-debian-version" ]; then
		QPD_QEMU_VERSION=$spec
		QPD_DEB_VERSION=$(cat "$QPD_CACHE/src/qemu-$spec/.qpd-debian-version")
	else
		qpd_resolve_version "$spec"
	fi
	QPD_VDIR=$QPD_CACHE/$QPD_QEMU_VERSION
	QPD_LOGDIR=${QPD_LOGDIR:-$QPD_VDIR/logs}
	QPD_UP_TREE=$QPD_VDIR/upstream
	QPD_QPD_TREE=$QPD_VDIR/qpd
	QPD_UP_BUILD=$QPD_UP_TREE/build
	QPD_QPD_BUILD=$QPD_QPD_TREE/build
	mkdir -p "$QPD_LOGDIR"
	export QPD_QEMU_VERSION QPD_DEB_VERSION QPD_LOGDIR QPD_UP_BUILD QPD_QPD_BUILD
}

# ------------------------------------------------------------------ source

# qpd_fetch_source: download Debian's source package of QPD_DEB_VERSION and
# unpack it with Debian's patches applied into $CACHE/src/qemu-V. Cached:
# the stamp names the Debian version unpacked, a new revision re-unpacks.
# apt checks the files against the signed Sources index, so dpkg-source's
# "cannot verify inline signature" (no developer keyring) is harmless.
qpd_fetch_source() {
	local dst=$QPD_CACHE/src/qemu-$QPD_QEMU_VERSION
	local stamp=$dst/.qpd-debian-version
	if [ "$(cat "$stamp" 2>/dev/null)" = "$QPD_DEB_VERSION" ]; then
		qpd_log "source: qemu $QPD_DEB_VERSION cached in $dst"
		return 0
	fi
	local dl=$QPD_CACHE/src/dl dsc
	mkdir -p "$dl"
	dsc=$dl/qemu_${QPD_DEB_VERSION#*:}.dsc
	if [ ! -f "$dsc" ]; then
		[ -f "$QPD_APT_CONF" ] || qpd_apt_setup
		qpd_log "source: downloading qemu $QPD_DEB_VERSION"
		(cd "$dl" && qpd_apt apt-get source -qq --download-only \
			"qemu=$QPD_DEB_VERSION") >"$dl/download.log" 2>&1 || {
			cat "$dl/download.log" >&2
			qpd_die "apt-get source qemu=$QPD_DEB_VERSION failed"
		}
	fi
	qpd_log "source: unpacking into $dst"
	# Unpack inside dl/: dpkg-source puts a copy of the orig tarball next
	# to the directory it creates.
	local tmp=qemu-$QPD_QEMU_VERSION.tmp
	rm -rf "$dst" "${dl:?}/$tmp"
	(cd "$dl" && dpkg-source -x "${dsc##*/}" "$tmp") >"$dl/unpack.log" 2>&1 || {
		cat "$dl/unpack.log" >&2
		qpd_die "dpkg-source -x $dsc failed"
	}
	echo "$QPD_DEB_VERSION" >"$dl/$tmp/.qpd-debian-version"
	mv "$dl/$tmp" "$dst"
}

# qpd_select_source SPEC: resolve the version, unpack its source, and
# leave "VERSION DEBIAN-VERSION" in $CACHE/.selected (for main.sh, which
# runs this in a process of its own).
qpd_select_source() {
	qpd_use_version "${1:-}"
	qpd_fetch_source
	echo "$QPD_QEMU_VERSION $QPD_DEB_VERSION" >"$QPD_CACHE/.selected"
}

# qpd_sync_tree SRC DST: make DST's content equal SRC's, but touch only
# files whose content differs (rsync -c, no -t), so that make/ninja in
# DST/build rebuild only what really changed. DST/build is left alone.
qpd_sync_tree() {
	mkdir -p "$2"
	rsync -rlpc --delete --exclude=/build/ --exclude=/.qpd-debian-version \
		"$1/" "$2/"
}

# qpd_apply_cmd: the command that turns a QEMU tree into the qpd variant.
# QPD_APPLY overrides it (e.g. QPD_APPLY=true: a qpd tree identical to
# upstream, to exercise the harness before qemu/apply exists).
qpd_apply_cmd() {
	echo "${QPD_APPLY:-$QPD_REPO/qemu/apply}"
}

# qpd_make_trees [upstream] [qpd]: (re)create the two source trees from
# the pristine source. The qpd tree is produced by applying qemu/apply to a
# fresh pristine copy (qpd-stage) on every run -- apply is idempotent and
# its inputs (qpd's sources, the adapter) may have changed -- and is then
# content-synced into V/qpd, so an unchanged adapter costs no rebuild.
qpd_make_trees() {
	local src=$QPD_CACHE/src/qemu-$QPD_QEMU_VERSION w apply
	[ -d "$src" ] || qpd_die "no source in $src (qpd_fetch_source first)"
	for w in "$@"; do
		case $w in
		upstream)
			qpd_log "tree: upstream ($QPD_UP_TREE)"
			qpd_sync_tree "$src" "$QPD_UP_TREE"
			;;
		qpd)
			apply=$(qpd_apply_cmd)
			[ "${QPD_APPLY:-}" ] || [ -x "$apply" ] ||
				qpd_die "$apply does not exist yet (set QPD_APPLY, or QPD_BUILDS=upstream)"
			qpd_log "tree: qpd ($QPD_QPD_TREE) via $apply"
			# -c: apply may rewrite a file keeping its size and mtime second.
			rsync -ac --delete "$src/" "$QPD_VDIR/qpd-stage/"
			$apply "$QPD_VDIR/qpd-stage" >"$QPD_LOGDIR/apply.log" 2>&1 || {
				cat "$QPD_LOGDIR/apply.log" >&2
				qpd_die "$apply failed"
			}
			qpd_sync_tree "$QPD_VDIR/qpd-stage" "$QPD_QPD_TREE"
			;;
		*) qpd_die "unknown tree $w" ;;
		esac
	done
}

# ---------------------------------------------------------------- ccache

# qpd_ccache_env: QEMU's configure names the compiler "cc" in its meson
# cross file, which keeps meson from adding ccache by itself; Debian's
# ccache masquerade directory first in PATH wraps every cc/c++ call. The
# two trees differ only in path and qpd's edits: BASEDIR makes paths under
# the cache root relative and NOHASHDIR keeps the build directory out of
# the hash (-g), so the qpd tree hits the upstream tree's objects.
qpd_ccache_env() {
	if [ -d /usr/lib/ccache ] && [ "${QPD_CCACHE:-1}" = 1 ]; then
		case ":$PATH:" in *:/usr/lib/ccache:*) ;; *) PATH=/usr/lib/ccache:$PATH ;; esac
		export PATH
		export CCACHE_DIR=${CCACHE_DIR:-$QPD_CACHE/ccache}
		export CCACHE_BASEDIR=$QPD_CACHE CCACHE_NOHASHDIR=1
		export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-6G}
		mkdir -p "$CCACHE_DIR"
	fi
}

# ----------------------------------------------------------------- firmware

# qpd_link_firmware BUILD: the "+ds" source has no firmware blobs, and
# system-mode tests need SeaBIOS, the VGA and NIC option ROMs and the
# linuxboot/kvmvapic ROMs. QEMU run from a build dir searches its
# qemu-bundle data dir, so link Debian's copies there (not overriding
# anything the build installed itself). Done after each build, since
# the build's own install step may refresh qemu-bundle.
qpd_link_firmware() {
	local b=$1 dst f n
	dst=$(find "$b/qemu-bundle" -maxdepth 5 -type d -path '*/share/qemu' 2>/dev/null | head -n1)
	[ -n "$dst" ] || dst=$b/qemu-bundle/usr/local/share/qemu
	mkdir -p "$dst"
	for f in /usr/share/seabios/* /usr/lib/ipxe/qemu/* /usr/share/qemu/*; do
		[ -e "$f" ] || continue
		n=$dst/${f##*/}
		if [ ! -e "$n" ]; then
			ln -sfn "$f" "$n"
		fi
	done
	[ -e "$dst/bios-256k.bin" ] || qpd_warn "no bios-256k.bin for $b (seabios missing?)"
}

# qpd_builds: which builds to make and test ("upstream qpd" by default).
qpd_builds() {
	echo "${QPD_BUILDS:-upstream qpd}"
}

# qpd_build_dir NAME: the build directory of "upstream" or "qpd".
qpd_build_dir() {
	case $1 in
	upstream) echo "$QPD_UP_BUILD" ;;
	qpd) echo "$QPD_QPD_BUILD" ;;
	*) qpd_die "unknown build $1" ;;
	esac
}

# qpd_lock: one harness run per cache root at a time (the trees, builds and
# logs are shared). Scripts started by a locked run inherit the lock.
qpd_lock() {
	[ -z "${QPD_LOCKED:-}" ] || return 0
	mkdir -p "$QPD_CACHE"
	exec 9>"$QPD_CACHE/.lock"
	if ! flock -n 9; then
		qpd_log "waiting for another harness run on $QPD_CACHE"
		flock 9
	fi
	export QPD_LOCKED=1
}
