"""gate: the QEMU-level regression gate, instruction counts of the TCG
plugin core.

Method. The short linux-user workloads of cases.GATE (no plugin, and each
test plugin of tests/tcg/plugins that both builds have) run on the upstream
build and on the qpd build, each under `setarch -R valgrind --tool=callgrind`
(address-space randomisation off), --jobs valgrinds at a time; every run
gives two counts: the total of instructions, and the plugin core's share.

The core's share is the self cost of every function defined in a core file
(plugins/core.c and plugins/qpd-common.c.inc, qpd's subprojects/qpd/src/**.c
and include/qpd/*.h), including whatever the compiler inlined into those
functions from any header (ck, glib, QEMU's own), plus code of qpd's headers
wherever it was inlined. Files are matched by path suffix: ccache makes a
build report sources under another tree's path. Calls out of the core
(malloc, glib) are not counted; the total catches those.

Each workload runs once per build, for one length: the core's start-up cost
is about 10 000 instructions and the same every run, and translation-time
costs (which a difference of two lengths would cancel) are part of what is
gated. Runs repeat to within 0.2 % (guest threads and QEMU's own threads
interleave a little differently each time); --repeat N keeps the median of
N runs and, with --update, records their spread in the baseline.

Verdict. The qpd build's counts are compared with the committed baseline of
this QEMU major.minor (qemu/gate/baseline-X.Y.json, keyed by workload name).
Upstream is measured every time as the reference (its Outcome is
"measured"): qpd/upstream ratios are shown and stored, and a moved upstream
count points at the toolchain, not qpd. qpd's Outcome fails when its core
count grew by more than 2 % (--tolerance, or the workload's
core_tolerance_pct in the baseline) and by more than 10 000 instructions, or
its total by more than half of --tolerance (1 %), or when a workload of the
baseline was not measured ("MISSING"); a workload the baseline lacks is
"new (not gated)". results.verdict turns the two Outcomes into the row's
verdict: a failing qpd Outcome is a QPD FAIL, which fails the gate.

Options: --update (rewrite the baseline from this run; --only keeps the
others), --repeat N, --only REGEX, --tolerance PCT, --json FILE (also write
the measurements), --jobs N, --baseline FILE, --workdir DIR (compiled
guests; default CACHE/gate). Prints a SUMMARY line; a valgrind run that
fails, or no baseline, is a harness error (exit 2).
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile

from .. import cases, guests
from ..builds import REPO
from ..results import Outcome, Table, failed, passed, verdict
from ..util import HarnessError, capture, log, run as run_argv, slug

BASELINES = os.path.join(REPO, "qemu", "gate")
TOLERANCE = 2.0      # % growth of the core count; the total's is half of it
FLOOR = 10000        # instructions of core growth always tolerated
TIMEOUT = 900        # seconds of one valgrind run
CORE = re.compile(r"(^|/)(plugins/(core\.c|qpd-common\.c\.inc)"
                  r"|subprojects/qpd/(src/.*\.c|include/qpd/[^/]*\.h))$")
COLUMNS = ("up total", "qpd total", "total ratio", "up core", "qpd core", "core ratio",
           "base core", "change", "vs baseline")


def _log(msg):
    """Progress on stderr, as the gate."""
    log(msg, "gate")


def callgrind_counts(path):
    """(total, core) self instruction counts of a callgrind output file."""
    files, total, core = {}, 0, 0
    cur = fn_file = ""
    skip = False  # the cost line after calls= is the call's inclusive cost
    with open(path) as f:
        for line in f:
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip:
                    skip = False
                    continue
                cols = line.split()
                n = int(cols[1]) if len(cols) > 1 else 0
                total += n
                if CORE.search(fn_file) or CORE.search(cur):
                    core += n
            elif line.startswith(("fl=", "fi=", "fe=", "cfi=", "cfl=", "jfi=")):
                key, _, rest = line.rstrip("\n").partition("=")
                m = re.match(r"\((\d+)\)(?: (.*))?$", rest)
                name = rest if m is None else files.setdefault(
                    m.group(1), os.path.normpath(m.group(2) or ""))
                if key in ("fl", "fi", "fe"):
                    cur = name
            elif line.startswith("fn="):  # callgrind writes fl= or fe= first
                fn_file = cur
            elif line.startswith("calls="):
                skip = True
    return total, core


def run_one(build, case, guest, out, log_path):
    """(total, core) of CASE on BUILD with GUEST's path; OUT is callgrind's
    file (removed once read), LOG_PATH valgrind's and QEMU's messages. The
    guest writes to /dev/null, as when the baselines were made: to a file,
    QEMU runs 0.5 % fewer instructions."""
    argv = ["setarch", "-R", "valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
    r = run_argv(argv + build.user_command(case.plugin, guest, case.argv()), log_path, TIMEOUT,
                 stdout=subprocess.DEVNULL)
    if r.rc != 0:
        raise HarnessError("%s on %s failed under valgrind (%s; log %s)"
                           % (case.name, build.name, r.why(), log_path))
    try:
        return callgrind_counts(out)
    finally:
        os.unlink(out)


def pct(new, old):
    """Change from old to new, in %."""
    return (new - old) / max(old, 1) * 100


def spread(values):
    """(max - min) / min, in %."""
    return round(pct(max(values), min(values)), 4)


def measure(ctx, selected, workdir, jobs, repeat):
    """{workload: entry}: median counts per build, ratios, spread over repeats."""
    exe = guests.guests([c.guest for c in selected], workdir)
    logdir = ctx.phase_dir("gate")
    runs = {}
    with tempfile.TemporaryDirectory() as tmp, \
            concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for c in selected:
            for b in ctx.builds.values():
                name = "%s.%s" % (slug(c.name), b.name)
                runs[c.name, b.name] = [
                    pool.submit(run_one, b, c, exe[c.guest],
                                os.path.join(tmp, "%s.%d.cg" % (name, i)),
                                os.path.join(logdir, "%s.%d.log" % (name, i)))
                    for i in range(repeat)]
        for (w, b), futures in runs.items():
            runs[w, b] = [f.result() for f in futures]
            _log("%-12s %-9s %14s total %12s core" % (
                w, b, "{:,}".format(runs[w, b][0][0]), "{:,}".format(runs[w, b][0][1])))
    result = {}
    for c in selected:
        w = c.name
        e = {b: {"total": int(statistics.median(t for t, _ in runs[w, b])),
                 "core": int(statistics.median(n for _, n in runs[w, b]))}
             for b in ctx.builds}
        e["total_ratio"] = round(e["qpd"]["total"] / e["upstream"]["total"], 4)
        e["core_ratio"] = round(e["qpd"]["core"] / max(e["upstream"]["core"], 1), 3)
        if repeat > 1:
            e["runs"] = repeat
            e["spread_pct"] = {k: max(spread([r[i] for r in runs[w, b]]) for b in ctx.builds)
                               for i, k in enumerate(("total", "core"))}
        result[w] = e
    return result


def first_line(argv):
    """The first line argv prints, None when it is not installed."""
    try:
        return capture(argv, check=False).split("\n")[0].strip()
    except OSError:
        return None


def environment(build):
    """What the counts depend on besides qpd: gcc, valgrind, QEMU's Debian version."""
    env = {"gcc": first_line(["gcc", "--version"]),
           "valgrind": first_line(["valgrind", "--version"]), "qemu_debian": None}
    changelog = os.path.join(build.tree, "debian", "changelog")
    if os.path.exists(changelog):
        with open(changelog) as f:
            env["qemu_debian"] = re.search(r"\((.*?)\)", f.readline()).group(1)
    return env


def qpd_outcome(base, now, tol, total_tol):
    """qpd's Outcome for one workload: NOW's counts (None: not measured)
    against its baseline entry BASE (None: a new workload), TOL the core's
    tolerance and TOTAL_TOL the total's, in %."""
    if base is None:
        return passed("new (not gated)")
    if now is None:
        return failed("MISSING")
    bad = []
    b, n = base["qpd"], now["qpd"]
    limit = max(b["core"] * tol / 100, FLOOR)
    if n["core"] - b["core"] > limit:
        bad.append("core %+.2f%% (limit +%.2f%%)" % (
            pct(n["core"], b["core"]), pct(b["core"] + limit, b["core"])))
    if pct(n["total"], b["total"]) > total_tol:
        bad.append("total %+.2f%% (limit +%.2f%%)" % (pct(n["total"], b["total"]), total_tol))
    return failed("FAIL " + ", ".join(bad)) if bad else passed("ok")


def cells(cur, base):
    """The table's cells of measured entry CUR and its baseline entry BASE."""
    if cur is None:
        return {c: "-" for c in COLUMNS}
    return {"up total": "%.2fM" % (cur["upstream"]["total"] / 1e6),
            "qpd total": "%.2fM" % (cur["qpd"]["total"] / 1e6),
            "total ratio": "%.3f" % cur["total_ratio"],
            "up core": "{:,}".format(cur["upstream"]["core"]),
            "qpd core": "{:,}".format(cur["qpd"]["core"]),
            "core ratio": "%.2f" % cur["core_ratio"],
            "base core": "-" if base is None else "{:,}".format(base["qpd"]["core"]),
            "change": "-" if base is None else "%+.2f%%" % pct(cur["qpd"]["core"],
                                                              base["qpd"]["core"])}


def report(table, baseline, now, tolerance, update):
    """Add a row per workload of BASELINE or NOW to TABLE; returns the
    (core, total) changes of the workloads compared with the baseline.
    With UPDATE nothing fails: NOW becomes the baseline."""
    compared = []
    names = [c.name for c in cases.GATE]
    for w in [w for w in names + sorted(set(baseline) - set(names))
              if w in baseline or w in now]:
        base, cur = baseline.get(w), now.get(w)
        tol = tolerance or (base or {}).get("core_tolerance_pct", TOLERANCE)
        qpd = qpd_outcome(base, cur, tol, (tolerance or TOLERANCE) / 2)
        qpd = Outcome(qpd.ok or update, qpd.text)
        up = passed("measured" if cur else "not run")
        if base and cur:
            compared.append((pct(cur["qpd"]["core"], base["qpd"]["core"]),
                             pct(cur["qpd"]["total"], base["qpd"]["total"])))
        table.add(w, verdict(up, qpd), dict(cells(cur, base), **{"vs baseline": qpd.text}),
                  upstream=up, qpd=qpd, counts=cur, baseline=base)
    return compared


def notes(doc, old, baseline):
    """Why counts may differ for reasons other than qpd: another toolchain
    than the baseline's, upstream's own totals moved."""
    out = []
    for k, v in doc["environment"].items():
        was = old.get("environment", {}).get(k)
        if v != was:
            out.append("%s is %r, the baseline's %r: counts may differ for that alone "
                       "(--update once the change is understood)" % (k, v, was))
    moved = [w for w, e in doc["workloads"].items() if w in baseline and abs(
        pct(e["upstream"]["total"], baseline[w]["upstream"]["total"])) > TOLERANCE / 2]
    if moved:
        out.append("upstream's own totals moved by more than %g%% (%s): the toolchain or "
                   "QEMU changed, not only qpd" % (TOLERANCE / 2, " ".join(moved)))
    return out


def rewrite(path, doc, old, only):
    """Write DOC as the baseline PATH, keeping OLD's per-workload tolerances
    and, with --only, the workloads it did not select."""
    for w, e in old["workloads"].items():
        if w in doc["workloads"] and "core_tolerance_pct" in e:
            doc["workloads"][w]["core_tolerance_pct"] = e["core_tolerance_pct"]
        elif w not in doc["workloads"] and only and not re.search(only, w):
            doc["workloads"][w] = e
    with open(path, "w") as f:
        json.dump(doc, f, indent=2, sort_keys=True)
        f.write("\n")
    print("qemu-gate: baseline rewritten: %s (%d workloads)" % (path, len(doc["workloads"])))


def geomean(values):
    """The geometric mean of VALUES, 0 when there are none."""
    values = list(values)
    return statistics.geometric_mean(values) if values else 0.0


def parse_args(argv, ctx):
    ap = argparse.ArgumentParser(prog="gate")
    ap.add_argument("--baseline", help="default: qemu/gate/baseline-MAJOR.MINOR.json")
    ap.add_argument("--update", action="store_true", help="rewrite the baseline")
    ap.add_argument("--json", help="write the measurements here")
    ap.add_argument("--only", help="only workloads matching this regex")
    ap.add_argument("--tolerance", type=float,
                    help="core tolerance in %% for every workload (default %g); "
                    "the total's is half of it" % TOLERANCE)
    ap.add_argument("--jobs", type=int, default=ctx.jobs, help="valgrinds run in parallel")
    ap.add_argument("--repeat", type=int, default=1, help="runs per workload (median kept)")
    ap.add_argument("--workdir", default=os.path.join(ctx.cache.root, "gate"),
                    help="compiled guests")
    return ap.parse_args(argv)


def run(ctx, argv):
    """Count both builds' instructions and judge qpd's against the baseline."""
    args = parse_args(argv, ctx)
    if not (shutil.which("valgrind") and shutil.which("setarch")):
        raise HarnessError("valgrind and setarch are required (apt-get install valgrind)")
    for b in ctx.builds.values():
        b.check("user")
    minor = ".".join(ctx.version.split(".")[:2])
    path = args.baseline or os.path.join(BASELINES, "baseline-%s.json" % minor)
    if not args.update and not os.path.exists(path):
        raise HarnessError("no baseline for QEMU %s: %s (make one with --update)"
                           % (minor, path))
    chosen = [c for c in cases.GATE if not args.only or re.search(args.only, c.name)]
    if not chosen:
        raise HarnessError("no workload matches %r" % args.only)
    selected = [c for c in chosen if all(b.has(c.plugin) for b in ctx.builds.values())]

    _log("QEMU %s, %d workloads x 2 builds under callgrind" % (ctx.version, len(selected)))
    doc = {"qemu": ctx.version, "unit": "instructions (callgrind Ir), median of the runs",
           "environment": environment(ctx.upstream),
           "workloads": measure(ctx, selected, args.workdir, args.jobs, args.repeat)}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)
    old = {"workloads": {}}
    if os.path.exists(path):
        with open(path) as f:
            old = json.load(f)
    baseline = {w: e for w, e in old["workloads"].items()
                if not args.only or re.search(args.only, w)}
    title = "qemu-gate: QEMU %s, instructions under callgrind against %s%s" % (
        ctx.version, os.path.basename(path),
        " (--update: rewritten with these counts)" if args.update else "")
    table = Table("gate", title, COLUMNS,
                  notes=[] if args.update else notes(doc, old, baseline))
    compared = report(table, baseline, doc["workloads"], args.tolerance, args.update)
    if args.update:
        rewrite(path, doc, old, args.only)
        return table
    now = doc["workloads"].values()
    print("SUMMARY qemu-gate qemu=%s workloads=%d failed=%d worst_core_change=%+.2f%% "
          "worst_total_change=%+.2f%% core_qpd_over_upstream=%.2f total_qpd_over_upstream=%.3f"
          % (ctx.version, len(now), table.qpd_failures,
             max((c for c, _ in compared), default=0), max((t for _, t in compared), default=0),
             geomean(e["core_ratio"] for e in now), geomean(e["total_ratio"] for e in now)),
          flush=True)
    return table
