#!/usr/bin/env python3
"""The torture phase's judgement of one run, without QEMU.

- judge(): a sanitizer report (ASan, UBSan, a TSan report with a frame
  in the plugin core) wins over everything and names its kind and first
  frames; QEMU's own TSan reports do not fail a run; no exit is a hang; a broken
  invariant in any process (a forked child's too) is a violation; a
  plugin-churn copy with no report from the guest's main process is one
  too; a signal or non-zero exit is a crash with QEMU's message; only
  the main process's counts are summed.
- verdict(qpd_must_pass): a qpd run that does not survive fails even
  where upstream fails too; upstream's failures alone stay upstream's.
- the sanitized builds: user mode only, their own build directory,
  their own configure stamp.
- the scenarios: unique names, every plugin library has its source.
"""
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "qemu"))

from harness import builds, results, torture_cases  # noqa: E402
from harness.phases import torture  # noqa: E402
from harness.results import Outcome, verdict  # noqa: E402

SCEN = torture_cases.Scenario(
    "t", (torture_cases.churn("churn-a", "tag=a,toggle=7"),
          torture_cases.churn("churn-b", "tag=b,tb=on")), "torture", (8, "{ms}", 0))

GOOD = """$ qemu-x86_64 ...
churn[a]: pid=77 syscalls=10 toggles=1 rets=5 resets=0 uninstalled=0 blocks=0 inline=0 cond=0 mem=0 sb=2 inits=3 exits=2 violations=0
churn[b]: pid=91 syscalls=4 toggles=0 rets=0 resets=3 uninstalled=0 blocks=100 inline=100 cond=6 mem=7 sb=0 inits=1 exits=0 violations=0
torture: pid=90 threads=8 relays=3 signals=11 forks=2 syscalls=500
churn[b]: pid=90 syscalls=20 toggles=0 rets=0 resets=3 uninstalled=0 blocks=100 inline=100 cond=6 mem=7 sb=0 inits=9 exits=8 violations=0
churn[a]: pid=90 syscalls=20 toggles=2 rets=9 resets=0 uninstalled=0 blocks=0 inline=0 cond=0 mem=0 sb=4 inits=9 exits=8 violations=0
"""

ASAN = """==123==ERROR: AddressSanitizer: heap-use-after-free on address 0x6040 at pc 0x55 bp 0x7f sp 0x7f
READ of size 8 at 0x6040001041d8 thread T10
    #0 0x55d6e10455dd in qemu_plugin_vcpu_syscall_ret ../plugins/core.c:521
    #1 0x55d6e134e662 in record_syscall_return ../include/user/syscall-trace.h:38
    #2 0x55d6e134e662 in do_syscall ../linux-user/syscall.c:14360
    #3 0x55d6e104ede6 in cpu_loop ../linux-user/x86_64/../i386/cpu_loop.c:245

freed by thread T6 here:
    #0 0x7f7a3a8b76a8 in __interceptor_free asan_malloc_linux.cpp:52
"""

TSAN = """==================
WARNING: ThreadSanitizer: data race (pid=4242)
  Write of size 8 at 0x7b0400000010 by thread T3:
    #0 qpd_thing ../subprojects/qpd/src/core/plugin.c:10 (qemu-x86_64+0x1)
    #1 plugin_cb ../plugins/core.c:20 (qemu-x86_64+0x2)

  Previous read of size 8 at 0x7b0400000010 by thread T1:
    #0 other ../x.c:1 (qemu-x86_64+0x3)
"""


class Judge(unittest.TestCase):
    def test_survived_counts_main_process_only(self):
        ending, detail, counts = torture.judge(SCEN, 0, GOOD)
        self.assertEqual((ending, detail), ("survived", ""))
        self.assertEqual(counts["syscalls"], 40)        # pid 90's lines only
        self.assertEqual(counts["toggles"], 2)
        self.assertEqual(counts["forks"], 2)
        self.assertEqual(counts["blocks"], 100)

    def test_violation_in_a_child_counts(self):
        text = GOOD.replace("pid=77 syscalls=10 toggles=1 rets=5 resets=0 uninstalled=0 "
                            "blocks=0 inline=0 cond=0 mem=0 sb=2 inits=3 exits=2 violations=0",
                            "pid=77 syscalls=10 violations=2 first=memory callback after "
                            "the uninstall callback")
        ending, detail, _ = torture.judge(SCEN, 0, text)
        self.assertEqual(ending, "violation")
        self.assertIn("churn[a] pid 77", detail)
        self.assertIn("after the uninstall", detail)

    def test_missing_report_is_a_violation(self):
        text = "\n".join(l for l in GOOD.splitlines() if not l.startswith("churn[b]: pid=90"))
        ending, detail, _ = torture.judge(SCEN, 0, text)
        self.assertEqual((ending, detail), ("violation", "no report from churn[b]"))

    def test_asan_report_wins_and_names_frames(self):
        ending, detail, _ = torture.judge(SCEN, 0, GOOD + ASAN)
        self.assertEqual(ending, "asan")
        self.assertEqual(detail, "heap-use-after-free in qemu_plugin_vcpu_syscall_ret "
                         "< record_syscall_return < do_syscall")

    def test_ubsan_report(self):
        text = GOOD + "../plugins/core.c:40:11: runtime error: applying non-zero offset 8 " \
                      "to null pointer\n"
        ending, detail, _ = torture.judge(SCEN, 0, text)
        self.assertEqual(ending, "ubsan")
        self.assertTrue(detail.startswith("core.c:40:11: applying non-zero offset"))

    def test_tsan_report_in_the_plugin_core(self):
        ending, detail, _ = torture.judge(SCEN, 0, GOOD + TSAN)
        self.assertEqual(ending, "tsan")
        self.assertEqual(detail, "data race: qpd_thing < plugin_cb || other")

    def test_tsan_report_of_qemu_alone_is_listed_not_failed(self):
        qemu_only = TSAN.replace("../subprojects/qpd/src/core/plugin.c",
                                 "../util/interval-tree.c").replace(
                                 "../plugins/core.c", "../accel/tcg/cpu-exec.c")
        self.assertEqual(torture.judge(SCEN, 0, GOOD + qemu_only)[0], "survived")
        self.assertEqual(torture.tsan_reports(qemu_only),
                         [(False, "data race: qpd_thing < plugin_cb || other")])

    def test_hang(self):
        self.assertEqual(torture.judge(SCEN, None, GOOD)[0], "hung")

    def test_crash_names_qemus_message(self):
        text = "qemu-x86_64: QEMU internal SIGSEGV {code=MAPERR, addr=0x8}\n"
        ending, detail, _ = torture.judge(SCEN, 139, text)
        self.assertEqual(ending, "crashed")
        self.assertEqual(detail, "signal 11: qemu-x86_64: QEMU internal SIGSEGV "
                         "{code=MAPERR, addr=0x8}")

    def test_assertion_exit_is_a_crash(self):
        text = "**\nERROR:../plugins/core.c:265:qemu_plugin_vcpu_init__async: " \
               "assertion failed: (success)\n"
        ending, detail, _ = torture.judge(SCEN, 1, text)
        self.assertEqual(ending, "crashed")
        self.assertIn("assertion failed", detail)

    def test_guest_failure(self):
        ending, detail, _ = torture.judge(SCEN, 1, "child 12: status 0x100\n")
        self.assertEqual((ending, detail), ("guest failed", "child 12: status 0x100"))

    def test_torture_guest_must_report(self):
        text = "\n".join(l for l in GOOD.splitlines() if not l.startswith("torture:"))
        text = text.replace("pid=90", "pid=91")
        self.assertEqual(torture.judge(SCEN, 0, text)[0], "guest failed")


    def test_tsan_report_against_an_exclusive_section_is_qemus(self):
        excl = TSAN.replace("    #1 plugin_cb ../plugins/core.c:20 (qemu-x86_64+0x2)",
                            "    #1 plugin_cb ../plugins/core.c:20 (qemu-x86_64+0x2)\n"
                            "    #2 process_queued_cpu_work ../cpu-common.c:370 (x+0x3)")
        self.assertEqual(torture.judge(SCEN, 0, GOOD + excl)[0], "survived")
        self.assertFalse(torture.tsan_reports(excl)[0][0])


    def test_tsan_report_on_data_published_with_a_block_is_qemus(self):
        rep = """WARNING: ThreadSanitizer: data race (pid=1)
  Read of size 8 at 0x1 by thread T30:
    #0 memcpy string_fortified.h:29:10 (x+0x1)
    #1 qemu_plugin_vcpu_mem_cb ../plugins/core.c:550:5 (x+0x1)
    #2 cpu_loop_exec_tb ../accel/tcg/cpu-exec.c:902:10 (x+0x1)

  Previous write of size 8 at 0x1 by thread T2:
    #0 memcpy string_fortified.h:29:10 (x+0x1)
    #1 qemu_plugin_add_dyn_cb_arr ../plugins/core.c:519:5 (x+0x1)
    #2 tb_gen_code ../accel/tcg/translate-all.c:361:21 (x+0x1)
    #3 cpu_exec_loop ../accel/tcg/cpu-exec.c:987:22 (x+0x1)
    #4 cpu_loop_exec_tb ../accel/tcg/cpu-exec.c:902:10 (x+0x1)
"""
        self.assertFalse(torture.tsan_reports(rep)[0][0])
        # the same data read while translating is not covered
        self.assertTrue(torture.tsan_reports(rep.replace(
            "#2 cpu_loop_exec_tb ../accel/tcg/cpu-exec.c:902:10 (x+0x1)\n\n",
            "#2 tb_gen_code ../accel/tcg/translate-all.c:1 (x+0x1)\n\n"))[0][0])


class MustPass(unittest.TestCase):
    def test_qpd_fails_even_where_upstream_fails(self):
        v = verdict(Outcome(False, "crashed 1/3"), Outcome(False, "hung 1/3"),
                    qpd_must_pass=True)
        self.assertEqual(v.kind, results.QPD_FAIL)
        self.assertIn("upstream fails too", v.text)

    def test_upstream_failure_alone_is_upstreams(self):
        v = verdict(Outcome(False, "crashed 2/3"), Outcome(True, "survived 3/3"),
                    known_upstream_failure="x", qpd_must_pass=True)
        self.assertEqual(v.kind, results.UPSTREAM_FAIL)

    def test_without_must_pass_the_old_rule_holds(self):
        v = verdict(Outcome(False, "crashed"), Outcome(False, "crashed"))
        self.assertEqual(v.kind, results.UPSTREAM_FAIL)

    def test_tally(self):
        t = torture.Tally()
        t.add("survived", "", {"syscalls": 3}, "/l/s/qpd-0.log")
        t.add("hung", "", {}, "/l/s/qpd-1.log")
        o = t.outcome()
        self.assertFalse(o.ok)
        self.assertIn("hung 1/2", o.text)
        self.assertIn("s/qpd-1.log", o.text)
        t2 = torture.Tally()
        t2.add("survived", "", {}, "x")
        self.assertEqual(str(t2.outcome()), "survived 1/1")


class SanitizedBuilds(unittest.TestCase):
    def test_flags(self):
        plain = builds.configure_flags("none")
        self.assertEqual(plain, builds.CONFIGURE_FLAGS)
        asan = builds.configure_flags("asan")
        self.assertIn("--enable-asan", asan)
        self.assertIn("--enable-ubsan", asan)
        tl = [f for f in asan if f.startswith("--target-list=")]
        self.assertEqual(len(tl), 1)
        self.assertNotIn("softmmu", tl[0])
        self.assertIn("--enable-tsan", builds.configure_flags("tsan"))

    def test_dirs_and_stamps_differ(self):
        b = builds.Build("qpd", "/t", sanitize="asan")
        self.assertEqual(b.dir, "/t/build-asan")
        self.assertEqual(builds.Build("qpd", "/t").dir, "/t/build")
        self.assertNotEqual(builds.build_stamp("/t", "asan"), builds.build_stamp("/t"))
        self.assertIn("ASAN_OPTIONS", b.env())
        self.assertIn("detect_leaks=0", b.env()["ASAN_OPTIONS"])


class Scenarios(unittest.TestCase):
    def test_names_unique_and_sources_known(self):
        names = [s.name for s in torture_cases.SCENARIOS]
        self.assertEqual(len(names), len(set(names)))
        for s in torture_cases.SCENARIOS:
            for p in s.plugins:
                self.assertIn(p.lib, torture_cases.SOURCES)
                self.assertTrue(os.path.exists(os.path.join(
                    ROOT, "qemu", "tests", torture_cases.SOURCES[p.lib] + ".c")))
            self.assertTrue(os.path.exists(os.path.join(ROOT, "qemu", "tests",
                                                        s.guest + ".c")))
            if s.upstream_failure:
                self.assertTrue(s.reproducer, s.name)

    def test_ci_set_covers_every_kind_of_churn(self):
        ci = " ".join(p.args for s in torture_cases.SCENARIOS if "ci" in s.tags
                      for p in s.plugins)
        for word in ("toggle=", "reset=", "uninstall=", "sb=", "tb=on", "every="):
            self.assertIn(word, ci)

    def test_argv_fills_time_and_calls(self):
        for s in torture_cases.SCENARIOS:
            argv = " ".join(s.argv(1234, 77))
            self.assertNotIn("{", argv)
        self.assertIn("77", torture_cases.SCENARIOS[0].argv(1, 77))
        self.assertIn("20000", torture_cases.SCENARIOS[0].argv(1))


if __name__ == "__main__":
    unittest.main()
