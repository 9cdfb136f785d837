"""bench: upstream QEMU and qpd's QEMU, one source built twice, timed side
by side on the workloads people run TCG plugins for (cases.bench_cases).

Method. Every workload is one pair of commands that differ only in the
build: the same qemu-x86_64 (or qemu-system-x86_64) arguments, the same
guest, the same plugin from the build's own tests/tcg/plugins. hyperfine
runs the pair interleaved, twice, once in each order (the command it runs
second is favoured by a few per cent on these VMs), so both builds see the
same machine. Wall time is the median of all runs of a build, CPU time
(user + system) the mean of hyperfine's per-invocation means (hyperfine
1.15 exports no per-run CPU times). What to read is the ratio qpd/upstream;
absolute times on a shared 2-core VM swing by tens of per cent between
runs, ratios from one run much less. The spread s of a ratio r is
r * sqrt(cv_up^2 + cv_qpd^2), cv being a build's relative standard
deviation of its wall times (hyperfine 1.15 keeps no per-run CPU times):
qpd counts as not slower when r - s <= 1.

Flushes of translated code are counted in a separate, untimed run of each
build under gdb (flushes.py), so the breakpoint does not disturb the
timing; a growth row also counts qpd's flushes with one guest thread, the
flushes every run has, and any more is a growth flush.

Guests are the project's own (qemu/tests/*.c, guests.py), built static:
  spin THREADS ITERS            tight loops on private cache lines
  guest-threads THREADS ITERS   memory ops, atomics, x87, system calls
  syscalls THREADS CALLS        cheap system calls
  waves THREADS FUNCS ROUNDS    threads arriving 16 at a time, staying alive,
                                each running FUNCS distinct functions
System mode boots Linux with 4 vCPUs as the boot phase does (boot.prepare,
boot.command); its guest runs guest-threads with 4 threads and the row's
iterations before powering off.

Verdict. This is a measurement: a row's verdict (results.verdict) judges
only whether each build's runs succeeded (hyperfine saw every run exit 0,
a boot reached "QPD-BOOT: done"); the row's goal (a CPU ratio to reach, or
"not slower") is reported in its goal cell, met or missed, and never fails
the run.

Options: --set all|ci, --only REGEX, --runs N (per order, >= 3),
--no-flushes, --out DIR (default bench/results), --logdir DIR (default
OUT/qemu-bench-VERSION.logs). Writes OUT/qemu-bench-VERSION.md, .json and
.png (the CPU ratio per workload) and prints a SUMMARY line.
"""
import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import tempfile

from .. import cases, flushes, guests
from ..builds import REPO
from ..results import QPD_FAIL, UPSTREAM_FAIL, Outcome, Table, failed, passed, verdict
from ..util import HarnessError, log, run as run_argv, slug
from . import boot

NPROC = os.cpu_count() or 2
HYPERFINE_TIMEOUT = 3600    # seconds of one hyperfine invocation
FLUSH_TIMEOUT = 900         # seconds of one run under gdb
COLUMNS = ("runs", "upstream wall s", "qpd wall s", "wall ratio", "upstream CPU s",
           "qpd CPU s", "CPU ratio", "flushes", "goal")
NOTE = ("hyperfine -N -w 1, both builds interleaved, each order once; wall = median of "
        "all runs, CPU = mean user+system; ratio = qpd / upstream ± one standard "
        "deviation of a single run's ratio; flushes = tb flushes in one untimed gdb run (slots moved: qpd's scoreboard-slot moves, its fallback, which flushes) "
        "(upstream / qpd).")


def _log(msg):
    """Progress on stderr, as the bench."""
    log(msg, "bench")


def serial_log(logdir, case, build):
    """Where a boot of CASE on BUILD writes its console."""
    return os.path.join(logdir, "%s.%s.serial" % (slug(case.name), build.name))


def presence(build, plugin):
    """BUILD's Outcome when it may lack PLUGIN: absent, or nothing to say yet."""
    return passed() if build.has(plugin) else Outcome(False, "no " + plugin.so, absent=True)


def outcome(codes, serial=None):
    """A build's Outcome from its runs' exit codes and, for a boot, its
    console SERIAL (the last run's)."""
    bad = [c for c in codes if c != 0]
    if bad:
        return failed("exit %s in %d/%d runs" % (bad[0], len(bad), len(codes)))
    if serial is not None:
        try:
            with open(serial, errors="replace") as f:
                if "QPD-BOOT: done" not in f.read():
                    return failed("no 'QPD-BOOT: done'")
        except OSError:
            return failed("no console output")
    return passed()


def hyperfine_pair(case, cmds, runs, logdir):
    """Both builds in one hyperfine invocation, in each order; returns the
    merged measurements per build, the two orders' CPU ratios (kept in the
    JSON) and each build's exit codes."""
    results = {"upstream": [], "qpd": []}
    ratios = []
    for order in (("upstream", "qpd"), ("qpd", "upstream")):
        with tempfile.NamedTemporaryFile(suffix=".json") as js:
            argv = ["hyperfine", "-N", "-i", "-w", "1", "-r", str(runs), "--export-json", js.name]
            for b in order:
                argv += ["-n", b, shlex.join(cmds[b])]
            out = os.path.join(logdir, "%s.%s-first.txt" % (slug(case.name), order[0]))
            r = run_argv(argv, out, HYPERFINE_TIMEOUT)
            if r.rc != 0:
                raise HarnessError("hyperfine failed for %r (%s; see %s)"
                                   % (case.name, r.ended(), out))
            data = {x["command"]: x for x in json.load(open(js.name))["results"]}
        for b in order:
            results[b].append(data[b])
        cpu = {b: data[b]["user"] + data[b]["system"] for b in order}
        ratios.append(cpu["qpd"] / cpu["upstream"])
    meas, codes = {}, {}
    for b, xs in results.items():
        times = [t for x in xs for t in x["times"]]
        codes[b] = [c for x in xs for c in x["exit_codes"]]
        meas[b] = dict(wall_median=statistics.median(times),
                       wall_mean=statistics.mean(times),
                       wall_stddev=statistics.stdev(times), runs=len(times),
                       cpu=statistics.mean(x["user"] + x["system"] for x in xs))
    return meas, ratios, codes


def spread(meas, ratio):
    """One standard deviation of a single-run ratio, from both builds'
    relative spreads of wall time."""
    cv = [meas[b]["wall_stddev"] / meas[b]["wall_mean"] for b in meas]
    return ratio * (cv[0] ** 2 + cv[1] ** 2) ** 0.5


def count_flushes(argv, log_path):
    """Flushes of one run of ARGV under gdb; None if unknown or it failed."""
    n, r = flushes.count(argv, log_path, FLUSH_TIMEOUT)
    return n if r.rc == 0 else None


def qpd_stats_sum(path, key):
    """The sum of KEY over the qpd-stats lines in PATH (one per process);
    None if there are none."""
    try:
        with open(path) as f:
            lines = [l.split() for l in f if l.startswith("qpd-stats ")]
    except OSError:
        return None
    vals = [int(kv.split("=", 1)[1]) for l in lines for kv in l if kv.startswith(key + "=")]
    return sum(vals) if vals else None


def slower(r):
    """Whether qpd is slower than upstream beyond the row's spread."""
    return r["cpu_ratio"] - r["spread"] > 1.0


def goal_check(case, r):
    """(met, text): CASE's goal against measured row R, in words."""
    if case.goal is None:
        ok = not slower(r)
        text = "not slower" if ok else "SLOWER"
    else:
        ok = r["cpu_ratio"] <= case.goal
        text = ("<= %.2f" % case.goal) if ok else (
            "MISSED (%.3f > %.2f)" % (r["cpu_ratio"], case.goal))
    if case.group == "growth" and r.get("flushes"):
        fl = r["flushes"]
        one = r.get("flushes_1t")
        if one is not None and fl.get("qpd") is not None and fl["qpd"] > one:
            ok, text = False, text + ", qpd growth flushes %d" % (fl["qpd"] - one)
    return ok, text


def cells(r):
    """The table's cells of measured row R."""
    u, q = r["upstream"], r["qpd"]
    fl = r.get("flushes")
    return {"runs": "%d" % u["runs"], "upstream wall s": "%.3f" % u["wall_median"],
            "qpd wall s": "%.3f" % q["wall_median"], "wall ratio": "%.2f" % r["wall_ratio"],
            "upstream CPU s": "%.3f" % u["cpu"], "qpd CPU s": "%.3f" % q["cpu"],
            "CPU ratio": "%.2f ± %.2f" % (r["cpu_ratio"], r["spread"]),
            "flushes": ("%s / %s" % (fl.get("upstream", "?"), fl.get("qpd", "?")) +
                        (", slots moved %d" % r["sb_moved"] if "sb_moved" in r else ""))
                       if fl else "-",
            "goal": r["goal_text"]}


def plot(rows, png, version):
    """One PNG: CPU ratio qpd/upstream per workload, 1.0 marked."""
    with tempfile.NamedTemporaryFile("w", suffix=".dat", delete=False) as d:
        for i, r in enumerate(rows):
            d.write('%d "%s" %.4f %.4f %.4f\n' % (
                i, r["name"], r["cpu_ratio"], r["cpu_ratio"] - r["spread"],
                r["cpu_ratio"] + r["spread"]))
    height = 160 + 22 * len(rows)
    script = """
set terminal pngcairo size 900,%d font ",10"
set output "%s"
set title "QEMU %s: CPU time of qpd's QEMU / upstream's (lower is better)"
set xlabel "CPU time ratio qpd / upstream (user + system, same run)"
set yrange [%d:-1]
set xrange [0:*]
set ytics scale 0
set grid xtics
set style fill solid 0.6
set arrow from 1, graph 0 to 1, graph 1 nohead dt 2 lw 2 lc rgb "red"
set key off
plot "%s" using (($3)/2):1:(($3)/2):(0.35):ytic(2) with boxxyerror lc rgb "#3060a0", \\
     "" using 3:1:4:5 with xerrorbars lc rgb "black" pt 0
""" % (height, png, version, len(rows), d.name)
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    finally:
        os.unlink(d.name)


def parse_args(argv):
    ap = argparse.ArgumentParser(prog="bench")
    ap.add_argument("--set", choices=("all", "ci"), default="all")
    ap.add_argument("--only", help="regex on workload names")
    ap.add_argument("--runs", type=int, default=5, help="runs per order (>= 3)")
    ap.add_argument("--no-flushes", action="store_true")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results"))
    ap.add_argument("--logdir", default=None)
    args = ap.parse_args(argv)
    if args.runs < 3:
        raise HarnessError("bench: --runs must be at least 3")
    return args


class Bench:
    """One bench run: the builds, the guests, the boot image, the logs."""

    def __init__(self, ctx, selected, args, logdir):
        self.ctx, self.args, self.logdir = ctx, args, logdir
        self.exe = guests.guests([c.guest for c in selected if c.guest],
                                 os.path.join(logdir, "bin"))
        system = any(c.mode == "system" for c in selected)
        for b in ctx.builds.values():
            b.check("user")
            if system:
                b.check("system")
        self.image = boot.prepare(ctx) if system else None
        self.flush_1t = {}

    def command(self, case, build):
        """The argv of CASE on BUILD."""
        if case.mode == "system":
            return boot.command(build, self.image, serial_log(self.logdir, case, build),
                                case.plugin, iters=int(case.args[0]))
        return build.user_command(case.plugin, self.exe[case.guest], case.argv())

    def measure(self, case):
        """(upstream's Outcome, qpd's, the measured row or None)."""
        builds = self.ctx.builds
        cmds = {b: self.command(case, builds[b]) for b in builds}
        serials = {b: serial_log(self.logdir, case, builds[b]) if case.mode == "system"
                   else None for b in builds}
        for s in filter(None, serials.values()):
            if os.path.exists(s):
                os.remove(s)
        meas, ratios, codes = hyperfine_pair(case, cmds, self.args.runs, self.logdir)
        up, qpd = (outcome(codes[b], serials[b]) for b in ("upstream", "qpd"))
        if not (up.ok and qpd.ok):
            return up, qpd, None
        p = case.plugin
        r = dict(name=case.name, group=case.group, mode=case.mode,
                 plugin=os.path.basename(builds["qpd"].plugin_arg(p)) if p else "",
                 guest=case.guest, args=case.argv(), goal=case.goal,
                 upstream=meas["upstream"], qpd=meas["qpd"], cpu_ratios=ratios,
                 wall_ratio=meas["qpd"]["wall_median"] / meas["upstream"]["wall_median"],
                 cpu_ratio=meas["qpd"]["cpu"] / meas["upstream"]["cpu"])
        r["spread"] = spread(meas, r["cpu_ratio"])
        if not self.args.no_flushes and p:
            r.update(self.flushes(case, cmds))
        r["goal_ok"], r["goal_text"] = goal_check(case, r)
        return up, qpd, r

    def flushes(self, case, cmds):
        """The flushes of CASE's commands CMDS and, for a growth row, of
        the same on qpd with one thread."""
        _log("%s: counting flushes" % case.name)
        base = os.path.join(self.logdir, slug(case.name))
        stats = base + ".qpd-stats"
        out = {"flushes": {}}
        for b in cmds:
            if b == "qpd":
                # The adapter appends its counters here at exit.
                if os.path.exists(stats):
                    os.unlink(stats)
                os.environ["QPD_QEMU_STATS"] = stats
            try:
                out["flushes"][b] = count_flushes(cmds[b], "%s.%s.flushes" % (base, b))
            finally:
                os.environ.pop("QPD_QEMU_STATS", None)
        moved = qpd_stats_sum(stats, "sb_moved")
        if moved is not None:
            out["sb_moved"] = moved
        if case.group == "growth":
            key = (case.plugin, case.guest, case.args[1:])
            if key not in self.flush_1t:
                one = cases.with_args(case, (1,) + case.args[1:])
                self.flush_1t[key] = count_flushes(self.command(one, self.ctx.qpd),
                                                   base + ".1T.flushes")
            out["flushes_1t"] = self.flush_1t[key]
        return out


def run(ctx, argv):
    """Time every selected workload on both builds; the table of ratios."""
    args = parse_args(argv)
    if not shutil.which("hyperfine"):
        raise HarnessError("hyperfine is required (apt-get install hyperfine)")
    selected = cases.select(cases.bench_cases(NPROC), args.set == "all", args.only)
    if not selected:
        raise HarnessError("no workload selected")
    logdir = args.logdir or os.path.join(args.out, "qemu-bench-%s.logs" % ctx.version)
    os.makedirs(logdir, exist_ok=True)
    os.makedirs(args.out, exist_ok=True)
    bench = Bench(ctx, selected, args, logdir)
    table = Table("bench", "qemu-bench: QEMU %s, upstream vs qpd (same source, same run)"
                  % ctx.version, COLUMNS, notes=[NOTE])
    rows = []
    for case in selected:
        up, qpd, r = presence(ctx.upstream, case.plugin), presence(ctx.qpd, case.plugin), None
        if up.ok and qpd.ok:
            _log("%s: timing" % case.name)
            up, qpd, r = bench.measure(case)
        if r:
            rows.append(r)
            row_cells = cells(r)
            _log("%s: wall %.2f, CPU %.2f (%s)" % (case.name, r["wall_ratio"],
                                                 r["cpu_ratio"], r["goal_text"]))
        else:
            row_cells = {"goal": "; ".join("%s: %s" % (b, o) for b, o in
                                           (("upstream", up), ("qpd", qpd)) if not o.ok)}
            _log("FAILED: %s: %s" % (case.name, row_cells["goal"]))
        table.add(case.name, verdict(up, qpd), row_cells, upstream=up, qpd=qpd, measured=r)
    base = os.path.join(args.out, "qemu-bench-%s" % ctx.version)
    with open(base + ".md", "w") as f:
        f.write(table.markdown())
    with open(base + ".json", "w") as f:
        json.dump(dict(qemu_version=ctx.version, nproc=NPROC, runs_per_order=args.runs,
                       workloads=rows), f, indent=1)
    if rows:
        try:
            plot(rows, base + ".png", ctx.version)
        except (OSError, subprocess.CalledProcessError) as e:
            _log("no chart: %s" % e)
    goals = [r for r in rows if r["goal"] is not None]
    ratios = [r["cpu_ratio"] for r in rows]
    print("SUMMARY qemu-bench qemu=%s workloads=%d failed=%d slower=%d goals_met=%d/%d "
          "geomean_cpu_ratio=%.3f results=%s.md" % (
              ctx.version, len(rows), table.count(QPD_FAIL) + table.count(UPSTREAM_FAIL),
              sum(map(slower, rows)), sum(r["goal_ok"] for r in goals), len(goals),
              statistics.geometric_mean(ratios) if ratios else 0.0, base), flush=True)
    return table
