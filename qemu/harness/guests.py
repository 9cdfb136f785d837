"""The project's guests and plugins, built from qemu/tests/.

Guests are static x86-64 programs (qemu/tests/NAME.c), the same for both
builds. Plugins of our own (qemu/tests/NAME.c that include qemu-plugin.h)
are built once per build, against that build's own qemu-plugin.h, into
DIR/BUILD/libNAME.so -- the layout Build.plugin_path() expects.
"""
import os
import subprocess

from .util import HarnessError

TESTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests")
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-O2", "-static", "-pthread"]
PLUGIN_CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2",
                 "-shared", "-fPIC"]


def _stale(out, srcs):
    return not os.path.exists(out) or any(
        os.path.getmtime(out) < os.path.getmtime(s) for s in srcs)


def _compile(argv, what):
    p = subprocess.run(argv, capture_output=True, text=True)
    if p.returncode:
        raise HarnessError("cannot compile %s:\n%s" % (what, p.stderr[-2000:]))


def _sources(name):
    src = os.path.join(TESTS, name + ".c")
    hdrs = [os.path.join(TESTS, h) for h in os.listdir(TESTS) if h.endswith(".h")]
    return src, [src] + hdrs


def guest(name, outdir):
    """Path of guest NAME in OUTDIR, compiled when missing or older than
    its source."""
    src, deps = _sources(name)
    out = os.path.join(outdir, name)
    os.makedirs(outdir, exist_ok=True)
    if _stale(out, deps):
        _compile(["gcc"] + CFLAGS + ["-o", out, src], src)
    return out


def guests(names, outdir):
    """{name: path} of several guests."""
    return {n: guest(n, outdir) for n in sorted(set(names))}


def plugin(name, build, outdir, source=None):
    """qemu/tests/NAME.c (or SOURCE.c) built as OUTDIR/BUILD/libNAME.so
    against the qemu-plugin.h of BUILD's source tree: one source built
    under several names gives copies QEMU loads side by side."""
    src, deps = _sources(source or name)
    header = os.path.join(build.tree, "include", "qemu", "qemu-plugin.h")
    if not os.path.exists(header):
        raise HarnessError("%s missing" % header)
    out = os.path.join(outdir, build.name, "lib%s.so" % name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    if _stale(out, deps + [header]):
        glib = subprocess.run(["pkg-config", "--cflags", "glib-2.0"], capture_output=True,
                              text=True).stdout.split()
        _compile(["gcc"] + PLUGIN_CFLAGS + ["-I" + os.path.dirname(header)] + glib
                 + ["-o", out, src], src)
    return out
