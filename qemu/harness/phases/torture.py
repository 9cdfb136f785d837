"""torture: plugins that churn the plugin core while guests of many threads
run, on both builds, for a given time.

Each scenario of torture_cases (guest, plugins, arguments) runs on the
upstream and the qpd build at once (one per core), again and again, the
scenarios taking turns, until --seconds have passed (every scenario runs
at least once). With --sanitize (the harness's option) the builds are the
sanitized ones: ASan+UBSan or TSan, libqpd instrumented alike.

One run of a build ends as one of:
  survived      exit 0, every plugin-churn copy reported from the guest's
                main process, no invariant broken in any process
  crashed       a signal or a non-zero exit (QEMU's own message shown)
  hung          still running after --timeout seconds (what a crashed
                run's forked children leave behind is killed)
  asan/ubsan/tsan
                a sanitizer's report (its kind and first frames); a TSan
                report counts only when a frame of its two accesses is in
                the plugin core (plugins/core.c, qpd-common.c.inc, libqpd):
                QEMU's own reports are listed below the table, by build
  violation     a plugin's invariant broken (plugin-churn.c lists them)
  guest failed  the guest's own check failed (exit 1, message shown)
The table has one row per scenario: each build's runs by ending, and the
counts of what the qpd build's runs churned. The verdict is results'
rule with qpd_must_pass: the plugins are the project's own, so a qpd run
that does not survive is a qpd failure even where upstream fails too;
upstream's failures are listed as upstream's, with the section of
doc/qemu-torture.md that reduces them to the smallest reproducer.

Options: --seconds S (default 120; 1800 with --full), --only REGEX
(scenario names), --ms MS (each guest's running time, default 2000; 500
under TSan, see torture_cases on its shadow stack),
--timeout S (a run's limit; default the guest's time + 90 s, + 240 s
under TSan: a run takes seconds more than its guest, at most some tens
under ASan with 256 threads). Logs of runs that did not
survive (and of the first round) in LOGDIR/torture.
"""
import argparse
import collections
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from .. import guests
from .. import torture_cases as T
from ..results import Outcome, Table
from ..util import log, slug
from ..util import run as run_command

BUILDS = ("upstream", "qpd")
COUNTS = ("syscalls", "toggles", "resets", "uninstalled", "sb", "blocks", "mem", "cond",
          "forks", "relays", "signals")


def _log(msg):
    log(msg, "torture")


_FRAME = re.compile(r"^\s*#(\d+) 0x[0-9a-f]+ in (\S+)", re.M)


def _frames(text, start, n=3):
    """The first N function names of the first ASan stack after START."""
    out = []
    for m in _FRAME.finditer(text, start):
        if m.group(1) == "0" and out:
            break
        out.append(m.group(2))
        if len(out) == n:
            break
    return " < ".join(out)


def sanitizer_report(text):
    """(kind, summary) of the first sanitizer report in TEXT, or None."""
    m = re.search(r"^==\d+==ERROR: AddressSanitizer: (\S+)", text, re.M)
    if m:
        return "asan", "%s in %s" % (m.group(1), _frames(text, m.end()))
    m = re.search(r"^(\S+:\d+(?::\d+)?): runtime error: (.*)$", text, re.M)
    if m:
        return "ubsan", "%s: %s" % (os.path.basename(m.group(1)), m.group(2)[:100])
    core = [summary for in_core, summary in tsan_reports(text) if in_core]
    if core:
        return "tsan", core[0]
    return None


# The plugin core, in either build: a TSan report with a frame here is the
# plugin core's (a failure of that build); any other is QEMU's own, listed.
CORE_FILES = re.compile(r"plugins/(?:core\.c|qpd-common\.c\.inc)|subprojects/qpd/")
# Work run in QEMU's exclusive section (a reset's or uninstall's destroy
# and done callback, async safe work): it is ordered after every vCPU's
# cpu_exec by cpu_exec_start/end's relaxed atomics and smp_mb(), which TSan
# does not model, so a report with such a side is QEMU's blind spot, in
# both builds, and listed as QEMU's own.
EXCLUSIVE = re.compile(r"\b(?:process_queued_cpu_work|start_exclusive)\b")
# Data written while translating a block and read by another vCPU running
# it is published with the block (qht, the jump caches: relaxed atomics and
# smp_rmb/wmb), which TSan does not see either: QEMU's hundreds of
# "tb_lookup_cmp || tb_gen_code" reports, and the plugin core's memory
# callback arrays filled at translation.
TRANSLATE, RUN_TB = re.compile(r"\btb_gen_code\b"), re.compile(r"\bcpu_loop_exec_tb\b")


def _blind_spot(stacks):
    """Whether a report's two access STACKS pair what TSan cannot order."""
    if EXCLUSIVE.search("\n".join(stacks)):
        return True
    return len(stacks) == 2 and any(
        TRANSLATE.search(a) and RUN_TB.search(b) and not TRANSLATE.search(b)
        for a, b in (stacks, stacks[::-1]))


def tsan_reports(text):
    """[(in_core, "KIND: frames of access 1 || frames of access 2")] of
    every ThreadSanitizer report in TEXT."""
    out = []
    for block in text.split("WARNING: ThreadSanitizer: ")[1:]:
        block = block.split("SUMMARY: ThreadSanitizer")[0]
        kind = re.sub(r" \(pid=\d+\)", "", block.splitlines()[0]).strip()
        stacks = re.split(r"\n\s*\n", block)[:2]
        sides = [" < ".join(re.findall(r"^\s*#\d+ (\S+) ", st, re.M)[:3]) for st in stacks]
        both = "\n".join(stacks)
        out.append((bool(CORE_FILES.search(both)) and not _blind_spot(stacks),
                    "%s: %s" % (kind, " || ".join(x for x in sides if x))))
    return out


def _fields(line):
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b", line)}


def judge(scenario, rc, text):
    """(ending, detail, counts) of one run: ending one of "survived",
    "crashed", "hung", "asan", "ubsan", "tsan", "violation", "guest failed"."""
    counts = collections.Counter()
    rep = sanitizer_report(text)
    if rep:
        return rep[0], rep[1], counts
    if rc is None:
        return "hung", "", counts
    guest = re.search(r"^torture: (.*)$", text, re.M)
    main_pid = _fields(guest.group(1)).get("pid") if guest else None
    if guest:
        counts.update({k: v for k, v in _fields(guest.group(1)).items()
                       if k in ("forks", "relays", "signals")})
    violated, seen = None, set()
    for m in re.finditer(r"^churn\[(\w+)\]: (.*)$", text, re.M):
        f = _fields(m.group(2))
        if f.get("violations") and violated is None:
            first = re.search(r"first=(.*)$", m.group(2))
            violated = "churn[%s] pid %s: %s" % (m.group(1), f.get("pid"),
                                                 first.group(1) if first else "?")
        if main_pid is None or f.get("pid") == main_pid:
            seen.add(m.group(1))
            counts.update({k: v for k, v in f.items() if k in COUNTS})
    for m in re.finditer(r"^plugin-selfreset: (.*)$", text, re.M):
        f = _fields(m.group(1))
        counts.update(resets=f.get("resets", 0), syscalls=f.get("syscalls", 0),
                      blocks=f.get("blocks", 0))
    if violated:
        return "violation", violated, counts
    if rc != 0:
        msg = re.search(r"^.*(?:QEMU internal|qemu-x86_64: |assert|Assertion|"
                        r"Segmentation fault|Aborted).*$", text, re.M)
        detail = msg.group(0).strip()[:140] if msg else ""
        if rc == 1 and not msg:
            guest_msg = re.search(r"^(?:child|pthread_create|fork).*$", text, re.M)
            return "guest failed", guest_msg.group(0)[:140] if guest_msg else "exit 1", counts
        return "crashed", ("signal %d" % (rc - 128) if rc > 128 else "exit %d" % rc) + (
            ": " + detail if detail else ""), counts
    missing = [t for t in scenario.tags_of_churn if t not in seen]
    if missing:
        return "violation", "no report from churn[%s]" % ",".join(missing), counts
    if scenario.guest == "torture" and not guest:
        return "guest failed", "no torture: line", counts
    return "survived", "", counts


class Tally:
    """One scenario's runs on one build."""

    def __init__(self):
        self.runs = 0
        self.endings = collections.Counter()
        self.first = {}             # ending -> (detail, log)
        self.counts = collections.Counter()
        self.qemu_tsan = collections.Counter()     # QEMU's own reports

    def add(self, ending, detail, counts, logf):
        self.runs += 1
        self.endings[ending] += 1
        self.first.setdefault(ending, (detail, logf))
        self.counts.update(counts)

    def outcome(self):
        bad = [(e, n) for e, n in self.endings.most_common() if e != "survived"]
        if not bad:
            return Outcome(True, "survived %d/%d" % (self.runs, self.runs))
        e, _ = bad[0]
        text = ", ".join("%s %d/%d" % (e2, n, self.runs) for e2, n in bad)
        detail, logf = self.first[e]
        return Outcome(False, "%s; first %s: %s (log %s)" % (
            text, e, detail or "-", os.path.basename(os.path.dirname(logf)) + "/" +
            os.path.basename(logf)))


def _human(n):
    for unit, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return "%.1f%s" % (n / div, unit)
    return str(n)


class Torture:
    def __init__(self, ctx, opts):
        self.ctx, self.opts = ctx, opts
        self.dir = ctx.phase_dir("torture")
        self.bin = os.path.join(self.dir, "bin")
        san = ctx.qpd.sanitize
        self.table = Table("torture", "torture: QEMU %s, %s builds, %ds" % (
            ctx.version, {"none": "plain", "asan": "ASan+UBSan", "tsan": "TSan"}[san],
            opts.seconds), columns=("upstream", "qpd", "qpd churned"), notes=[
                "upstream: " + ctx.upstream.dir, "qpd: " + ctx.qpd.dir,
                "upstream's failures reduced to the smallest reproducer: doc/qemu-torture.md",
                "logs in " + self.dir])

    def prepare(self, scenarios):
        self.guests = {s.guest: guests.guest(s.guest, self.bin) for s in scenarios}
        for b in self.ctx.builds.values():
            for lib in sorted({p.lib for s in scenarios for p in s.plugins}):
                guests.plugin(lib, b, self.bin, source=T.SOURCES[lib])

    def run_one(self, build, scenario, i):
        d = os.path.join(self.dir, slug(scenario.name))
        logf = os.path.join(d, "%s-%d.log" % (build.name, i))
        argv = [build.qemu("user")]
        for p in scenario.plugins:
            argv += ["-plugin", build.plugin_arg(p, self.bin)]
        calls = 2000 if build.sanitize == "tsan" else 20000
        argv += [self.guests[scenario.guest]] + scenario.argv(self.opts.ms, calls)
        timeout = self.opts.timeout or self.opts.ms / 1000 + (
            240 if build.sanitize == "tsan" else 90)
        r = run_command(argv, logf, timeout, env=build.env(), cwd=self.dir, reap_group=True)
        text = r.output()
        ending, detail, counts = judge(scenario, r.rc, text)
        own = [summary for in_core, summary in tsan_reports(text) if not in_core]
        return ending, detail, counts, logf, own

    def run(self, scenarios):
        tallies = {s.name: {b: Tally() for b in BUILDS} for s in scenarios}
        t0, rounds = time.monotonic(), 0
        with ThreadPoolExecutor(2) as ex:
            while rounds == 0 or time.monotonic() - t0 < self.opts.seconds:
                for s in scenarios:
                    futs = {b: ex.submit(self.run_one, self.ctx.builds[b], s, rounds)
                            for b in BUILDS}
                    for b, f in futs.items():
                        ending, detail, counts, logf, own = f.result()
                        tallies[s.name][b].add(ending, detail, counts, logf)
                        tallies[s.name][b].qemu_tsan.update(own)
                        if ending == "survived" and rounds > 0 and not own:
                            # keep the logs of failures and of the first round
                            os.unlink(logf)
                        elif ending != "survived":
                            _log("%s on %s: %s %s" % (s.name, b, ending, detail))
                    if rounds > 0 and time.monotonic() - t0 >= self.opts.seconds:
                        break
                rounds += 1
                _log("round %d done, %s" % (rounds, time.strftime("%H:%M:%S")))
        qemu_tsan = collections.defaultdict(collections.Counter)
        for s in scenarios:
            up, qpd = (tallies[s.name][b] for b in BUILDS)
            c = qpd.counts
            churned = ", ".join("%s %s" % (k, _human(c[k])) for k in COUNTS if c.get(k))
            known = s.upstream_failure and "%s; reproducer: doc/qemu-torture.md, %s" % (
                s.upstream_failure, s.reproducer)
            row = self.table.compare(s.name, up.outcome(), qpd.outcome(), known=known,
                                     must_pass=True, runs={b: tallies[s.name][b].runs
                                                           for b in BUILDS},
                                     endings={b: dict(tallies[s.name][b].endings)
                                              for b in BUILDS},
                                     counts={b: dict(tallies[s.name][b].counts)
                                             for b in BUILDS})
            row.cells["qpd churned"] = churned
            for b in BUILDS:
                for summary, n in tallies[s.name][b].qemu_tsan.most_common():
                    qemu_tsan[summary][b] += n
        for summary, n in sorted(qemu_tsan.items(), key=lambda kv: -sum(kv[1].values())):
            self.table.notes.append("QEMU's own TSan report (upstream %d, qpd %d): %s" % (
                n["upstream"], n["qpd"], summary))
        self.table.notes.insert(0, "%d rounds in %ds (guest time %d ms per run)" % (
            rounds, time.monotonic() - t0, self.opts.ms))
        return self.table


def run(ctx, argv):
    ap = argparse.ArgumentParser(prog="torture")
    ap.add_argument("--seconds", type=int, default=1800 if ctx.full else 120)
    ap.add_argument("--only")
    ap.add_argument("--ms", type=int, default=500 if ctx.qpd.sanitize == "tsan" else 2000)
    ap.add_argument("--timeout", type=int, default=0)
    opts = ap.parse_args(argv)
    scenarios = [s for s in T.SCENARIOS
                 if (ctx.full or opts.only or "ci" in s.tags)
                 and (not opts.only or re.search(opts.only, s.name))]
    for b in ctx.builds.values():
        b.check("user")
    t = Torture(ctx, opts)
    t.prepare(scenarios)
    _log("%d scenarios for %ds on %s builds" % (len(scenarios), opts.seconds,
                                                ctx.qpd.sanitize))
    return t.run(scenarios)
