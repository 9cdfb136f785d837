"""check-tcg: QEMU's own TCG tests (the guest tests of tests/tcg, each
also run under every tests/tcg/plugins plugin) on the upstream and the
qpd build, side by side.

For each target of the target list, the tests are the run-* targets that
BUILD/tests/tcg/TARGET's Makefile lists in "make help" (SPEED=quick, or
SPEED=slow with --full); the qpd build must list the same ones as
upstream. Per build and target, what the tests need is built once, before
any test runs: QEMU's build-tcg-tests-TARGET, then whatever a dry run of
"make run" would still remake (SPEED=slow's reference outputs), serially.
The tests then only run, so no two of them ever build the same file. Each
test is its own "make run-X", ctx.jobs at a time, with its own exit status
and log; one that fails is run once more, alone, and is flaky if it then
passes.

Verdict (results.verdict): qpd must pass every test upstream passes; a
qpd failure, or a flaky qpd pass, where upstream passes fails the phase;
a test upstream fails (or is flaky on) is upstream's failure, reported
only. A missing build, an empty or differing test list, or make failing
outside a test is a HarnessError.
"""
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor

from .. import builds, util
from ..results import Outcome, Table, failed
from ..util import HarnessError, capture, fmt_secs, log

TEST_TIMEOUT = 300      # per test; QEMU's Makefile kills a test after 120 s itself
BUILD_TIMEOUT = 1800    # building one target's tests


def speed(full):
    """QEMU's SPEED: "slow" adds the slow tests."""
    return "slow" if full else "quick"


def parse_help(text):
    """The run-* targets of "make help", in its order."""
    return re.findall(r"^  (run-\S+)$", text, re.M)


def parse_remakes(trace):
    """The targets other than tests (run, run-*) that a "make -n --trace"
    would remake, in order, once each."""
    names = re.findall(r"(?:update target '([^']+)' due to|target '([^']+)' does not exist)",
                       trace)
    out = []
    for name in (a or b for a, b in names):
        if name != "run" and not name.startswith("run-") and name not in out:
            out.append(name)
    return out


def failure(r):
    """How a failed test's make ended, in a few words: our time limit, or
    the status of the recipe line that failed (137: make's own TIMEOUT)."""
    if r.timed_out:
        return "timeout (%s)" % fmt_secs(r.seconds)
    codes = re.findall(r"\*\*\* \[[^]]*\] Error (\d+)", r.output())
    if not codes:
        return "FAIL (%s)" % r.ended()
    return "FAIL (killed: time limit)" if codes[-1] == "137" else "FAIL (error %s)" % codes[-1]


def tcg_dir(build, target):
    """BUILD's tests/tcg/TARGET."""
    return os.path.join(build.dir, "tests", "tcg", target)


def make_argv(build, target, spd, *goals):
    """make in BUILD's tests/tcg/TARGET with SPEED=SPD."""
    return ["make", "-C", tcg_dir(build, target), "--no-print-directory",
            "SPEED=" + spd] + list(goals)


def list_tests(build, target, spd):
    """TARGET's tests in BUILD; none is a HarnessError."""
    tests = parse_help(capture(make_argv(build, target, spd, "help")))
    if not tests:
        raise HarnessError("%s build: no %s tests listed" % (build.name, target))
    return tests


def dry_run(build, target, spd, log):
    """What a dry run of TARGET's "make run" in BUILD would remake besides
    the tests; make failing is a HarnessError."""
    r = util.run(make_argv(build, target, spd, "-n", "--trace", "run"), log, 120)
    if r.rc != 0:
        raise HarnessError("%s: make -n run for %s: %s (log %s)" % (
            build.name, target, r.ended(), r.out))
    return parse_remakes(r.output())


def prepare(build, target, spd, jobs, logdir):
    """Build what TARGET's tests need in BUILD (QEMU's build-tcg-tests-TARGET,
    then serially whatever they would still remake), so that running them
    builds nothing; a failure is a HarnessError."""
    base = os.path.join(logdir, "%s-%s" % (build.name, target))
    r = util.run(["make", "-C", build.dir, "-j%d" % jobs, "build-tcg-tests-" + target],
                 base + ".build.log", BUILD_TIMEOUT)
    if r.rc != 0:
        raise HarnessError("%s: build-tcg-tests-%s: %s (log %s)" % (
            build.name, target, r.ended(), r.out))
    left = dry_run(build, target, spd, base + ".dry-run.log")
    if not left:
        return
    r = util.run(make_argv(build, target, spd, *left), base + ".extra.log", BUILD_TIMEOUT)
    if r.rc != 0:
        raise HarnessError("%s %s: building %s: %s (log %s)" % (
            build.name, target, " ".join(left), r.ended(), r.out))
    left = dry_run(build, target, spd, base + ".dry-run-2.log")
    if left:
        raise HarnessError("%s %s: the tests would still remake %s" % (
            build.name, target, " ".join(left)))


def run_suite(build, target, tests, spd, jobs, logdir):
    """Run TESTS of TARGET on BUILD, JOBS at a time, retrying each failure
    once alone; returns ({test: Outcome}, {test: its last util.Run}, seconds)."""
    t0 = time.monotonic()
    prepare(build, target, spd, jobs, logdir)
    d = os.path.join(logdir, build.name, target)

    def one(test, suffix=""):
        return util.run(make_argv(build, target, spd, test),
                        os.path.join(d, test + suffix + ".log"), TEST_TIMEOUT)

    with ThreadPoolExecutor(jobs) as pool:
        runs = dict(zip(tests, pool.map(one, tests)))
    outcomes = {}
    for test, r in runs.items():
        if r.rc == 0:
            outcomes[test] = Outcome(True, "pass")
            continue
        again = one(test, ".retry")
        if again.rc == 0:
            log("%s %s: %s %s, passed when retried alone (flaky)"
                % (build.name, target, test, failure(r)))
            outcomes[test] = Outcome(True, "flaky: %s, then pass" % failure(r), flaky=True)
        else:
            log("%s %s: %s %s, again when retried alone" % (build.name, target, test,
                                                           failure(again)))
            outcomes[test] = failed(failure(r))
            runs[test] = again
    return outcomes, runs, time.monotonic() - t0


def suite_note(name, target, outcomes, seconds):
    """A build's line under the table: "ran/passed (+flaky), time"."""
    flaky = sum(o.flaky for o in outcomes.values())
    passed = sum(o.ok and not o.flaky for o in outcomes.values())
    return "%s %s: %d/%d ran/passed%s, %s" % (
        name, target, len(outcomes), passed, " (+%d flaky)" % flaky if flaky else "",
        fmt_secs(seconds))


def run(ctx, argv):
    """The check-tcg phase: one row per test and target."""
    if argv:
        raise HarnessError("check-tcg takes no options: %s" % " ".join(argv))
    spd, logdir = speed(ctx.full), ctx.phase_dir("check-tcg")
    for b in ctx.builds.values():
        if not os.path.exists(os.path.join(b.dir, "build.ninja")):
            raise HarnessError("%s: no build in %s" % (b.name, b.dir))
        builds.link_firmware(b.dir)
    up, qpd = ctx.builds["upstream"], ctx.builds["qpd"]
    table = Table("check-tcg", "check-tcg, qemu %s (SPEED=%s)" % (ctx.version, spd))
    for target in builds.TARGET_LIST.split(","):
        tests = list_tests(up, target, spd)
        if list_tests(qpd, target, spd) != tests:
            raise HarnessError("the qpd build lists other %s tests than upstream" % target)
        res = {}
        for b in (up, qpd):
            log("%s: check-tcg %s (%d tests, SPEED=%s, -j%d)"
                % (b.name, target, len(tests), spd, ctx.jobs))
            res[b.name] = run_suite(b, target, tests, spd, ctx.jobs, logdir)
            table.notes.append(suite_note(b.name, target, res[b.name][0], res[b.name][2]))
        for test in tests:
            table.compare("%s: %s" % (target, test[len("run-"):]),
                          res["upstream"][0][test], res["qpd"][0][test],
                          logs={n: res[n][1][test].out for n in res},
                          seconds={n: round(res[n][1][test].seconds, 2) for n in res})
    return table
