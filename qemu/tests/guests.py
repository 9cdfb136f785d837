#!/usr/bin/env python3
"""The project's guests: static x86-64 programs built from qemu/tests/NAME.c.

usage: guests.py OUTDIR NAME...   builds each into OUTDIR/NAME (only when
                                  missing or older than its source or
                                  guest.h) and prints the paths

Imported by qemu/bench/qemu-bench and qemu/gate/qemu-gate; called by
qemu/harness/user-checks.sh.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CFLAGS = ["-std=c11", "-Wall", "-Wextra", "-O2", "-static", "-pthread"]


def build(name, outdir):
    """Path of guest NAME in OUTDIR, compiled if needed; CalledProcessError
    (with gcc's output) if it does not compile."""
    src = os.path.join(HERE, name + ".c")
    out = os.path.join(outdir, name)
    os.makedirs(outdir, exist_ok=True)
    newest = max(os.path.getmtime(f)
                 for f in (src, os.path.join(HERE, "guest.h")))
    if not os.path.exists(out) or os.path.getmtime(out) < newest:
        subprocess.run(["gcc"] + CFLAGS + ["-o", out, src], check=True,
                       capture_output=True, text=True)
    return out


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    try:
        for name in sys.argv[2:]:
            print(build(name, sys.argv[1]))
    except subprocess.CalledProcessError as e:
        sys.exit("guests.py: cannot compile %s:\n%s" % (e.cmd[-1], e.stderr))
