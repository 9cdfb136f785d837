#!/usr/bin/env python3
"""The user phase's and the gdb flush counter's pure logic, without QEMU:
gdb's summary and "info address" output, upstream's expected growth
flushes, each build's flush outcome, a repeated run's cell, a run's
failure text, and the fork check's plugin list.
"""
import os
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))

from harness import cases, flushes  # noqa: E402
from harness.phases import user  # noqa: E402
from harness.util import Run  # noqa: E402


class GdbOutput(unittest.TestCase):
    def test_exit_code(self):
        text = "[Inferior 1 (process 9) exited normally]\nqpd-flushes: 7\nqpd-exit: 0\n"
        self.assertEqual(flushes.parse(text), (7, 0))

    def test_signal_is_128_plus(self):
        self.assertEqual(flushes.parse("qpd-flushes: 2\nqpd-exit: signal 6\n"), (2, 134))

    def test_unknown_exit(self):
        self.assertEqual(flushes.parse("qpd-flushes: 2\nqpd-exit: unknown\n"),
                         (2, flushes.UNKNOWN_EXIT))

    def test_lost_race_has_no_summary(self):
        text = "Couldn't get registers: No such process.\n"
        self.assertEqual(flushes.parse(text), (None, None))

    def test_last_summary_counts_and_guest_lines_do_not(self):
        text = "say qpd-flushes: 99\nqpd-flushes: 1\nqpd-exit: 3\nqpd-flushes: 4\nqpd-exit: 0\n"
        self.assertEqual(flushes.parse(text), (4, 0))

    def test_location_10_2_first(self):
        info = ('Symbol "tb_flush__exclusive_or_serial" is a function at address 0x1.\n'
                'Symbol "do_tb_flush" is a function at address 0x2.\n')
        self.assertEqual(flushes.location_from(info), "tb_flush__exclusive_or_serial")

    def test_location_10_0(self):
        info = ('No symbol "tb_flush__exclusive_or_serial" in current context.\n'
                'Symbol "do_tb_flush" is a function at address 0xcb7c0.\n')
        self.assertEqual(flushes.location_from(info), "*do_tb_flush")

    def test_location_stripped(self):
        self.assertIsNone(flushes.location_from('No symbol table is loaded.\n'))

    def test_script_counts_at_the_location(self):
        s = flushes.script("*do_tb_flush")
        self.assertIn("break *do_tb_flush\n", s)
        self.assertIn('printf "qpd-flushes: %d\\n", $qpd_flushes', s)


class Flushes(unittest.TestCase):
    def test_growth_expected(self):
        self.assertEqual([user.growth_expected(t) for t in (1, 15, 16, 31, 32, 64, 256)],
                         [0, 0, 1, 1, 2, 3, 5])

    def test_baseline(self):
        o = user.flush_outcome("qpd", 1, 2, None)
        self.assertTrue(o.ok)
        self.assertEqual(o.text, "pass: 2 (baseline)")

    def test_upstream_growth_is_reported_and_passes(self):
        o = user.flush_outcome("upstream", 256, 7, 2)
        self.assertTrue(o.ok)
        self.assertEqual(o.text, "pass: 7, growth 5 (expected 5)")

    def test_qpd_must_not_grow(self):
        self.assertTrue(user.flush_outcome("qpd", 256, 2, 2).ok)
        o = user.flush_outcome("qpd", 64, 3, 2)
        self.assertFalse(o.ok)
        self.assertEqual(o.text, "FAIL: 3, growth 1")

    def test_no_baseline(self):
        self.assertEqual(str(user.flush_outcome("qpd", 16, 2, None)), "FAIL: 2 (no baseline)")

    def test_failed_run(self):
        o = user.flush_outcome("upstream", 16, None, 2, "timeout")
        self.assertFalse(o.ok)
        self.assertEqual(o.text, "FAIL (flushes ?; timeout)")
        self.assertEqual(user.flush_outcome("qpd", 1, 2, None, "signal 6").text,
                         "FAIL (flushes 2; signal 6)")


class Repeated(unittest.TestCase):
    def test_single_pass(self):
        self.assertEqual(str(user.repeated([None])), "pass")

    def test_all_pass(self):
        o = user.repeated([None] * 3)
        self.assertTrue(o.ok)
        self.assertEqual(o.text, "pass (3/3)")

    def test_single_failure(self):
        self.assertEqual(str(user.repeated(["exit 1"])), "FAIL: exit 1")

    def test_some_fail(self):
        o = user.repeated([None, "timeout", None, "signal 11"])
        self.assertFalse(o.ok)
        self.assertEqual(o.text, "FAIL (2/4 passed; first failure: timeout)")


class Failure(unittest.TestCase):
    def run_of(self, rc, text):
        f = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
        self.addCleanup(os.unlink, f.name)
        f.write(text)
        f.close()
        return Run(["qemu"], rc, 1.0, f.name)

    def test_pass(self):
        self.assertIsNone(user.failure(self.run_of(0, "reset done\n"), ("reset done",)))

    def test_missing_string(self):
        r = self.run_of(0, "plugin-reset: FAIL resets=1 uninstalls=0\n")
        self.assertEqual(user.failure(r, ("plugin-reset: PASS",)),
                         'no "plugin-reset: PASS" in its output; '
                         'plugin-reset: FAIL resets=1 uninstalls=0')

    def test_exit_with_the_guests_fail_line(self):
        r = self.run_of(1, "**\nERROR:core.c:265:f: assertion failed: (success)\n"
                        "fork-threads: FAIL children=3 ok=0\n")
        self.assertEqual(user.failure(r, ("fork-threads: PASS",)),
                         "exit 1: ERROR:core.c:265:f: assertion failed: (success); "
                         "fork-threads: FAIL children=3 ok=0")

    def test_timeout(self):
        self.assertEqual(user.failure(self.run_of(None, "")), "timeout")


class Fork(unittest.TestCase):
    def test_plugins_both_builds_have_with_their_arguments(self):
        got = user.fork_plugins(["patch", "bb", "syscall", "only-up"],
                                ["bb", "patch", "syscall", "only-qpd"], False)
        self.assertEqual([p and p.label for p in got],
                         [None, "bb", "patch," + cases.FORK_ARGS["patch"], "syscall"])
        self.assertEqual(got[3].expect, cases.P["syscall"].expect)

    def test_full_adds_variants_after_their_library(self):
        got = user.fork_plugins(["bb", "insn", "mem"], ["bb", "insn", "mem"], True)
        self.assertEqual([p and p.label for p in got],
                         [None, "bb", "bb,inline=on", "insn", "insn,inline=on", "mem",
                          "mem,inline=on,callback=off"])

    def test_case_expects_the_guests_pass_line(self):
        c = cases.fork_case(cases.P["insn"])
        self.assertIn("fork-threads: PASS", c.expect)
        self.assertIn("total insns", c.expect)


if __name__ == "__main__":
    unittest.main()
