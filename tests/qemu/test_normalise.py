#!/usr/bin/env python3
"""The harness's plugin-output normalisers (qemu/harness/normalise.py) on
outputs recorded from QEMU 10.0.13's tests/tcg/plugins, upstream and qpd
builds (tests/qemu/data/: "user-*" from qemu-x86_64 running
guest-threads 4 100000, "boot-*" from the boot check's 4-vCPU boot).

- Outputs that differ only in counts normalise alike, across builds.
- A missing line, a vCPU index that differs, a new line: they differ, and
  compare() names the first difference and whose output has it.
- syscall.c's statistics pad columns to the counts' widths: shape sees a
  difference between two good runs, the syscall normaliser does not,
  while it still tells the syscalls apart.
- discons (10.2, absent from 10.0: its sample is made from discons.c's
  format) reports on whichever vCPU: its normaliser drops the index.
"""
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))

from harness import cases, normalise  # noqa: E402
from harness.normalise import compare, shape  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def recorded(name, build):
    with open(os.path.join(DATA, "%s.%s.txt" % (name, build))) as f:
        return f.read()


def without(text, start):
    """TEXT without its lines starting with START."""
    return "".join(l for l in text.splitlines(True) if not l.startswith(start))


RECORDED = sorted({f.split(".")[0] for f in os.listdir(DATA) if f.endswith(".txt")})


class Recorded(unittest.TestCase):
    def test_builds_agree(self):
        for name in RECORDED:
            norm = "syscall" if "syscall" in name else "shape"
            with self.subTest(name):
                up, qpd = recorded(name, "upstream"), recorded(name, "qpd")
                self.assertIsNone(compare(up, qpd, norm))

    def test_counts_differ(self):
        self.assertNotEqual(recorded("user-bb", "upstream"), recorded("user-bb", "qpd"))

    def test_missing_line(self):
        up = recorded("user-bb", "upstream")
        diff = compare(up, without(up, "CPU3:"))
        self.assertIn("upstream", diff)
        self.assertIn("CPU<3>: bb's: N, insns: N", diff)

    def test_vcpu_index_differs(self):
        up = recorded("user-insn", "upstream")
        qpd = recorded("user-insn", "qpd").replace("cpu 4 ", "cpu 5 ")
        self.assertEqual(compare(up, qpd),
                         "only upstream's output has 'cpu <4> insns: N' (+1 more)")

    def test_new_line(self):
        up = recorded("user-reset", "upstream")
        diff = compare(up, up + "reset done\nuninstall failed\n", labels=("a", "b"))
        self.assertEqual(diff, "only b's output has 'uninstall failed'")

    def test_boot_idle_reports_per_vcpu(self):
        up = recorded("boot-bb-idle", "upstream")
        self.assertIn("Idling CPU<2>: bb's: N, insns: N", shape(up))
        self.assertIsNotNone(compare(up, without(up, "Idling CPU2")))

    def test_empty(self):
        self.assertEqual(shape(""), [])
        self.assertIsNone(compare("", ""))
        self.assertIsNotNone(compare("", "reset done\n"))


class Shape(unittest.TestCase):
    def test_numbers(self):
        self.assertEqual(shape("a 12 0x7f3a ff00 dead 0x0000000000400000, -3\n"),
                         ["a N N N dead N, -N"])

    def test_vcpu_indices_kept(self):
        self.assertEqual(shape("cpu 1: x\nCPU12: y\nDiscon on VCPU 3\nvcpu2 z\n"),
                         ["CPU<12>: y", "Discon on VCPU <3>", "cpu <1>: x", "vcpu<2> z"])

    def test_set_of_lines(self):
        self.assertEqual(shape("b 1\na 2\nb 3\n"), ["a N", "b N"])


class Syscall(unittest.TestCase):
    def test_padding_follows_counts(self):
        up, qpd = recorded("user-syscall", "upstream"), recorded("user-syscall", "qpd")
        self.assertIsNotNone(compare(up, qpd, "shape"))
        self.assertIsNone(compare(up, qpd, "syscall"))

    def test_syscalls_told_apart(self):
        up = recorded("user-syscall", "upstream")
        self.assertEqual(compare(up, without(up, "202 "), "syscall"),
                         "only upstream's output has 'syscall <202>: N calls, N errors'")

    def test_header(self):
        self.assertEqual(normalise.syscall("syscall no.  calls  errors\n"),
                         ["syscall no. calls errors"])


class Discons(unittest.TestCase):
    REPORT = ("Discon source PC mismatch on VCPU %d\nExpected:      ffffffff81e4b0a3\n"
              "Encountered:   ffffffff81e4b09e\nExecuted Last: ffffffff81e4b09e\n"
              "Event type:    interrupt\n")

    def test_vcpu_index_dropped(self):
        a, b = self.REPORT % 1, self.REPORT % 3 + self.REPORT % 0
        self.assertIsNotNone(compare(a, b, "shape"))
        self.assertIsNone(compare(a, b, "discons"))

    def test_event_type_kept(self):
        a = self.REPORT % 1
        self.assertIsNotNone(compare(a, a.replace("interrupt", "exception"), "discons"))


class Hotpages(unittest.TestCase):
    HEAD = "serial iterations=50000\nAddr, RCPUs, Reads, WCPUs, Writes\n"
    ROWS = ("0x00000000004a8000, 0x0001, 12951, 0x0001, 6423\n"
            "0x00007f8dcff40000, 0x0001, 27478, 0x0001, 26039\n"
            "0x0000000000400000, 0x0001, 144, 0x0000, 0\n")

    def test_tied_last_rows_are_counted_not_named(self):
        # 10.2.2: upstream printed 0x47a000 and qpd 0x48f000, both with
        # no writes, tied with the others at the cut.
        a = self.HEAD + self.ROWS + "0x000000000047a000, 0x0001, 10, 0x0000, 0\n"
        b = self.HEAD + "0x000000000048f000, 0x0001, 4, 0x0000, 0\n" + self.ROWS
        self.assertIsNone(normalise.compare(a, b, "hotpages-writes"))
        self.assertIsNotNone(normalise.compare(a, b, "unordered"))

    def test_ranked_rows_still_compared(self):
        a = self.HEAD + self.ROWS
        b = a.replace("12951, 0x0001, 6423", "12951, 0x0001, 6424")
        self.assertIn("6423", normalise.compare(a, b, "hotpages-writes"))
        longer = a + "0x0000000000402000, 0x0001, 7, 0x0000, 0\n"
        self.assertIn("rows tied last", normalise.compare(a, longer, "hotpages-writes"))

    def test_stack_page_counts_follow_aslr(self):
        a = self.HEAD + self.ROWS
        b = a.replace("0x00007f8dcff40000, 0x0001, 27478", "0x00007f4d1d5ff000, 0x0001, 27470")
        self.assertIsNone(normalise.compare(a, b, "hotpages-rw"))


class Lookup(unittest.TestCase):
    def test_every_declared_normaliser_exists(self):
        for label, p in cases.P.items():
            with self.subTest(label):
                self.assertTrue(callable(normalise.normaliser(p.normaliser)))

    def test_unknown(self):
        with self.assertRaises(ValueError):
            normalise.normaliser("nope")


if __name__ == "__main__":
    unittest.main()
