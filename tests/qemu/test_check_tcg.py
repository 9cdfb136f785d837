#!/usr/bin/env python3
"""The check-tcg phase's pure logic, without QEMU: the test list from
"make help", the non-test targets a dry run of "make run" would remake,
how a failed test's make ended, and the per-build note under the table.
"""
import os
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))

from harness.phases import check_tcg  # noqa: E402
from harness.results import Outcome  # noqa: E402
from harness.util import Run  # noqa: E402

HELP = """TCG tests help x86_64
Built with cc
Available tests:
  run-sha1
  run-plugin-sha1-with-libbb.so
  run-gdbstub-sha1
"""


class Help(unittest.TestCase):
    def test_run_targets_in_order(self):
        self.assertEqual(check_tcg.parse_help(HELP),
                         ["run-sha1", "run-plugin-sha1-with-libbb.so", "run-gdbstub-sha1"])

    def test_nothing_listed(self):
        self.assertEqual(check_tcg.parse_help("TCG tests help x86_64\nAvailable tests:\n"), [])


class Remakes(unittest.TestCase):
    def test_tests_and_run_are_not_remakes(self):
        trace = ("Makefile:185: target 'run' does not exist\n"
                 "Makefile:163: target 'run-sha1' does not exist\n"
                 "printf '  %-7s %s\\n' TEST sha1 ...\n")
        self.assertEqual(check_tcg.parse_remakes(trace), [])

    def test_prerequisites_once_each_in_order(self):
        # make 4.3 says "does not exist", make 4.4 "update target ... due to".
        trace = ("Makefile.target:59: target 'test-i386-fprem.ref' does not exist\n"
                 "Makefile:150: update target 'sha1' due to: sha1.c\n"
                 "Makefile.target:59: update target 'test-i386-fprem.ref' due to: "
                 "target does not exist\n"
                 "Makefile:163: update target 'run-sha1' due to: target does not exist\n")
        self.assertEqual(check_tcg.parse_remakes(trace), ["test-i386-fprem.ref", "sha1"])


class Failure(unittest.TestCase):
    def ran(self, rc, text=""):
        f = tempfile.NamedTemporaryFile("w", suffix=".log", delete=False)
        f.write(text)
        f.close()
        self.addCleanup(os.unlink, f.name)
        return Run(["make"], rc, 130.0, f.name)

    def test_recipe_status(self):
        r = self.ran(2, "make: *** [Makefile:163: run-sha1] Error 1\n")
        self.assertEqual(check_tcg.failure(r), "FAIL (error 1)")

    def test_killed_by_makes_timeout(self):
        r = self.ran(2, "make: *** [Makefile:163: run-sha1] Error 137\n")
        self.assertEqual(check_tcg.failure(r), "FAIL (killed: time limit)")

    def test_our_timeout(self):
        self.assertEqual(check_tcg.failure(self.ran(None)), "timeout (2m10s)")

    def test_make_itself(self):
        r = self.ran(2, "make: *** No rule to make target 'x'.  Stop.\n")
        self.assertEqual(check_tcg.failure(r), "FAIL (exit 2)")


class Note(unittest.TestCase):
    def test_counts(self):
        o = {"a": Outcome(True, "pass"), "b": Outcome(True, "flaky", flaky=True),
             "c": Outcome(False, "FAIL (error 1)")}
        self.assertEqual(check_tcg.suite_note("qpd", "x86_64-softmmu", o, 75),
                         "qpd x86_64-softmmu: 3/1 ran/passed (+1 flaky), 1m15s")

    def test_speed(self):
        self.assertEqual((check_tcg.speed(False), check_tcg.speed(True)), ("quick", "slow"))


if __name__ == "__main__":
    unittest.main()
