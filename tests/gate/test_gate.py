#!/usr/bin/env python3
"""The gate's comparison logic on synthetic inputs."""
import importlib.machinery
import importlib.util
import io
import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "..", "..", "bench", "gate")
loader = importlib.machinery.SourceFileLoader("gate", PATH)
spec = importlib.util.spec_from_loader("gate", loader)
gate = importlib.util.module_from_spec(spec)
loader.exec_module(gate)


def cases(**kw):
    return {k: {"ir_per_op": v} for k, v in kw.items()}


class Compare(unittest.TestCase):
    def test_pass_within_tolerance(self):
        rows, failed = gate.compare(cases(a=100.0, b=50.0), cases(a=102.9, b=45.0))
        self.assertFalse(failed)
        self.assertEqual([r[4] for r in rows], ["ok", "ok"])

    def test_fail_beyond_tolerance(self):
        rows, failed = gate.compare(cases(a=100.0), cases(a=103.1))
        self.assertTrue(failed)
        self.assertTrue(rows[0][4].startswith("FAIL"))
        self.assertAlmostEqual(rows[0][3], 3.1, places=6)

    def test_per_case_tolerance(self):
        base = {"a": {"ir_per_op": 100.0, "tolerance_pct": 10.0}}
        self.assertFalse(gate.compare(base, cases(a=109.0))[1])
        self.assertTrue(gate.compare(base, cases(a=111.0))[1])

    def test_missing_case_fails(self):
        rows, failed = gate.compare(cases(a=10.0, gone=5.0), cases(a=10.0))
        self.assertTrue(failed)
        self.assertIn(("gone", 5.0, None, None, "MISSING"), rows)

    def test_new_case_is_reported_not_gated(self):
        rows, failed = gate.compare(cases(a=10.0), cases(a=10.0, fresh=7.0))
        self.assertFalse(failed)
        self.assertIn(("fresh", None, 7.0, None, "new (not gated)"), rows)

    def test_improvement_passes(self):
        self.assertFalse(gate.compare(cases(a=100.0), cases(a=60.0))[1])

    def test_table_names_every_case(self):
        rows, _ = gate.compare(cases(a=1.0, b=2.0), cases(a=1.0, c=3.0))
        out = io.StringIO()
        gate.print_table(rows, out)
        text = out.getvalue()
        for name in ("a", "b", "c", "MISSING", "new (not gated)", "baseline", "change"):
            self.assertIn(name, text)


if __name__ == "__main__":
    sys.exit(unittest.main(verbosity=2))
