"""user: qpd's checks in user mode (qemu-x86_64), on the upstream and the
qpd build of one QEMU source, side by side.

  a. inline   QEMU's libinline.so, which asserts that its callback and
              inline counts agree, at 1, 16, 64 and 256 guest threads
              (cases.INLINE): the run must exit 0.
  b. flushes  translated-code flushes counted with gdb (flushes.py) under
              the scoreboard plugins at 1/16/64/256 threads
              (cases.FLUSHES). A build's 1-thread count is its baseline.
              Upstream flushes once more each time a vCPU index reaches
              the scoreboards' capacity (16, 32, 64, ...): its count is
              reported with the growth expected and passes as it is; qpd
              passes only with 0 growth.
  c. reset    QEMU's libreset.so (when this QEMU has it) and our
              qemu/tests/plugin-reset.c at 16 guest threads (cases.RESET),
              3 runs each (20 with --full).
  d. fork     qemu/tests/fork-threads.c (a 4-thread guest forking 3
              children that start 4 threads each) without a plugin and
              under every test plugin both builds have (cases.fork_case),
              1 run each (5 with --full).

A run passes when it exits 0 and prints the strings its case expects
(Case.expect: the plugin's, the guest's PASS line). Each row is judged by
results.verdict: qpd must pass wherever upstream passes; upstream's own
failures are reported, never held against qpd.
"""
import os
import re

from .. import cases, flushes, guests, util
from ..results import Outcome, Table, failed, passed
from ..util import HarnessError, log, slug

# (CI, --full): seconds per run and runs per case.
TIMEOUT = {"inline": (120, 600), "flushes": (180, 600), "reset": (90, 180),
           "fork": (90, 300)}
RUNS = {"inline": (1, 1), "reset": (3, 20), "fork": (1, 5)}
CHECK = {"inline": "a. inline.c asserts", "flushes": "b. tb flushes (gdb)",
         "reset": "c. reset/uninstall", "fork": "d. fork with threads"}


def growth_expected(threads):
    """Upstream's growth flushes for vCPU indices 0..THREADS: one per
    scoreboard capacity (16, 32, 64, ...) that an index reaches."""
    n, cap = 0, 16
    while cap <= threads:
        n, cap = n + 1, cap * 2
    return n


def flush_outcome(build, threads, count, base, why=None):
    """BUILD's outcome for COUNT flushes at THREADS threads, given its
    1-thread BASE count; WHY says how the run failed (None: it did not)."""
    if why is not None or count is None:
        return failed("FAIL (flushes %s; %s)" % ("?" if count is None else count,
                                                  why or "no count"))
    if threads == 1:
        return passed("pass: %d (baseline)" % count)
    if base is None:
        return failed("FAIL: %d (no baseline)" % count)
    growth = count - base
    if build == "upstream":
        return passed("pass: %d, growth %d (expected %d)" % (count, growth,
                                                           growth_expected(threads)))
    if growth == 0:
        return passed("pass: %d, growth 0" % count)
    return failed("FAIL: %d, growth %d" % (count, growth))


def repeated(failures):
    """One outcome for repeated runs, given each run's failure (None: passed)."""
    n, ok = len(failures), failures.count(None)
    first = next((f for f in failures if f is not None), "")
    if ok == n:
        return passed("pass" if n == 1 else "pass (%d/%d)" % (n, n))
    if n == 1:
        return failed("FAIL: " + first)
    return failed("FAIL (%d/%d passed; first failure: %s)" % (ok, n, first))


def failure(r, expect=()):
    """Why run R failed, or None: it must exit 0 and print every EXPECT
    string. The guest's or plugin's own FAIL line, if any, is added."""
    text = r.output()
    missing = [s for s in expect if s not in text]
    if r.rc != 0:
        why = r.why()
    elif missing:
        why = 'no "%s" in its output' % missing[0]
    else:
        return None
    own = re.findall(r"^[\w-]+: FAIL\b.*$", text, re.M)
    return why + ("; " + own[-1][:120] if own and own[-1] not in why else "")


def fork_plugins(up_libs, qpd_libs, full):
    """The fork check's plugins from the test plugins each build has: None
    (no plugin), each library both have with its FORK_ARGS, and with FULL
    the FORK_FULL_EXTRA variants after their library."""
    out = [None]
    for lib in sorted(set(up_libs) & set(qpd_libs)):
        args = cases.FORK_ARGS.get(lib, "")
        out.append(cases.P.get(lib + ("," + args if args else "")) or cases.Plugin(lib, args))
        if full:
            out += [p for p in cases.FORK_FULL_EXTRA if p.lib == lib]
    return out


def test_plugins(build):
    """The libraries in BUILD's tests/tcg/plugins, by name (libbb.so -> bb)."""
    d = os.path.join(build.dir, "tests", "tcg", "plugins")
    return [f[3:-3] for f in os.listdir(d) if f.startswith("lib") and f.endswith(".so")]


class Checks:
    """The four checks of one run, adding their rows to one table."""

    def __init__(self, ctx):
        self.ctx, self.full = ctx, int(ctx.full)
        self.dir = ctx.phase_dir("user")
        self.bin = os.path.join(self.dir, "bin")
        self.guests = guests.guests(["guest-threads", "fork-threads"], self.bin)
        for b in ctx.builds.values():
            b.check()
            guests.plugin("plugin-reset", b, self.bin)
        self.table = Table("user", "qpd user-mode checks: QEMU %s%s" % (
            ctx.version, " (--full)" if ctx.full else ""), notes=[
                "upstream: " + ctx.upstream.dir, "qpd: " + ctx.qpd.dir,
                "logs in " + self.dir])

    def command(self, build, case, plugin_log=True):
        """BUILD's qemu-x86_64 command line for CASE."""
        return build.user_command(case.plugin, self.guests[case.guest],
                                  case.argv(self.full), plugin_log, self.bin)

    def log_path(self, check, build, case, i=1):
        """The log of run I of CASE on BUILD."""
        return os.path.join(self.dir, check, "%s-%s-%d.log" % (build.name, slug(case.name), i))

    def row(self, check, name, case, outcomes):
        """Add the row of CASE from {build: Outcome}."""
        r = self.table.compare("%s: %s" % (CHECK[check], name), outcomes["upstream"],
                               outcomes["qpd"], known=case.known_upstream_failure)
        log("%s: upstream: %s; qpd: %s -> %s" % (r.case, r.cells["upstream"],
                                                r.cells["qpd"], r.verdict), "user")

    def repeat(self, check, case, name=None):
        """Run CASE on each build RUNS[check] times and add its row."""
        runs, timeout = RUNS[check][self.full], TIMEOUT[check][self.full]
        outcomes = {}
        for b in self.ctx.builds.values():
            if not b.has(case.plugin, self.bin):
                outcomes[b.name] = Outcome(False, "no " + case.plugin.so, absent=True)
                continue
            outcomes[b.name] = repeated([
                failure(util.run(self.command(b, case), self.log_path(check, b, case, i), timeout),
                        case.expect) for i in range(1, runs + 1)])
        self.row(check, name or case.name, case, outcomes)

    def inline_asserts(self):
        """a. libinline's own assertions, one run per thread count."""
        for case in cases.INLINE:
            self.repeat("inline", case, "%s, iterations=%s" % (case.name, case.argv(self.full)[1]))

    def tb_flushes(self):
        """b. flushes per thread count against each build's 1-thread baseline."""
        base = {}
        for case in cases.FLUSHES:
            threads = int(case.argv(self.full)[0])
            outcomes = {}
            for b in self.ctx.builds.values():
                key = (b.name, case.plugin.label)
                count, r = flushes.count(self.command(b, case, plugin_log=False),
                                         self.log_path("flushes", b, case),
                                         TIMEOUT["flushes"][self.full])
                o = outcomes[b.name] = flush_outcome(b.name, threads, count, base.get(key),
                                                     failure(r))
                if threads == 1 and o.ok:
                    base[key] = count
            self.row("flushes", case.name, case, outcomes)

    def reset(self):
        """c. QEMU's libreset and our plugin-reset, repeated."""
        for case in cases.RESET:
            self.repeat("reset", case)

    def fork(self):
        """d. fork-threads with no plugin and under each test plugin."""
        for plg in fork_plugins(test_plugins(self.ctx.upstream), test_plugins(self.ctx.qpd),
                                self.ctx.full):
            self.repeat("fork", cases.fork_case(plg, self.ctx.full))


def run(ctx, argv):
    """The four checks on ctx's two builds; returns their table."""
    if argv:
        raise HarnessError("user: unknown arguments: %s" % " ".join(argv))
    checks = Checks(ctx)
    checks.inline_asserts()
    checks.tb_flushes()
    checks.reset()
    checks.fork()
    return checks.table
