#!/usr/bin/env python3
"""The conformance suite's pure logic, without QEMU: its case list, its
normalisers on outputs recorded from QEMU 10.0.13 (tests/qemu/data/
conformance/: hotpages on qemu/tests/serial.c from two upstream runs and
a qpd run, contrib cache and hwprofile from the boot, plugin-selfreset
on syscalls 1 20000, libbb on relay 12, libsyscall on syscalls 8 20000),
its checks, and the verdict of a few synthetic result pairs.
"""
import os
import re
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))

from harness import cases, normalise  # noqa: E402
from harness import conformance_cases as C  # noqa: E402
from harness.phases import conformance  # noqa: E402
from harness.results import (PASS, QPD_FAIL, SKIP, UPSTREAM_FAIL, Outcome, Table,  # noqa: E402
                             failed, passed, verdict)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "conformance")
LIBS = {"bb": "tests", "insn": "tests", "mem": "tests", "hotblocks": "contrib",
        "bbv": "contrib", "lockstep": "contrib", "hwprofile": "contrib", "ips": "contrib",
        "newplugin": "contrib"}


def recorded(name):
    with open(os.path.join(DATA, name + ".txt")) as f:
        return f.read()


class CaseList(unittest.TestCase):
    def setUp(self):
        self.all = C.all_cases(LIBS)

    def test_names_unique_and_tagged(self):
        names = ["%s: %s" % (c.section, c.name) for c in self.all]
        self.assertEqual(len(names), len(set(names)))
        for c in self.all:
            self.assertIn("conformance", c.tags, c.name)
            self.assertIn(c.section, ("plugins", "programs", "threads", "selfreset",
                                      "order", "ulimit", "tasks", "boot"))

    def test_well_formed(self):
        for c in self.all:
            with self.subTest(c.name):
                normalise.normaliser(c.normaliser)          # exists
                self.assertNotIn("{dir}", c.name)
                if c.section == "boot":
                    self.assertIsNone(c.guest)
                elif not c.skip:
                    self.assertTrue(c.guest)
                    if not os.path.isabs(c.guest):
                        self.assertTrue(os.path.exists(os.path.join(
                            ROOT, "qemu", "tests", c.guest + ".c")), c.guest)
                self.assertEqual(len(c.runs), 2)
                self.assertTrue(all(callable(f) for f in c.checks))

    def test_every_library_is_a_row(self):
        libs = {c.plugin.lib for c in self.all if c.section == "plugins"}
        self.assertEqual(libs, set(LIBS))
        unknown = [c for c in self.all if c.plugin and c.plugin.lib == "newplugin"]
        self.assertEqual([(c.plugin.args, c.normaliser) for c in unknown], [("", "shape")])

    def test_system_plugins_skipped_in_user_mode(self):
        for lib in ("lockstep", "hwprofile", "ips"):
            rows = [c for c in self.all if c.section == "plugins" and c.plugin.lib == lib]
            self.assertTrue(rows and all(c.skip for c in rows), lib)

    def test_ci_set(self):
        ci = cases.select(self.all)
        sections = {c.section for c in ci}
        self.assertEqual(sections, {"plugins", "programs", "threads", "selfreset", "order",
                                    "ulimit", "tasks", "boot"})
        self.assertLessEqual(sum(c.section == "boot" for c in ci), 1)
        self.assertIn("relay %d: libbb inline=on" % C.RELAY_GENERATIONS,
                      [c.name for c in ci])
        self.assertGreater(len(cases.select(self.all, everything=True)), len(ci))

    def test_known_upstream_failures_have_reasons(self):
        fork = [c for c in self.all if c.guest == "fork-threads"]
        self.assertTrue(fork and all(c.known_upstream_failure for c in fork))


class Normalisers(unittest.TestCase):
    def test_exact_ignores_host_addresses_and_their_counts(self):
        up, up2 = recorded("hotpages.upstream"), recorded("hotpages.upstream2")
        self.assertNotEqual(up, up2)
        self.assertIsNone(normalise.compare(up, up2, "exact"))
        self.assertIsNone(normalise.compare(up, up2, "unordered"))
        self.assertIsNone(normalise.compare(up, recorded("hotpages.qpd"), "unordered"))

    def test_exact_keeps_guest_counts_and_order(self):
        up = recorded("hotpages.upstream")
        changed = up.replace("0x00000000004a8000, 0x0001, 12951", "0x00000000004a8000, 0x0001, 12952")
        self.assertIn("12951, 0x0001, 6423' (+1 more)", normalise.compare(up, changed, "exact"))
        lines = up.splitlines()
        swapped = "\n".join(lines[:3] + [lines[4], lines[3]] + lines[5:])
        self.assertIsNotNone(normalise.compare(up, swapped, "exact"))
        self.assertIsNone(normalise.compare(up, swapped, "unordered"))

    def test_exact_timing(self):
        self.assertIsNone(normalise.compare("took 1.5 s\n", "took 2.25 s\n", "exact"))
        self.assertIsNotNone(normalise.compare("took 1 s\n", "took 1 s\nextra\n", "exact"))

    def test_table_padding_and_ranked_rows(self):
        up, qpd = recorded("boot-cache.upstream"), recorded("boot-cache.qpd")
        self.assertIsNotNone(normalise.compare(up, qpd, "shape"))     # the padding
        self.assertIsNone(normalise.compare(up, qpd, "table"))
        self.assertIsNotNone(normalise.compare(up, up.replace("dmiss rate", "dmiss"), "table"))

    def test_hwprofile(self):
        up, qpd = recorded("boot-hwprofile.upstream"), recorded("boot-hwprofile.qpd")
        self.assertIsNotNone(normalise.compare(up, qpd, "table"))     # anon<pointer>
        self.assertIsNone(normalise.compare(up, qpd, "hwprofile"))
        self.assertIsNotNone(normalise.compare(up, "", "hwprofile"))


class Checks(unittest.TestCase):
    def test_bb_sums_and_max_cpu(self):
        text = recorded("relay12-bb.upstream")
        self.assertIsNone(C.bb_sums(text))
        self.assertIsNone(C.bb_max_cpu(12)(text))
        self.assertIn("highest vCPU index 12", C.bb_max_cpu(13)(text))
        self.assertIn("!= Total", C.bb_sums(text.replace("CPU5: bb's: 342", "CPU5: bb's: 343")))
        self.assertEqual(C.bb_sums("CPU0: bb's: 1, insns: 2\n"), "no Total line")

    def test_syscall_calls(self):
        text = recorded("syscalls8-syscall.upstream")
        self.assertIsNone(C.syscall_calls(110, 40000)(text))
        self.assertIn("39999", C.syscall_calls(110, 40000)(text.replace("40000", "39999", 1)))

    def test_selfreset_fields(self):
        up, qpd = recorded("selfreset.upstream"), recorded("selfreset.qpd")
        self.assertEqual(C.fields(up)["syscalls"], 20031)
        self.assertIsNone(C.field_is("counted", 5000)(up))
        self.assertIn("want 5000", C.field_is("counted", 5000)(qpd))
        case = C.SELFRESET[0]
        self.assertIsNone(conformance.same_fields(case, up, up))
        self.assertIn("resets 10 vs", conformance.same_fields(case, up, qpd))

    def test_resets_done(self):
        line = "plugin-selfreset: syscalls=160031 resets=%d blocks=9 vcpu_exits=8 " \
               "counted=40000 asked=%d\n"
        self.assertIsNone(C.resets_done(line % (8, 8)))
        self.assertIsNone(C.resets_done(line % (7, 8)), "the last one still pending")
        self.assertIn("resets=6 of asked=8", C.resets_done(line % (6, 8)))
        self.assertIn("resets=0", C.resets_done(line % (0, 1)))
        self.assertIn("resets=9", C.resets_done(line % (9, 8)))
        self.assertIn("no resets", C.resets_done("syscalls=1\n"))

    def test_judge(self):
        case = C.Conf("x", "plugins", cases.Plugin("stoptrigger", expect=("done",)),
                      "serial", rc=3, expect=("icount reached",), checks=(C.bb_sums,))
        ok = "icount reached\ndone\nTotal: bb's: 1, insns: 2\n"
        self.assertIsNone(conformance.judge(case, 3, ok))
        self.assertEqual(conformance.judge(case, None, ok), "timeout")
        self.assertTrue(conformance.judge(case, 0, ok).startswith("exit 0"))
        self.assertIn("signal 6: qemu-x86_64: plugin: cannot",
                      conformance.judge(case, 134, "x\nqemu-x86_64: plugin: cannot create\n"))
        self.assertEqual(conformance.judge(case, 3, "done\n"), 'no "icount reached"')
        self.assertEqual(conformance.judge(case, 3, "icount reached\ndone\n"), "no Total line")

    def test_clean_output_and_files(self):
        text = ("$ /c/up/build/qemu-x86_64 ...\nCould not load /c/up/build/contrib/x.so\n"
                "wrote /c/up/build/logs/run/bbv.0.bb\n")
        self.assertEqual(conformance.clean_output(text, "/c/up/build", "/c/up/build/logs/run"),
                         "Could not load <build>/contrib/x.so\nwrote <dir>/bbv.0.bb\n")
        with tempfile.TemporaryDirectory() as d:
            with open(os.path.join(d, "run.log"), "w") as f:
                f.write("log")
            with open(os.path.join(d, "cov.out"), "wb") as f:
                f.write(b"header\nBB Table: 2 bbs\n\x01\x00\x00\x00binary")
            self.assertEqual(conformance.attached_files(d),
                             "== file cov.out\nheader\nBB Table: 2 bbs")
            self.assertEqual(conformance.attached_files(d, names_only=True), "== file cov.out")


class Verdicts(unittest.TestCase):
    def test_pairs(self):
        cases_ = [
            (passed(), passed(), None, PASS),
            (passed(), failed("FAIL: signal 6"), None, QPD_FAIL),
            (passed(), passed(), "counts differ (upstream vs qpd): resets 10 vs 7", QPD_FAIL),
            (failed("FAIL: exit 1"), passed(), None, UPSTREAM_FAIL),
            (failed("FAIL: exit 1"), failed("FAIL: exit 1"), None, UPSTREAM_FAIL),
            (Outcome(False, "a system-mode plugin", absent=True),
             Outcome(False, "a system-mode plugin", absent=True), None, SKIP),
            (passed(), Outcome(False, "no libx.so", absent=True), None, QPD_FAIL),
        ]
        for up, qpd, differs, kind in cases_:
            with self.subTest(up=str(up), qpd=str(qpd), differs=differs):
                self.assertEqual(verdict(up, qpd, differs).kind, kind)

    def test_known_upstream_failure_shown(self):
        t = Table("conformance", "t")
        r = t.compare("threads: fork", failed("FAIL: exit 1"), passed(), None,
                      C.FORK_FAILURE)
        self.assertIn("known: upstream's plugins/core.c", r.verdict.text)
        self.assertIn("qpd passes", r.verdict.text)
        self.assertEqual(t.exit_status(), 0)

    def test_ulimit_bisection_bound(self):
        steps = C.ULIMIT_MAX_MIB // C.ULIMIT_STEP_MIB
        self.assertLessEqual(steps.bit_length() + 1, 13)     # runs per bisection
        self.assertTrue(re.fullmatch(r"\d+", str(C.ULIMIT_STEP_MIB)))


if __name__ == "__main__":
    unittest.main()
