"""python3 -m harness: what ./run qemu, ./run qemu-bench and ./run qemu-gate run.

usage: python3 -m harness [MODE] [--qemu VER|SUITE] [--full]
                          [--up DIR --qpd DIR] [PHASE OPTIONS]

MODE
  check      (./run qemu, the default) build, then check-tcg, boot, user,
             conformance and perf: QEMU's TCG tests, a Linux boot, qpd's
             user-mode checks and the conformance suite on both builds, and
             a short timing (qemu-bench's CI set)
  bench      (./run qemu-bench) the whole-QEMU benchmark; options: --only
             REGEX, --runs N, --set all|ci, --no-flushes, --out DIR
  gate       (./run qemu-gate) the instruction-count gate; options:
             --update, --repeat N, --only REGEX, --tolerance PCT, --json FILE
  torture    (./run qemu-torture) plugins that churn the core while guests
             of many threads run, on both builds, then the conformance
             suite's multi-threaded rows on the same builds; options:
             --seconds S, --only REGEX, --ms MS, --timeout S
  build      deps, source and the two builds only
  check-tcg, boot, user, conformance
             one phase of check; boot's and conformance's option: --only
             REGEX (case names)
--qemu VER|SUITE  QEMU from Debian's source packages: a version (10.2 =
             newest 10.2.x; 10.0.13; 1:10.2.2+ds-1) or a suite (trixie,
             sid, forky). Default: trixie's (10.0.x).
--full       every case and the longer runs (CI runs the reduced matrix)
--sanitize asan|tsan|none
             the builds to use: QEMU (user mode) and libqpd built with
             --enable-asan --enable-ubsan, or --enable-tsan (clang), in
             build-asan / build-tsan next to the plain build
--up DIR --qpd DIR
             use these two build directories as they are (no deps, source
             or build phase)

Environment: QPD_QEMU_CACHE (cache root, default /var/cache/qpd-qemu),
QPD_JOBS (make -j, default 2), QPD_APPLY (instead of qemu/apply),
QPD_LOGDIR (logs; default CACHE/VERSION/logs).

Each phase's table is printed and written as PHASE.md, .json and .tap in
its log directory; the phases' summary closes the run. Exit 0 pass, 1 a
qpd failure or regression, 2 the harness could not run.
"""
import argparse
import fcntl
import importlib
import os
import re
import subprocess
import sys
import time

from . import builds as B
from . import debian
from .context import Context
from .results import HARNESS_ERROR, PASS, QPD_FAIL, Table, Verdict
from .util import EXIT_INFRA, HarnessError, fmt_secs, log

# phase name -> (module under phases/, fixed arguments)
PHASES = {
    "check-tcg": ("check_tcg", []),
    "boot": ("boot", []),
    "user": ("user", []),
    "conformance": ("conformance", []),
    "perf": ("bench", ["--set", "ci", "--runs", "3", "--no-flushes"]),
    "bench": ("bench", []),
    "gate": ("gate", []),
    "torture": ("torture", []),
    # the conformance suite's multi-threaded rows, on the torture's builds
    "conformance-mt": ("conformance", ["--only", "^(threads|selfreset):"]),
}
MODES = {"check": ["check-tcg", "boot", "user", "conformance", "perf"], "bench": ["bench"],
         "gate": ["gate"], "build": [], "check-tcg": ["check-tcg"], "boot": ["boot"],
         "user": ["user"], "conformance": ["conformance"],
         "torture": ["torture", "conformance-mt"]}
# Options a mode passes on to its phase.
PASS_ON = {"bench", "gate", "boot", "conformance", "torture"}


def lock(cache):
    """One harness run per cache root at a time (trees, builds and logs
    are shared); a run started by a locked run inherits the lock."""
    if os.environ.get("QPD_LOCKED"):
        return None
    os.makedirs(cache.root, exist_ok=True)
    f = open(os.path.join(cache.root, ".lock"), "w")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log("waiting for another harness run on %s" % cache.root)
        fcntl.flock(f, fcntl.LOCK_EX)
    os.environ["QPD_LOCKED"] = "1"
    return f


def version_of(bdir):
    """The version qemu-x86_64 in BDIR reports."""
    try:
        out = subprocess.run([os.path.join(bdir, "qemu-x86_64"), "--version"],
                             capture_output=True, text=True).stdout
    except OSError:
        out = ""
    m = re.search(r"version (\d+\.\d+\.\d+)", out)
    if not m:
        raise HarnessError("%s has no working qemu-x86_64" % bdir)
    return m.group(1)


def parse(argv):
    ap = argparse.ArgumentParser(prog="python3 -m harness", add_help=False)
    ap.add_argument("mode", nargs="?", default="check")
    ap.add_argument("--qemu", default="")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--sanitize", choices=sorted(B.SANITIZE), default="none")
    ap.add_argument("--up")
    ap.add_argument("--qpd")
    ap.add_argument("-h", "--help", action="store_true")
    args, rest = ap.parse_known_args(argv)
    if args.help:
        print(__doc__)
        sys.exit(0)
    if args.mode not in MODES:
        ap.error("unknown mode %r (one of %s)" % (args.mode, ", ".join(MODES)))
    if rest and args.mode not in PASS_ON:
        ap.error("unknown arguments for %s: %s" % (args.mode, " ".join(rest)))
    if bool(args.up) != bool(args.qpd):
        ap.error("--up and --qpd go together")
    return args, rest


class Summary:
    """The phases of one run: a Table whose cases are phases."""

    def __init__(self, title):
        self.table = Table("summary", title, columns=("time", "result"))

    def phase(self, name, fn):
        """Run FN (returning a Table or None), record its result and time;
        never stops the run: a later phase's report is still worth having."""
        print("\n=============== %s" % name, flush=True)
        t0 = time.monotonic()
        try:
            t = fn()
            if t is None:
                v, text = Verdict(PASS, "pass"), "done"
            else:
                status = t.exit_status()
                kind = {0: PASS, 1: QPD_FAIL}.get(status, HARNESS_ERROR)
                v, text = Verdict(kind, t.summary().split(": ", 1)[1].split(" (")[0]), t.summary()
        except HarnessError as e:
            log("%s: %s" % (name, e))
            v, text = Verdict(HARNESS_ERROR, "HARNESS ERROR"), str(e).splitlines()[0][:120]
        self.table.add(name, v, {"time": fmt_secs(time.monotonic() - t0), "result": text})
        return v.kind == PASS

    def skip(self, name, why):
        from .results import SKIP
        self.table.add(name, Verdict(SKIP, "skipped"), {"time": "0s", "result": why})


def run_phase(ctx, name, rest):
    module, fixed = PHASES[name]
    mod = importlib.import_module(".phases." + module, __package__)
    argv = list(fixed) + (list(rest) if name != "conformance-mt" else [])
    if name == "perf":
        d = ctx.phase_dir("perf")
        argv += ["--out", d, "--logdir", os.path.join(d, "logs")]
    table = mod.run(ctx, argv)
    if table is not None:
        path = table.write(ctx.phase_dir(name))
        print(table.markdown(only_notable=(name == "check-tcg" and not ctx.full)))
        print(table.summary() + "  (table: %s)" % path, flush=True)
    return table


def main(argv=None):
    args, rest = parse(sys.argv[1:] if argv is None else argv)
    cache = B.Cache()
    t0 = time.monotonic()
    # Given build dirs are only read; otherwise trees and builds change.
    _lock = None if args.up else lock(cache)
    summary = Summary("qemu %s" % (args.qemu or "(default)"))
    state = {}

    def deps():
        debian.ensure_host_packages(cache.root)

    def source():
        apt = debian.Apt(cache.root)
        spec = args.qemu
        if re.fullmatch(r"\d+\.\d+\.\d+", spec or "") and cache.debian_version(spec):
            deb = cache.debian_version(spec)
        else:
            deb, _ = debian.resolve(apt, spec)
        debian.fetch_source(apt, cache.root, deb)
        state["deb"], state["version"] = deb, debian.upstream_of(deb)

    def build():
        logdir = cache.logs(state["version"])
        os.makedirs(logdir, exist_ok=True)
        state["builds"] = B.build_all(cache, state["version"], logdir,
                                      sanitize=args.sanitize)

    if args.up:
        bl = {"upstream": B.Build("upstream", os.path.dirname(os.path.abspath(args.up)),
                                  os.path.abspath(args.up)),
              "qpd": B.Build("qpd", os.path.dirname(os.path.abspath(args.qpd)),
                             os.path.abspath(args.qpd))}
        state.update(builds=bl, version=version_of(args.qpd), deb="?")
        ok = True
    else:
        ok = (summary.phase("deps", deps) and summary.phase("source", source)
              and summary.phase("build", build))
    if ok:
        version = state["version"]
        logdir = os.environ.get("QPD_LOGDIR") or cache.logs(version)
        ctx = Context(version, state["deb"], state["builds"], logdir, args.full, cache)
        summary.table.title = "qemu %s (%s)" % (version, state["deb"])
        log("qemu %s; logs in %s" % (state["deb"], logdir))
        for name in MODES[args.mode]:
            summary.phase(name, lambda n=name: run_phase(ctx, n, rest))
    else:
        for name in MODES[args.mode]:
            summary.skip(name, "no builds")
    summary.table.add("total", Verdict(PASS, ""), {"time": fmt_secs(time.monotonic() - t0),
                                                   "result": ""})
    print()
    print(summary.table.markdown())
    status = summary.table.exit_status()
    what = "qemu" if args.mode == "check" else "qemu-" + args.mode
    print("%s: %s" % (what, {0: "PASS", 1: "FAIL"}.get(status, "HARNESS ERROR")))
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except HarnessError as e:
        log("error: %s" % e)
        sys.exit(EXIT_INFRA)
    except KeyboardInterrupt:
        sys.exit(130)
