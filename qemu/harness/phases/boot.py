"""The boot check: Debian 12's Linux kernel with a busybox initramfs,
booted by qemu-system-x86_64 (q35, MTTCG, 4 vCPUs) of both builds under
each plugin of cases.BOOT (CI's "ci" set, every case with --full).

The guest's /init (boot/init) runs qemu/tests/guest-threads.c (4 threads,
fixed work, deterministic output) and boot/patch-target.c (the
instruction libpatch rewrites), prints their output on "QPD-WORKLOAD:"
lines and powers off. A boot passes when QEMU exits 0 within the time
limit and the guest got to "QPD-BOOT: done" with 4 CPUs, no kernel panic
or oops, a successful workload and a plausible plugin output (no zero
total, the case's expected strings present). libinline.so checks itself:
it aborts QEMU when its callback and inline counts disagree.

Verdict (results.verdict): qpd fails where upstream's boot passes and
qpd's fails, prints other workload lines, or gives a plugin output that
normalises differently (normalise.py: counts change from run to run
under MTTCG). A case neither build has the plugin of is skipped; a phase
where upstream passed no boot at all compared nothing and is a harness
error.

The kernel (linux-image-*-amd64, its ELF vmlinux booted through QEMU's
PVH entry) and busybox-static are downloaded, not installed, into
CACHE/boot/deb; the initramfs is kept in CACHE/boot under a hash of
what it holds. prepare() and command() give qemu-bench the same boot.

Option: --only REGEX (the cases whose name matches). Environment:
QPD_BOOT_TIMEOUT (seconds per boot, 300), QPD_BOOT_ITERS (guest-threads
iterations, 1000000), QPD_BOOT_APPEND (more kernel arguments, e.g.
"initcall_debug ignore_loglevel"), QPD_BOOT_KERNEL=bzimage (boot vmlinuz
itself, through linuxboot_dma).
"""
import argparse
import difflib
import glob
import gzip
import hashlib
import lzma
import os
import re
import subprocess
from dataclasses import dataclass

from .. import cases, debian, guests, normalise
from ..results import Outcome, Table
from ..util import HarnessError, capture, log, run as run_argv, slug

SMP = 4
# No crypto self-tests (23 s of a 55 s boot under libinline), no lockup
# detectors or RCU stall warnings (emulation under a plugin is slow enough
# to trip them); a panic reboots at once and -no-reboot makes that an exit.
CMDLINE = ("console=ttyS0 quiet panic=-1 cryptomgr.notests nowatchdog "
           "rcupdate.rcu_cpu_stall_suppress=1")
BOOT_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "boot")
FIRMWARE = ("/usr/share/seabios/bios-256k.bin", "/usr/share/qemu/pvh.bin")
# The totals that must not be 0: libinline's, libbb's, libinsn's, libmem's.
TOTALS = ("Total: ", "total insns: ", "mem accesses: ", "tb: ", "insn: ", "mem: ")


def _log(msg):
    """Progress on stderr, as the boot phase."""
    log(msg, "boot")


@dataclass(frozen=True)
class Image:
    """What a boot boots: the kernel and the initramfs."""
    kernel: str
    initrd: str


_images = {}


def prepare(ctx):
    """The guest's kernel and initramfs, fetched and built once per process."""
    fmt = os.environ.get("QPD_BOOT_KERNEL", "vmlinux")
    key = (ctx.cache.root, fmt)
    if key not in _images:
        if not all(map(os.path.exists, FIRMWARE)):
            debian.ensure_host_packages(ctx.cache.root)
        bootdir = os.path.join(ctx.cache.root, "boot")
        kdir, bbdir = _guest_packages(os.path.join(bootdir, "deb"))
        kernel = (glob.glob(os.path.join(kdir, "boot", "vmlinuz-*")) or [None])[0]
        if not kernel:
            raise HarnessError("no vmlinuz in %s" % kdir)
        if fmt != "bzimage":
            kernel = _vmlinux(kernel)
        busybox = os.path.join(bbdir, "bin", "busybox")
        if not os.access(busybox, os.X_OK):
            raise HarnessError("no bin/busybox in %s" % bbdir)
        _images[key] = Image(kernel, _initramfs(bootdir, busybox))
        _log("kernel %s, initramfs %s" % (kernel, _images[key].initrd))
    return _images[key]


def _kernel_package():
    """The linux-image-*-amd64 package Debian's linux-image-amd64 depends on."""
    out = subprocess.run(["apt-cache", "depends", "linux-image-amd64"],
                         capture_output=True, text=True).stdout
    m = re.search(r"Depends: (linux-image-\d\S*)", out)
    return m.group(1) if m else None


def _guest_packages(debdir):
    """The extracted trees of Debian's current kernel and busybox-static
    (not installed: busybox-static conflicts with the busybox a host may
    need); the newest cached ones when apt knows no version."""
    kpkg, bbver = _kernel_package(), debian.candidate("busybox-static")
    if not (kpkg and bbver):
        try:
            debian.system_apt_update()
        except HarnessError as e:
            _log("%s: trying the cache" % e)
        kpkg, bbver = _kernel_package(), debian.candidate("busybox-static")
    kver = kpkg and debian.candidate(kpkg)
    return (debian.fetch_deb(debdir, kpkg, kver) if kver
            else _newest_cached(debdir, "linux-image-*-amd64_*"),
            debian.fetch_deb(debdir, "busybox-static", bbver) if bbver
            else _newest_cached(debdir, "busybox-static_*"))


def _newest_cached(debdir, pattern):
    """The most recent complete tree in DEBDIR matching PATTERN."""
    trees = [d for d in glob.glob(os.path.join(debdir, pattern))
             if os.path.exists(os.path.join(d, ".complete"))]
    if not trees:
        raise HarnessError("apt knows no %s and none is cached in %s" % (pattern, debdir))
    newest = max(trees, key=os.path.getmtime)
    _log("using cached %s" % newest)
    return newest


def _write(path, data):
    """Write bytes DATA to PATH atomically."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _vmlinux(vmlinuz):
    """The ELF kernel inside Debian's bzImage (xz-compressed), cached beside
    it. Booting the bzImage costs some 4.5 G guest instructions of xz
    decompression before Linux starts: minutes under plugins that call
    back on every instruction."""
    out = os.path.join(os.path.dirname(vmlinuz), "vmlinux")
    if not os.path.exists(out):
        data = open(vmlinuz, "rb").read()
        off = data.find(b"\xfd7zXZ\x00")
        try:
            elf = lzma.LZMADecompressor(lzma.FORMAT_XZ).decompress(data[off:]) if off >= 0 else b""
        except lzma.LZMAError:
            elf = b""
        if not elf.startswith(b"\x7fELF"):
            raise HarnessError("cannot extract vmlinux from %s (QPD_BOOT_KERNEL=bzimage "
                               "boots it as it is)" % vmlinuz)
        _write(out, elf)
    return out


def _patch_target(outdir):
    """boot/patch-target.c compiled into OUTDIR when missing or stale."""
    src = os.path.join(BOOT_SRC, "patch-target.c")
    out = os.path.join(outdir, "patch-target")
    if not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src):
        os.makedirs(outdir, exist_ok=True)
        capture(["gcc", "-O2", "-static", "-o", out, src])
    return out


def _cpio(entries):
    """A newc cpio archive of ENTRIES (name, mode, data, (major, minor)),
    owned by root, dated 0."""
    out = bytearray()
    trailer = ("TRAILER!!!", 0, b"", (0, 0))
    for ino, (name, mode, data, (major, minor)) in enumerate(entries + [trailer], 1):
        name = name.encode() + b"\0"
        nlink = 2 if mode & 0o40000 else 1
        fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, major, minor, len(name), 0)
        out += b"070701" + b"".join(b"%08x" % f for f in fields) + name
        out += b"\0" * (-len(out) % 4) + data
        out += b"\0" * (-len(out) % 4)
    return bytes(out)


def _initramfs(bootdir, busybox):
    """The guest's initramfs (busybox, /init, the workload, the patch
    target, /dev/console), written to BOOTDIR unless a file of the same
    content is there; returns its path."""
    bindir = os.path.join(bootdir, "bin")
    files = {"init": os.path.join(BOOT_SRC, "init"), "bin/busybox": busybox,
             "bin/guest-threads": guests.guest("guest-threads", bindir),
             "bin/patch-target": _patch_target(bindir)}
    entries = [(d, 0o40755, b"", (0, 0)) for d in ("bin", "dev", "proc", "sys", "tmp")]
    entries += [(n, 0o100755, open(p, "rb").read(), (0, 0)) for n, p in files.items()]
    # The kernel opens /dev/console for init before any devtmpfs is mounted.
    entries.append(("dev/console", 0o20600, b"", (5, 1)))
    archive = _cpio(sorted(entries))
    out = os.path.join(bootdir, "initramfs-%s.cpio.gz"
                       % hashlib.sha256(archive).hexdigest()[:16])
    if not os.path.exists(out):
        _log("writing %s" % out)
        _write(out, gzip.compress(archive, 9, mtime=0))
    return out


def command(build, image, serial, plugin=None, plugin_log=None, iters=1000000):
    """The qemu-system-x86_64 argv of one boot of BUILD with no time limit:
    the console to the file SERIAL, PLUGIN (a cases.Plugin) loaded when
    given, its output to PLUGIN_LOG when given."""
    append = "%s qpd.threads=%d qpd.iters=%d %s" % (
        CMDLINE, SMP, iters, os.environ.get("QPD_BOOT_APPEND", ""))
    argv = [build.qemu("system"), "-M", "q35", "-accel", "tcg,thread=multi",
            "-smp", str(SMP), "-m", "256M", "-nodefaults", "-no-user-config",
            "-display", "none", "-no-reboot", "-L", "/usr/share/seabios", "-L", "/usr/share/qemu",
            "-kernel", image.kernel, "-initrd", image.initrd, "-append", append.strip(),
            "-serial", "file:" + serial]
    if plugin is not None:
        argv += ["-plugin", build.plugin_arg(plugin)]
        if plugin_log:
            argv += ["-d", "plugin", "-D", plugin_log]
    return argv


def _read(path):
    """The text of file PATH, "" when there is none."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _status(r, serial, workload, plugin_out, expect):
    """"ok" or what went wrong in one boot: R its util.Run, SERIAL its
    console, WORKLOAD its QPD-WORKLOAD lines, PLUGIN_OUT the plugin's
    output, EXPECT the strings that must appear in these two."""
    if r.timed_out:
        return "timeout"
    if "Kernel panic" in serial:
        return "kernel panic"
    if r.rc:
        return "qemu signal %d" % (r.rc - 128) if r.rc > 128 else "qemu rc=%d" % r.rc
    lines = serial.splitlines()
    if not any(l.startswith("QPD-BOOT: done") for l in lines):
        return "no power-off marker"
    if not any(l.startswith("QPD-BOOT: oops=0") for l in lines):
        return "kernel oops"
    if "QPD-WORKLOAD: cpus=%d" % SMP not in lines:
        return "not %d CPUs" % SMP
    if any("cpus=" not in l and not l.startswith("QPD-WORKLOAD: rc=0 ") for l in workload):
        return "workload failed"
    for l in plugin_out.splitlines():
        if l.startswith(TOTALS) and re.search(r"(^|\D)0(\D|$)", l):
            return "zero total: " + l
    for e in expect:
        if e not in plugin_out and not any(e in l for l in workload):
            return 'missing "%s"' % e
    return "ok"


def _boot(build, case, image, d, timeout, iters):
    """Boot BUILD under CASE's plugin, logs in D: (Outcome, workload lines,
    plugin output)."""
    if not build.has(case.plugin):
        return Outcome(False, "no " + case.plugin.so, absent=True), [], ""
    os.makedirs(d, exist_ok=True)
    serial, plog = os.path.join(d, "serial.log"), os.path.join(d, "plugin.log")
    for f in (serial, plog):
        if os.path.exists(f):
            os.remove(f)
    _log("%s: booting %s" % (case.name, build.name))
    r = run_argv(command(build, image, serial, case.plugin, plog, iters),
                 os.path.join(d, "qemu.log"), timeout)
    console = _read(serial).replace("\r", "")
    workload = [l for l in console.splitlines() if l.startswith("QPD-WORKLOAD:")]
    plugin_out = _read(plog)
    status = _status(r, console, workload, plugin_out, case.expect)
    text = "%s, %.1f s" % (status, r.seconds)
    _log("%s: %s: %s" % (case.name, build.name, text))
    return Outcome(status == "ok", text), workload, plugin_out


def _diff(path, a, b):
    """Write the unified diff of line lists A (upstream) and B (qpd) to PATH."""
    with open(path, "w") as f:
        f.writelines(l + "\n" for l in difflib.unified_diff(a, b, "upstream", "qpd", lineterm=""))


def _differs(case, d, workload, plugin_out):
    """How qpd's boot of CASE differs from upstream's, or None: WORKLOAD
    and PLUGIN_OUT are the pairs (upstream's, qpd's); diffs go to D."""
    if workload[0] != workload[1]:
        _diff(os.path.join(d, "workload.diff"), *workload)
        return "workload output differs"
    name = case.plugin.normaliser if case.plugin else "shape"
    diff = normalise.compare(*plugin_out, name)
    if diff:
        norm = normalise.normaliser(name)
        _diff(os.path.join(d, "plugin.diff"), *map(norm, plugin_out))
        return "plugin output differs: " + diff
    return None


def run(ctx, argv):
    """Boot both builds under each selected case and compare them."""
    ap = argparse.ArgumentParser(prog="boot")
    ap.add_argument("--only", help="run only the cases whose name matches this regex")
    args = ap.parse_args(argv)
    timeout = int(os.environ.get("QPD_BOOT_TIMEOUT", "300"))
    iters = int(os.environ.get("QPD_BOOT_ITERS", "1000000"))
    selected = cases.select(cases.BOOT, ctx.full, args.only)
    if not selected:
        raise HarnessError("no boot case selected")
    for b in (ctx.upstream, ctx.qpd):
        b.check("system")
    image = prepare(ctx)
    logdir = ctx.phase_dir("boot")
    table = Table("boot", "Linux boot, -smp %d, %s (status, seconds)" % (
        SMP, "every case" if ctx.full else "CI's cases"),
        notes=["logs: %s; a plugin's output is compared normalised (normalise.py)" % logdir])
    compared = 0
    for case in selected:
        d = os.path.join(logdir, slug(case.name))
        for f in glob.glob(os.path.join(d, "*.diff")):
            os.remove(f)
        up, up_work, up_plugin = _boot(ctx.upstream, case, image,
                                       os.path.join(d, "upstream"), timeout, iters)
        qpd, qpd_work, qpd_plugin = _boot(ctx.qpd, case, image, os.path.join(d, "qpd"),
                                          timeout, iters)
        differs = None
        if up.ok and qpd.ok:
            differs = _differs(case, d, (up_work, qpd_work), (up_plugin, qpd_plugin))
        if differs:
            _log("%s: %s (diff in %s)" % (case.name, differs, d))
        compared += up.ok
        table.compare(case.name, up, qpd, differs, case.known_upstream_failure, logs=d)
    if not compared:
        table.write(logdir)
        print(table.markdown(), flush=True)
        raise HarnessError("upstream passed no boot: nothing was compared (logs in %s)" % logdir)
    return table
