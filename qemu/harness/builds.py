"""Trees and builds: one QEMU source built twice, upstream as Debian ships
it and the qpd variant made by qemu/apply, and the Build that turns a case
into a command line and runs it.

Everything lives under one cache root, $QPD_QEMU_CACHE (default
/var/cache/qpd-qemu), so CI can keep it between runs and a second run is
incremental:
  apt/                 private apt configuration, lists and .debs
  ccache/              compiler cache shared by all trees
  src/qemu-V/          pristine unpacked Debian source (never built in)
  V/upstream/          copy of the pristine source, build dir V/upstream/build
                       (and build-asan, build-tsan: the sanitized user-mode builds)
  V/qpd-stage/         pristine copy that qemu/apply rewrites on every run
  V/qpd/               content-synced from qpd-stage, build dir V/qpd/build
  V/logs/              logs and tables of the last run
  boot/                the boot check's kernel, busybox and initramfs
"""
import json
import os
import re
import shutil
import subprocess
import time

from .util import HarnessError, fmt_secs, log, run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDS = ("upstream", "qpd")
TARGET_LIST = os.environ.get("QPD_TARGET_LIST", "x86_64-linux-user,x86_64-softmmu")
JOBS = int(os.environ.get("QPD_JOBS", "2"))

# The configure line known to work with Debian's "+ds" tarballs (blobs and
# downloadable subprojects are stripped: nothing may be downloaded or
# installed from pc-bios; firmware comes from Debian packages instead).
CONFIGURE_FLAGS = [
    "--python=/usr/bin/python3", "--target-list=" + TARGET_LIST,
    "--enable-plugins", "--disable-docs", "--disable-download", "--disable-werror",
    "--disable-install-blobs", "--disable-containers", "--disable-tools",
    "--disable-guest-agent",
]

# The sanitized builds (qemu-torture): user mode only, each in a build
# directory of its own next to the plain one. TSan wants clang (QEMU's
# docs/devel/testing: gcc's TSan misses its fibers' annotations).
SANITIZE = {
    "none": ("build", []),
    "asan": ("build-asan", ["--enable-asan", "--enable-ubsan"]),
    "tsan": ("build-tsan", ["--enable-tsan", "--cc=clang", "--cxx=clang++"]),
}


def configure_flags(sanitize="none"):
    """QEMU's configure line for a build of kind SANITIZE."""
    if sanitize == "none":
        return list(CONFIGURE_FLAGS)
    targets = ",".join(t for t in TARGET_LIST.split(",") if t.endswith("-linux-user"))
    return [f if not f.startswith("--target-list=") else "--target-list=" + targets
            for f in CONFIGURE_FLAGS] + SANITIZE[sanitize][1]


class Cache:
    """The cache layout, in one place."""

    def __init__(self, root=None):
        self.root = root or os.environ.get("QPD_QEMU_CACHE", "/var/cache/qpd-qemu")

    def src(self, version):
        return os.path.join(self.root, "src", "qemu-" + version)

    def vdir(self, version):
        return os.path.join(self.root, version)

    def tree(self, version, name):
        return os.path.join(self.vdir(version), name)

    def logs(self, version):
        return os.environ.get("QPD_LOGDIR") or os.path.join(self.vdir(version), "logs")

    def debian_version(self, version):
        """The Debian version unpacked for upstream VERSION, or None."""
        try:
            return open(os.path.join(self.src(version), ".qpd-debian-version")).read().strip()
        except OSError:
            return None


class Build:
    """One of the two builds of a QEMU version: NAME is "upstream" or "qpd"."""

    def __init__(self, name, tree, dir=None, sanitize="none"):
        self.name, self.tree, self.sanitize = name, tree, sanitize
        self.dir = dir or os.path.join(tree, SANITIZE[sanitize][0])

    def __repr__(self):
        return "Build(%s, %s)" % (self.name, self.dir)

    def env(self):
        """The environment a run of this build gets: its sanitizer's
        options (QEMU leaks by design at exit, so LeakSanitizer is off;
        TSan reads QEMU's own suppressions)."""
        env = dict(os.environ)
        if self.sanitize == "asan":
            env["ASAN_OPTIONS"] = "detect_leaks=0:halt_on_error=1:print_summary=1"
            env["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=0"
        elif self.sanitize == "tsan":
            opts = ["halt_on_error=0", "report_signal_unsafe=0", "history_size=4"]
            supp = os.path.join(self.tree, "tests", "tsan", "suppressions.tsan")
            if os.path.exists(supp):
                opts.append("suppressions=" + supp)
            env["TSAN_OPTIONS"] = ":".join(opts)
        return env

    def qemu(self, mode="user"):
        return os.path.join(self.dir, "qemu-x86_64" if mode == "user" else "qemu-system-x86_64")

    def plugin_path(self, plugin, ours_dir=None):
        """Where PLUGIN's library is for this build; OURS_DIR holds the
        plugins the harness builds (qemu/tests/*.c), one directory per build."""
        if plugin.where == "ours":
            return os.path.join(ours_dir or "", self.name, plugin.so)
        sub = "contrib/plugins" if plugin.where == "contrib" else "tests/tcg/plugins"
        return os.path.join(self.dir, sub, plugin.so)

    def has(self, plugin, ours_dir=None):
        return plugin is None or os.path.exists(self.plugin_path(plugin, ours_dir))

    def plugin_arg(self, plugin, ours_dir=None):
        """The -plugin argument: PATH[,ARGS]."""
        return self.plugin_path(plugin, ours_dir) + ("," + plugin.args if plugin.args else "")

    def user_command(self, plugin, guest, args, plugin_log=False, ours_dir=None):
        """qemu-x86_64 [-d plugin] [-plugin LIB,ARGS] GUEST ARGS: the plugin's
        own output goes to stderr with -d plugin."""
        argv = [self.qemu("user")]
        if plugin is not None:
            argv += (["-d", "plugin"] if plugin_log else []) + [
                "-plugin", self.plugin_arg(plugin, ours_dir)]
        return argv + [guest] + [str(a) for a in args]

    def check(self, mode="user"):
        """HarnessError unless this build has the emulator and test plugins."""
        if not os.access(self.qemu(mode), os.X_OK):
            raise HarnessError("%s build: %s missing" % (self.name, self.qemu(mode)))
        if not os.path.isdir(os.path.join(self.dir, "tests/tcg/plugins")):
            raise HarnessError("%s build: no tests/tcg/plugins in %s" % (self.name, self.dir))


def builds_of(cache, version, sanitize="none"):
    return {n: Build(n, cache.tree(version, n), sanitize=sanitize) for n in BUILDS}


# ---------------------------------------------------------------- trees

def sync_tree(src, dst):
    """Make DST's content equal SRC's but touch only files whose content
    differs (rsync -c, no -t), so ninja rebuilds only what really changed.
    DST/build and DST/build-* (the sanitized builds) are left alone."""
    os.makedirs(dst, exist_ok=True)
    subprocess.run(["rsync", "-rlpc", "--delete", "--exclude=/build/", "--exclude=/build-*/",
                    "--exclude=/.qpd-debian-version", src + "/", dst + "/"], check=True)


def apply_cmd():
    """What turns a tree into the qpd variant (QPD_APPLY overrides it)."""
    return os.environ.get("QPD_APPLY") or os.path.join(REPO, "qemu", "apply")


def make_trees(cache, version, logdir, names=BUILDS):
    """(Re)create the trees from the pristine source. The qpd tree is
    qemu/apply on a fresh pristine copy (qpd-stage) every run -- apply is
    idempotent and qpd's sources may have changed -- content-synced into
    V/qpd, so an unchanged adapter costs no rebuild."""
    src = cache.src(version)
    if not os.path.isdir(src):
        raise HarnessError("no source in %s" % src)
    for name in names:
        tree = cache.tree(version, name)
        if name == "upstream":
            log("tree: upstream (%s)" % tree)
            sync_tree(src, tree)
            continue
        stage = cache.tree(version, "qpd-stage")
        log("tree: qpd (%s) via %s" % (tree, apply_cmd()))
        # -c: apply may rewrite a file keeping its size and mtime second.
        subprocess.run(["rsync", "-ac", "--delete", src + "/", stage + "/"], check=True)
        r = run(apply_cmd().split() + [stage], os.path.join(logdir, "apply.log"), 600)
        if r.rc != 0:
            raise HarnessError("%s failed:\n%s" % (apply_cmd(), r.output()[-2000:]))
        sync_tree(stage, tree)


# --------------------------------------------------------------- builds

def ccache_env(cache):
    """QEMU's configure names the compiler "cc" in its meson cross file,
    which keeps meson from adding ccache itself: Debian's masquerade
    directory goes first in PATH. BASEDIR makes paths under the cache root
    relative and NOHASHDIR keeps the build directory out of the hash, so
    the qpd tree hits the upstream tree's objects."""
    env = dict(os.environ)
    if os.path.isdir("/usr/lib/ccache") and env.get("QPD_CCACHE", "1") == "1":
        if "/usr/lib/ccache" not in env["PATH"].split(":"):
            env["PATH"] = "/usr/lib/ccache:" + env["PATH"]
        env.setdefault("CCACHE_DIR", os.path.join(cache.root, "ccache"))
        env.update(CCACHE_BASEDIR=cache.root, CCACHE_NOHASHDIR="1")
        env.setdefault("CCACHE_MAXSIZE", "6G")
        os.makedirs(env["CCACHE_DIR"], exist_ok=True)
    return env


def _meson_version():
    return subprocess.run(["meson", "--version"], capture_output=True,
                          text=True).stdout.strip()


def build_stamp(tree, sanitize="none"):
    """What a build dir is configured with: the tree, meson's version, the
    flags, and for a qpd tree the subproject options qemu/apply sets
    (meson applies a subproject's default options only when it first
    configures it). Any change means a build from scratch."""
    lines = ["tree=" + tree, "meson=" + _meson_version()] + configure_flags(sanitize)
    text = "\n".join(lines) + "\n"
    if os.path.lexists(os.path.join(tree, "subprojects", "qpd")):
        apply_src = open(os.path.join(REPO, "qemu", "apply")).read()
        m = re.search(r"^qpd_dep = dependency\('qpd'.*?\]\)$", apply_src, re.M | re.S)
        if m:
            text += " ".join(m.group(0).split()) + " \n"
    return text


def stale_reason(tree, bdir, sanitize="none"):
    """Why BDIR cannot be reused, or None."""
    if not os.path.exists(bdir):
        return None
    if not (os.path.exists(os.path.join(bdir, "build.ninja"))
            and os.path.exists(os.path.join(bdir, "config-host.mak"))):
        return "incomplete build dir"
    try:
        mv = json.load(open(os.path.join(bdir, "meson-info", "meson-info.json")))[
            "meson_version"]["full"]
    except (OSError, ValueError, KeyError):
        mv = None
    if mv and mv != _meson_version():
        # Debian 12's meson 1.0 leaves dirs meson 1.7 cannot load.
        return "generated by meson %s, have %s" % (mv, _meson_version())
    try:
        old = open(os.path.join(bdir, ".qpd-configure")).read()
    except OSError:
        old = None
    if (old or "").rstrip("\n") != build_stamp(tree, sanitize).rstrip("\n"):
        return "configured differently (or not by this harness)"
    if not os.access(os.path.join(bdir, "pyvenv", "bin", "python3"), os.X_OK):
        return "broken python venv"
    return None


def goals(bdir, sanitize="none"):
    """The emulators of the target list, the test plugins and, when this
    QEMU has them, contrib/plugins. Not "all": its unit tests and qtests
    are a third of the work and nothing here runs them."""
    if os.environ.get("QPD_BUILD_GOALS"):
        return os.environ["QPD_BUILD_GOALS"].split()
    g = []
    for t in TARGET_LIST.split(","):
        if sanitize != "none" and not t.endswith("-linux-user"):
            continue
        if t.endswith("-linux-user"):
            g.append("qemu-" + t[:-len("-linux-user")])
        elif t.endswith("-softmmu"):
            g.append("qemu-system-" + t[:-len("-softmmu")])
    g.append("test-plugins")
    if re.search(r"^build contrib-plugins:", open(os.path.join(bdir, "build.ninja")).read(), re.M):
        g.append("contrib-plugins")
    return g


def link_firmware(bdir):
    """The "+ds" source has no firmware blobs; QEMU run from a build dir
    searches its qemu-bundle data dir, so Debian's copies are linked there
    (never over what the build installed itself). Done after every build:
    the build's install step may refresh qemu-bundle."""
    dst = None
    for root, dirs, _ in os.walk(os.path.join(bdir, "qemu-bundle")):
        if root.endswith("/share/qemu"):
            dst = root
            break
        if root.count(os.sep) - bdir.count(os.sep) > 5:
            dirs[:] = []
    dst = dst or os.path.join(bdir, "qemu-bundle/usr/local/share/qemu")
    os.makedirs(dst, exist_ok=True)
    for d in ("/usr/share/seabios", "/usr/lib/ipxe/qemu", "/usr/share/qemu"):
        if os.path.isdir(d):
            for f in os.listdir(d):
                n = os.path.join(dst, f)
                if not os.path.lexists(n):
                    os.symlink(os.path.join(d, f), n)
    if not os.path.exists(os.path.join(dst, "bios-256k.bin")):
        log("WARNING: no bios-256k.bin for %s (seabios missing?)" % bdir)


def _errors(logf, lines=60):
    text = open(logf, errors="replace").read().splitlines()
    out, keep = [], 0
    for line in text:
        if re.match(r"^(FAILED:|ERROR:|make.*Error|.*error:)", line):
            keep = 13
        if keep:
            out.append(line)
            keep -= 1
    return "\n".join("    " + l for l in (out or text[-40:])[:lines])


def _ccache_hits(env):
    p = subprocess.run(["ccache", "--print-stats"], capture_output=True, text=True, env=env)
    if p.returncode:
        return ""
    stats = dict(l.split("\t", 1) for l in p.stdout.splitlines() if "\t" in l)
    hits = sum(int(stats.get(k, 0)) for k in ("direct_cache_hit", "preprocessed_cache_hit"))
    total = hits + int(stats.get("cache_miss", 0))
    return "ccache %d/%d hits" % (hits, total) if total else ""


def build_one(build, env, logdir):
    """Configure (if needed) and build; a stale or failing build dir is
    wiped and built once more from scratch, and only a failure from
    scratch is an error. Returns a line of times."""
    kind = build.name + ("" if build.sanitize == "none" else "-" + build.sanitize)
    clog = os.path.join(logdir, "configure-%s.log" % kind)
    blog = os.path.join(logdir, "build-%s.log" % kind)
    open(blog, "w").close()
    note = ""
    for attempt in (1, 2):
        t0 = time.monotonic()
        reason = stale_reason(build.tree, build.dir, build.sanitize)
        if reason or not os.path.exists(build.dir):
            if reason:
                log("%s: wiping %s: %s" % (build.name, build.dir, reason))
            log("%s: configure" % build.name)
            shutil.rmtree(build.dir, ignore_errors=True)
            os.makedirs(build.dir)
            r = run([os.path.join(build.tree, "configure")] + configure_flags(build.sanitize),
                    clog, 3600,
                    env=env, cwd=build.dir)
            if r.rc != 0:
                print(_errors(clog, 8 if attempt == 1 else 60))
                if attempt == 1:
                    log("WARNING: %s: configure failed, retrying from scratch" % build.name)
                    note = "(retried from scratch)"
                    continue
                raise HarnessError("%s: configure failed (log %s)" % (build.name, clog))
            with open(os.path.join(build.dir, ".qpd-configure"), "w") as f:
                f.write(build_stamp(build.tree, build.sanitize))
        t1 = time.monotonic()
        subprocess.run(["ccache", "-z"], env=env, capture_output=True)
        g = goals(build.dir, build.sanitize)
        log("%s: make -j%d %s" % (build.name, JOBS, " ".join(g)))
        with open(blog, "a") as f:
            rc = subprocess.run(["make", "-C", build.dir, "-j%d" % JOBS] + g, env=env,
                                stdout=f, stderr=subprocess.STDOUT).returncode
        if rc == 0:
            if build.sanitize == "none":
                link_firmware(build.dir)
            return "%-14s configure %6s  make %7s  %s %s" % (
                kind, fmt_secs(t1 - t0), fmt_secs(time.monotonic() - t1),
                _ccache_hits(env), note)
        print(_errors(blog, 8 if attempt == 1 else 60))
        if attempt == 1:
            log("WARNING: %s: build failed, wiping %s and building from scratch"
                % (build.name, build.dir))
            note = "(retried from scratch)"
            shutil.rmtree(build.dir, ignore_errors=True)
    raise HarnessError("%s: build failed (log %s)" % (build.name, blog))


def build_all(cache, version, logdir, names=BUILDS, sanitize="none"):
    """Both trees made and built (as SANITIZE says); returns {name: Build}."""
    env = ccache_env(cache)
    make_trees(cache, version, logdir, names)
    out, lines, failed = builds_of(cache, version, sanitize), [], []
    for name in names:
        try:
            lines.append(build_one(out[name], env, logdir))
        except HarnessError as e:
            log(str(e))
            failed.append(name)
    log("build times (qemu %s, make -j%d):\n  %s" % (version, JOBS, "\n  ".join(lines)))
    if failed:
        raise HarnessError("build failed: %s" % " ".join(failed))
    return {n: out[n] for n in names}
