#!/usr/bin/env python3
"""The logic of the harness's gate and bench phases (qemu/harness/phases/
gate.py and bench.py), without QEMU.

- the gate's attribution of callgrind costs to the plugin core, on a
  synthetic callgrind file: self costs of core functions, code inlined into
  them from other headers, qpd header code inlined elsewhere; never the
  inclusive cost of a call; never other functions.
- the gate's qpd outcomes: growth beyond the tolerance fails, growth under
  the absolute floor passes, a grown total fails, a missing workload fails;
  a failing outcome makes the row a qpd failure.
- the bench's spread and goal checks, and a build's outcome from its runs.
"""
import os
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))

from harness import cases, results  # noqa: E402
from harness.phases import bench, gate  # noqa: E402

# A callgrind file in the format valgrind 3.19 writes (name compression
# with "(id) name" on first use, "(id)" after).
CALLGRIND = """\
version: 1
creator: callgrind-3.19.0
events: Ir
fl=(1) /b/qpd/build/../plugins/qpd-common.c.inc
fn=(1) qemu_plugin_vcpu_syscall
10 100
fi=(2) /usr/include/ck_pr.h
11 7
fe=(1)
12 3
cfl=(3) /b/up/build/../tests/tcg/plugins/syscall.c
cfn=(2) vcpu_syscall
calls=1 0
13 5000
14 2
fl=(3)
fn=(2)
20 4000
fl=(4) /b/up/build/../linux-user/syscall.c
fn=(3) do_syscall
30 50000
fi=(5) /b/qpd/build/../plugins/../subprojects/qpd/include/qpd/vcpu.h
31 9
fe=(4)
32 1
fl=(6) /b/qpd/subprojects/qpd/src/core/instance.c
fn=(4) qpd_reclaim
40 30
totals: 59152
"""


class GateCounts(unittest.TestCase):
    def test_core_is_self_cost_of_core_code(self):
        with tempfile.NamedTemporaryFile("w", suffix=".cg", delete=False) as f:
            f.write(CALLGRIND)
        try:
            total, core = gate.callgrind_counts(f.name)
        finally:
            os.unlink(f.name)
        # Every self cost once; the call's inclusive 5000 is not a cost.
        self.assertEqual(total, 100 + 7 + 3 + 2 + 4000 + 50000 + 9 + 1 + 30)
        # Core: the core function's own lines and the ck code inlined into
        # it (100 + 7 + 3 + 2), qpd's header inlined into QEMU code (9) and
        # qpd's library (30); not the plugin (4000), not QEMU (50000 + 1).
        self.assertEqual(core, 100 + 7 + 3 + 2 + 9 + 30)


def entry(core, total):
    return {"qpd": {"core": core, "total": total}}


class GateVerdicts(unittest.TestCase):
    def test_growth_beyond_tolerance_fails(self):
        o = gate.qpd_outcome(entry(1000000, 10**8), entry(1030000, 10**8), 2.0, 1.0)
        self.assertFalse(o.ok, o.text)
        self.assertIn("core +3.00%", o.text)

    def test_growth_within_tolerance_passes(self):
        o = gate.qpd_outcome(entry(1000000, 10**8), entry(1015000, 10**8), 2.0, 1.0)
        self.assertTrue(o.ok)

    def test_small_counts_grow_up_to_the_floor(self):
        o = gate.qpd_outcome(entry(8000, 10**8), entry(8000 + gate.FLOOR, 10**8), 2.0, 1.0)
        self.assertTrue(o.ok, "+%d instructions is within the floor" % gate.FLOOR)
        o = gate.qpd_outcome(entry(8000, 10**8), entry(8001 + gate.FLOOR, 10**8), 2.0, 1.0)
        self.assertFalse(o.ok)

    def test_total_growth_fails(self):
        o = gate.qpd_outcome(entry(1000, 10**8), entry(1000, 102 * 10**6), 2.0, 1.0)
        self.assertFalse(o.ok)
        self.assertIn("total", o.text)

    def test_missing_and_new(self):
        self.assertFalse(gate.qpd_outcome(entry(1, 1), None, 2.0, 1.0).ok)
        self.assertTrue(gate.qpd_outcome(None, entry(1, 1), 2.0, 1.0).ok)

    def test_regression_is_a_qpd_failure(self):
        now = dict(entry(1030000, 10**8), upstream={"core": 1000000, "total": 10**8},
                   total_ratio=1.0, core_ratio=1.03)
        table = results.Table("gate", "", gate.COLUMNS)
        gate.report(table, {"bb": entry(1000000, 10**8)}, {"bb": now}, None, False)
        self.assertEqual(table.rows[0].verdict.kind, results.QPD_FAIL)
        self.assertIn("core +3.00%", table.rows[0].cells["vs baseline"])
        table = results.Table("gate", "", gate.COLUMNS)
        gate.report(table, {"bb": entry(1000000, 10**8)}, {"bb": now}, None, True)
        self.assertEqual(table.exit_status(), 0, "--update fails nothing")


def measured(ratio, spread_, goal=None, group="inline"):
    case = cases.Case("w", goal=goal, group=group)
    r = {"cpu_ratio": ratio, "spread": spread_}
    return case, r


class BenchVerdicts(unittest.TestCase):
    def test_spread_combines_both_builds(self):
        meas = {"upstream": {"wall_mean": 1.0, "wall_stddev": 0.03},
                "qpd": {"wall_mean": 2.0, "wall_stddev": 0.08}}
        self.assertAlmostEqual(bench.spread(meas, 0.5), 0.5 * 0.05)

    def test_not_slower_within_spread(self):
        self.assertTrue(bench.goal_check(*measured(1.03, 0.05))[0])
        ok, text = bench.goal_check(*measured(1.06, 0.05))
        self.assertFalse(ok)
        self.assertEqual(text, "SLOWER")

    def test_goal(self):
        self.assertTrue(bench.goal_check(*measured(0.35, 0.01, goal=0.35))[0])
        self.assertFalse(bench.goal_check(*measured(0.36, 0.01, goal=0.35))[0])

    def test_growth_flushes_break_the_goal(self):
        wl, r = measured(0.5, 0.01, goal=0.85, group="growth")
        r["flushes"] = {"upstream": 7, "qpd": 3}
        r["flushes_1t"] = 2
        ok, text = bench.goal_check(wl, r)
        self.assertFalse(ok)
        self.assertIn("growth flushes 1", text)
        r["flushes"]["qpd"] = 2
        self.assertTrue(bench.goal_check(wl, r)[0])

    def test_outcome_of_runs(self):
        self.assertTrue(bench.outcome([0, 0]).ok)
        o = bench.outcome([0, 139, 0, 139])
        self.assertFalse(o.ok)
        self.assertEqual(o.text, "exit 139 in 2/4 runs")
        with tempfile.NamedTemporaryFile("w", suffix=".serial") as f:
            f.write("QPD-BOOT: oops=0\n")
            f.flush()
            self.assertFalse(bench.outcome([0], f.name).ok)
            f.write("QPD-BOOT: done\n")
            f.flush()
            self.assertTrue(bench.outcome([0], f.name).ok)
        self.assertFalse(bench.outcome([0], "/nonexistent.serial").ok)


if __name__ == "__main__":
    unittest.main()
