#!/usr/bin/env python3
"""The harness's one verdict rule and its one table type, without QEMU.

- verdict(): qpd fails only where upstream passes (failing, flaky, or
  with different output); upstream's failures are upstream's, with the
  declared reason; a case neither build has is skipped; a case only the
  qpd build lacks is a qpd failure.
- Table: exit status 1 exactly when a row is a qpd failure, 2 for a
  phase that could not run; Markdown, JSON and TAP carry every row.
- cases: names unique per list, every plugin label declared once, the
  gate's case names are the committed baselines' keys.
"""
import json
import os
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))

from harness import cases, results  # noqa: E402
from harness.results import Outcome, Table, verdict  # noqa: E402

OK, BAD = Outcome(True, "pass"), Outcome(False, "exit 1")
FLAKY = Outcome(True, "pass when retried", flaky=True)
ABSENT = Outcome(False, "no libpatch.so", absent=True)


class VerdictRule(unittest.TestCase):
    def test_both_pass(self):
        self.assertEqual(verdict(OK, OK).kind, results.PASS)

    def test_qpd_fails_where_upstream_passes(self):
        v = verdict(OK, BAD)
        self.assertEqual(v.kind, results.QPD_FAIL)
        self.assertTrue(v.fails)

    def test_qpd_flaky_where_upstream_passes_fails(self):
        self.assertEqual(verdict(OK, FLAKY).kind, results.QPD_FAIL)
        self.assertIn("flaky", verdict(OK, FLAKY).text)

    def test_output_difference_fails(self):
        v = verdict(OK, OK, differs="plugin output shape differs")
        self.assertEqual(v.kind, results.QPD_FAIL)
        self.assertIn("shape differs", v.text)

    def test_upstream_failure_is_upstreams(self):
        for qpd in (OK, BAD, FLAKY):
            v = verdict(BAD, qpd)
            self.assertEqual(v.kind, results.UPSTREAM_FAIL)
            self.assertFalse(v.fails)
        self.assertIn("qpd passes", verdict(BAD, OK).text)
        self.assertNotIn("qpd passes", verdict(BAD, BAD).text)

    def test_upstream_flaky_is_upstreams(self):
        self.assertEqual(verdict(FLAKY, OK).kind, results.UPSTREAM_FAIL)

    def test_known_reason_shown(self):
        v = verdict(BAD, BAD, known_upstream_failure="asserts on region crossing")
        self.assertIn("known: asserts on region crossing", v.text)
        # a known upstream failure that upstream passes is compared as usual
        self.assertEqual(verdict(OK, BAD, known_upstream_failure="x").kind, results.QPD_FAIL)

    def test_absent(self):
        self.assertEqual(verdict(ABSENT, ABSENT).kind, results.SKIP)
        self.assertEqual(verdict(OK, ABSENT).kind, results.QPD_FAIL)


class TableType(unittest.TestCase):
    def table(self):
        t = Table("demo", "a demo")
        t.compare("both pass", OK, OK)
        t.compare("upstream fails", BAD, OK, known="reason")
        t.compare("skipped", ABSENT, ABSENT)
        return t

    def test_exit_status(self):
        t = self.table()
        self.assertEqual(t.exit_status(), 0)
        t.compare("qpd fails", OK, BAD)
        self.assertEqual(t.exit_status(), 1)
        self.assertEqual(t.qpd_failures, 1)
        s = Table("summary", "", columns=("time",))
        s.add("boot", results.Verdict(results.HARNESS_ERROR, "HARNESS ERROR"), {"time": "1s"})
        self.assertEqual(s.exit_status(), 2)
        s.add("user", results.Verdict(results.QPD_FAIL, "FAIL"), {"time": "1s"})
        self.assertEqual(s.exit_status(), 1)

    def test_renderings_hold_every_row(self):
        t = self.table()
        t.compare("qpd | fails", OK, BAD)
        md = t.markdown()
        self.assertEqual(md.count("\n| "), 2 + 4)          # header, rule, rows
        self.assertIn("qpd \\| fails", md)
        notable = t.markdown(only_notable=True)
        self.assertNotIn("both pass", notable)
        self.assertIn("1 more rows pass", notable)
        tap = t.tap().splitlines()
        self.assertEqual(tap[:2], ["TAP version 13", "1..4"])
        self.assertTrue(tap[2].startswith("ok 1 - demo: both pass"))
        self.assertIn("# SKIP upstream failure", tap[3])
        self.assertTrue(tap[5].startswith("not ok 4 "))
        js = t.to_json()
        self.assertEqual([r["verdict"] for r in js["rows"]],
                         [results.PASS, results.UPSTREAM_FAIL, results.SKIP, results.QPD_FAIL])
        self.assertEqual(js["rows"][3]["qpd"]["ok"], False)
        with tempfile.TemporaryDirectory() as d:
            path = t.write(d)
            self.assertTrue(path.endswith("demo.md"))
            self.assertEqual(json.load(open(os.path.join(d, "demo.json")))["qpd_failures"], 1)


class Cases(unittest.TestCase):
    def test_names_unique(self):
        for name, lst in (("BOOT", cases.BOOT), ("GATE", cases.GATE),
                          ("bench", cases.bench_cases(2)), ("bench", cases.bench_cases(8)),
                          ("inline", cases.INLINE), ("flushes", cases.FLUSHES),
                          ("reset", cases.RESET)):
            names = [c.name for c in lst]
            self.assertEqual(len(names), len(set(names)), name)

    def test_plugin_parse(self):
        p = cases.Plugin.parse("libbb.so,inline=on")
        self.assertEqual((p.lib, p.args, p.so, p.label), ("bb", "inline=on", "libbb.so",
                                                           "bb,inline=on"))
        self.assertEqual(cases.Plugin.parse("insn").args, "")

    def test_gate_cases_match_baselines(self):
        for minor in ("10.0", "10.2"):
            with open(os.path.join(ROOT, "qemu", "gate", "baseline-%s.json" % minor)) as f:
                base = set(json.load(f)["workloads"])
            names = {c.name for c in cases.GATE}
            self.assertLessEqual(base, names, minor)

    def test_ci_sets_not_empty(self):
        ci = cases.select(cases.BOOT)
        self.assertTrue(ci)
        self.assertLess(len(ci), len(cases.select(cases.BOOT, everything=True)))
        self.assertEqual([c.name for c in cases.select(cases.BOOT, True, "^bb")],
                         ["bb inline=on", "bb inline=on,idle=on", "bb"])
        self.assertTrue(cases.select(cases.bench_cases(2)))
        self.assertEqual(cases.BOOT[0].expect, ("patch-target=original",))


if __name__ == "__main__":
    unittest.main(verbosity=1)
