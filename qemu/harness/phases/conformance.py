"""conformance: the same plugin on upstream and on qpd, row by row.

Each row of conformance_cases (its docstring says what the sections are)
runs one command on the upstream and on the qpd build of one QEMU source
(the two at once, one per core); each build's run passes when it ends
with the row's exit status, prints its expected strings and passes its
checks (counts that must be internally consistent). Then
results.verdict judges the pair: qpd fails where upstream passes and qpd
does not, or where both pass and their outputs differ once normalised
(normalise.py: "exact" for the deterministic single-thread guest, where
only host addresses and timing may differ) or a deterministic count
(Conf.same) differs. Upstream's own failures are listed as upstream's.

Rows:
  plugins    every plugin library either build has (tests/tcg/plugins,
             contrib/plugins) with its documented options, on
             qemu/tests/serial.c
  programs   /usr/bin/python3 -c 'import json, decimal' and gcc's cc1
             compiling a small file, under hotblocks, howvec and bbv
  threads    guest-threads at 4-64 threads, fork-threads, syscalls under
             libsyscall (its count of getppid is the guest's), and
             qemu/tests/relay.c (5000 generations of threads, at most a
             few alive at once: vCPU indices climb to 5000)
  selfreset  qemu/tests/plugin-selfreset.c resetting itself every N
             system calls; its counts must be upstream's
  order      several plugins loaded at once: their ATEXIT output (most
             recently registered first) in upstream's order
  ulimit     the smallest RLIMIT_AS (1 MiB steps, by bisection, one malloc
             arena) at which upstream runs a guest under libbb; qpd must
             run there too
  tasks      the most host threads a run has at once (/proc/PID/task,
             polled): qpd's no more than upstream's
  boot       the boot phase's Linux boot (-smp 4) under contrib plugins

Options: --only REGEX (rows whose name matches). --full (the harness's)
runs every row; CI runs the "ci" ones. Logs in LOGDIR/conformance.
"""
import argparse
import difflib
import os
import re
import resource
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from .. import cases, guests, normalise
from .. import conformance_cases as C
from ..results import Outcome, Table, failed, passed
from ..util import HarnessError, Run, log, slug
from . import boot

BUILDS = ("upstream", "qpd")


def _log(msg):
    log(msg, "conformance")


def plugin_libs(build):
    """{lib: "tests"|"contrib"} of the plugin libraries in BUILD's dir."""
    out = {}
    for where, sub in (("tests", "tests/tcg/plugins"), ("contrib", "contrib/plugins")):
        d = os.path.join(build.dir, sub)
        for f in os.listdir(d) if os.path.isdir(d) else ():
            if f.startswith("lib") and f.endswith(".so"):
                out.setdefault(f[3:-3], where)
    return out


def attached_files(d, skip=("run.log",), names_only=False):
    """The text of the files a run wrote in its directory D (names sorted,
    each after a "== file NAME" line; only these lines with NAMES_ONLY); a
    file's text stops at its first NUL byte."""
    out = []
    for root, _, files in sorted(os.walk(d)):
        for f in sorted(files):
            path = os.path.join(root, f)
            rel = os.path.relpath(path, d)
            if rel in skip or f.endswith(".sock"):
                continue
            if names_only:
                out.append("== file %s" % rel)
                continue
            with open(path, "rb") as fh:
                data = fh.read(4 << 20)
            if b"\0" in data:
                data = data.split(b"\0", 1)[0].rpartition(b"\n")[0]
            out.append("== file %s\n%s" % (rel, data.decode(errors="replace")))
    return "\n".join(out)


def clean_output(text, build_dir, run_dir):
    """A run's log as the suite compares it: without its "$ command" line,
    its build and run directories named alike on both builds."""
    lines = text.splitlines(True)
    if lines and lines[0].startswith("$ "):
        lines = lines[1:]
    names = {run_dir: "<dir>", build_dir: "<build>"}
    alt = "|".join(re.escape(k) for k in sorted(names, key=len, reverse=True))
    return re.sub(alt, lambda m: names[m.group(0)], "".join(lines))


def judge(case, rc, text):
    """None when a run of CASE that ended with RC (None: timeout) and
    printed TEXT passes, else why not."""
    if rc is None:
        return "timeout"
    if rc != case.rc:
        why = "signal %d" % (rc - 128) if rc > 128 else "exit %d" % rc
        return why + _first_error(text)
    for e in case.expect + (case.plugin.expect if case.plugin else ()):
        if e not in text:
            return 'no "%s"' % e
    for check in case.checks:
        why = check(text)
        if why:
            return why
    return None


_ERROR = re.compile(r"^.*(?:qemu-(?:x86_64|system-x86_64): |assert|error|fatal|abort|"
                    r"segmentation fault|Bail out).*$", re.M | re.I)


def _first_error(text):
    """": MESSAGE" of the first line that reads like QEMU's or a plugin's
    error, or ""."""
    m = _ERROR.search(text)
    return ": " + m.group(0).strip()[:160] if m else ""


def same_fields(case, up_text, qpd_text):
    """How the Conf.same fields differ between the two outputs, or None."""
    up, qpd = C.fields(up_text), C.fields(qpd_text)
    diff = ["%s %s vs %s" % (k, up.get(k), qpd.get(k)) for k in case.same
            if up.get(k) != qpd.get(k)]
    return "counts differ (upstream vs qpd): " + ", ".join(diff) if diff else None


class Suite:
    def __init__(self, ctx):
        self.ctx = ctx
        self.dir = ctx.phase_dir("conformance")
        self.bin = os.path.join(self.dir, "bin")
        self.src = os.path.join(self.dir, "src")
        os.makedirs(self.src, exist_ok=True)
        with open(os.path.join(self.src, "hello.c"), "w") as f:
            f.write(C.HELLO_C)
        self.libs = {b: plugin_libs(ctx.builds[b]) for b in BUILDS}
        self.table = Table("conformance", "conformance: QEMU %s, upstream vs qpd, %s" % (
            ctx.version, "every row (--full)" if ctx.full else "CI's rows"), notes=[
                "upstream: " + ctx.upstream.dir, "qpd: " + ctx.qpd.dir,
                "logs in " + self.dir])
        self._guests = {}
        self._ours = False

    def cases(self):
        libs = dict(self.libs["qpd"])
        libs.update(self.libs["upstream"])
        return C.all_cases(libs)

    def guest(self, name):
        """The path of guest NAME: a host program as it is, else qemu/tests/NAME.c."""
        if os.path.isabs(name):
            return name
        if name not in self._guests:
            self._guests[name] = guests.guest(name, self.bin)
        return self._guests[name]

    def ours(self):
        """Our plugins, built once per build."""
        if not self._ours:
            for b in self.ctx.builds.values():
                guests.plugin("plugin-selfreset", b, self.bin)
            self._ours = True

    def run_dir(self, case, build):
        d = os.path.join(self.dir, slug(case.section + "-" + case.name), build.name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    # ----------------------------------------------------- user-mode rows
    def command(self, case, build, d):
        """BUILD's qemu-x86_64 command line of CASE, run in directory D."""
        fill = lambda s: s.replace("{dir}", d).replace("{src}", self.src)
        plugin = case.plugin and replace(case.plugin, args=fill(case.plugin.args))
        argv = build.user_command(plugin, self.guest(case.guest),
                                  [fill(a) for a in case.args], True, self.bin)
        # Further plugins go right after the first one's -plugin LIB,ARGS.
        at = argv.index("-plugin") + 2 if case.more else 0
        for p in reversed(case.more):
            argv[at:at] = ["-plugin", build.plugin_arg(replace(p, args=fill(p.args)), self.bin)]
        return argv

    def run_user(self, case, build, limit_as=None, threads=None):
        """One run of CASE on BUILD: (Outcome, the output compared); the
        most host threads it had at once is appended to THREADS if given."""
        for p in ((case.plugin,) if case.plugin else ()) + case.more:
            if not build.has(p, self.bin):
                return Outcome(False, "no " + p.so, absent=True), ""
        d = self.run_dir(case, build)
        argv = self.command(case, build, d)
        r = run_limited(argv, os.path.join(d, "run.log"), case.timeout, d,
                        dict(build.env(), **dict(case.env)), limit_as, threads)
        text = clean_output(r.output(), build.dir, d)
        files = attached_files(d, names_only=case.files == "names")
        if files:
            text += "\n" + clean_output(files, build.dir, d)
        why = judge(case, r.rc, text)
        secs = "%.1f s" % r.seconds
        return (passed("pass, " + secs) if why is None
                else failed("FAIL: %s (%s)" % (why[:140], secs))), text

    def both(self, fn, *args):
        """FN(build, *ARGS) on both builds at once: {name: result}."""
        with ThreadPoolExecutor(2) as ex:
            futs = {b: ex.submit(fn, self.ctx.builds[b], *args) for b in BUILDS}
            return {b: f.result() for b, f in futs.items()}

    def runs(self, case, build):
        """CASE run Conf.runs times on BUILD: (Outcome, [each run's output])."""
        n = case.runs[int(self.ctx.full)]
        outs, texts = [], []
        for _ in range(n):
            o, t = self.run_user(case, build)
            outs.append(o)
            texts.append(t)
            if o.absent:
                return o, texts
        bad = [o for o in outs if not o.ok]
        if bad:     # the first failing run's output first: its fields are shown
            i = outs.index(bad[0])
            texts = [texts[i]] + texts[:i] + texts[i + 1:]
        if n == 1 or not bad:
            o = outs[0] if n == 1 else passed("pass (%d/%d)" % (n, n))
        else:
            o = failed("FAIL (%d/%d passed; first: %s)" % (n - len(bad), n, bad[0].text[6:]))
        return o, texts

    def user_row(self, case):
        if case.section == "selfreset":
            self.ours()
        self.guest(case.guest)      # compiled once, before both builds run it
        res = self.both(lambda b: self.runs(case, b))
        (up, up_texts), (qpd, qpd_texts) = res["upstream"], res["qpd"]
        differs = None
        if up.ok and qpd.ok:
            for qpd_text in qpd_texts:
                differs = (same_fields(case, up_texts[0], qpd_text)
                           or normalise.compare(up_texts[0], qpd_text, case.normaliser))
                if differs:
                    self.write_diff(case, up_texts[0], qpd_text)
                    break
        extra = {}
        if case.same:
            # The fields of upstream's first run and of qpd's first failing
            # run, or first run that differs, or first run, shown in the cells.
            qpd_text = qpd_texts[0] if qpd_texts else ""
            if qpd.ok:
                qpd_text = next((t for t in qpd_texts if any(
                    C.fields(t).get(k) != C.fields(up_texts[0]).get(k) for k in case.same)),
                    qpd_text)
            for name, o, t in (("upstream", up, up_texts[0] if up_texts else ""),
                               ("qpd", qpd, qpd_text)):
                f = {k: C.fields(t).get(k) for k in case.same}
                extra[name + "_fields"] = f
                if any(v is not None for v in f.values()):
                    o.text += "; " + " ".join("%s=%s" % kv for kv in f.items())
        return up, qpd, differs, extra

    def write_diff(self, case, a, b):
        norm = normalise.normaliser(case.normaliser)
        path = os.path.join(self.dir, slug(case.section + "-" + case.name), "output.diff")
        with open(path, "w") as f:
            f.writelines(l + "\n" for l in difflib.unified_diff(
                norm(a), norm(b), "upstream", "qpd", lineterm=""))

    # --------------------------------------------------------- ulimit -v
    def ulimit_row(self, case):
        """Bisect upstream's smallest RLIMIT_AS (multiples of the step),
        then run qpd at exactly that value."""
        step = C.ULIMIT_STEP_MIB
        up_build, qpd_build = self.ctx.upstream, self.ctx.qpd
        ok = lambda b, mib: self.run_user(case, b, mib << 20)[0]
        top = ok(up_build, C.ULIMIT_MAX_MIB)
        if not top.ok:
            return (failed("FAIL at %d MiB: %s" % (C.ULIMIT_MAX_MIB, top.text)),
                    Outcome(True, "not run"), None, {})
        lo, hi, runs = 0, C.ULIMIT_MAX_MIB // step, 1     # lo fails (0), hi passes
        while hi - lo > 1:
            mid = (lo + hi) // 2
            runs += 1
            if ok(up_build, mid * step).ok:
                hi = mid
            else:
                lo = mid
        found = hi * step
        up = passed("runs at %d MiB, not %d (%d runs)" % (found, found - step, runs))
        q = ok(qpd_build, found)
        if q.ok:
            qpd = passed("runs at %d MiB" % found)
        else:
            qmin = self.smallest(qpd_build, case, step, C.ULIMIT_MAX_MIB)
            qpd = failed("FAIL at %d MiB: %s; %s" % (found, q.text[6:],
                         "runs from %d MiB" % qmin if qmin else "not even at %d MiB"
                         % C.ULIMIT_MAX_MIB))
        _log("ulimit: upstream's smallest RLIMIT_AS %d MiB" % found)
        return up, qpd, None, {"rlimit_as_mib": found}

    # ------------------------------------------------------ host threads
    def tasks_row(self, case):
        """The most host threads CASE's runs have at once, on each build;
        qpd's must be no more than upstream's."""
        n = case.runs[int(self.ctx.full)]

        def most(build):
            seen = []
            for _ in range(n):
                o, _ = self.run_user(case, build, threads=seen)
                if not o.ok:
                    return o, None
            return o, max(seen)

        res = self.both(most)
        (up, n_up), (qpd, n_qpd) = res["upstream"], res["qpd"]
        if n_up is not None:
            up = passed("%d host threads at most (%d runs)" % (n_up, n))
        if n_qpd is not None:
            qpd = (passed if n_up is None or n_qpd <= n_up else failed)(
                "%d host threads at most (%d runs)" % (n_qpd, n))
        return up, qpd, None, {"threads": {"upstream": n_up, "qpd": n_qpd}}

    def smallest(self, build, case, step, top):
        """BUILD's own smallest RLIMIT_AS in MiB, or None (beyond TOP)."""
        if not self.run_user(case, build, top << 20)[0].ok:
            return None
        lo, hi = 0, top // step
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.run_user(case, build, mid * step << 20)[0].ok:
                hi = mid
            else:
                lo = mid
        return hi * step

    # -------------------------------------------------------------- boot
    def boot_row(self, case):
        for b in self.ctx.builds.values():
            b.check("system")
        image = boot.prepare(self.ctx)
        d = os.path.join(self.dir, slug(case.section + "-" + case.name))
        timeout = int(os.environ.get("QPD_BOOT_TIMEOUT", case.timeout))
        iters = int(os.environ.get("QPD_BOOT_ITERS", "1000000"))

        def one(build):
            bd = os.path.join(d, build.name)
            shutil.rmtree(bd, ignore_errors=True)
            os.makedirs(bd)
            plg = replace(case.plugin, args=case.plugin.args.replace("{dir}", bd))
            bcase = cases.Case(case.name, plg, mode="system")
            o, work, out = boot._boot(build, bcase, image, bd, timeout, iters)
            files = attached_files(bd, skip=("serial.log", "plugin.log", "qemu.log"))
            if files:
                out += "\n" + clean_output(files, build.dir, bd)
            return o, work, out

        res = self.both(one)
        (up, up_work, up_out), (qpd, qpd_work, qpd_out) = res["upstream"], res["qpd"]
        differs = None
        if up.ok and qpd.ok:
            differs = boot._differs(case, d, (up_work, qpd_work), (up_out, qpd_out))
        return up, qpd, differs, {}

    # --------------------------------------------------------------- all
    def row(self, case):
        t0 = time.monotonic()
        if case.skip:
            up = qpd = Outcome(False, case.skip, absent=True)
            differs, extra = None, {}
        elif case.section == "ulimit":
            up, qpd, differs, extra = self.ulimit_row(case)
        elif case.section == "tasks":
            up, qpd, differs, extra = self.tasks_row(case)
        elif case.section == "boot":
            up, qpd, differs, extra = self.boot_row(case)
        else:
            up, qpd, differs, extra = self.user_row(case)
        r = self.table.compare("%s: %s" % (case.section, case.name), up, qpd, differs,
                               case.known_upstream_failure, seconds=round(
                                   time.monotonic() - t0, 1), **extra)
        _log("%s: upstream: %s; qpd: %s -> %s" % (r.case, r.cells["upstream"],
                                                r.cells["qpd"], r.verdict))


def wait_counting(p, timeout, seen):
    """p.wait(TIMEOUT), polling /proc/PID/task every 2 ms meanwhile: the
    most threads P had at once is appended to SEEN."""
    end, most = time.monotonic() + timeout, 0
    while True:
        try:
            most = max(most, len(os.listdir("/proc/%d/task" % p.pid)))
        except OSError:
            pass
        try:
            rc = p.wait(0.002)
            break
        except subprocess.TimeoutExpired:
            if time.monotonic() > end:
                raise
    seen.append(most)
    return rc


def run_limited(argv, out, timeout, cwd, env, limit_as=None, threads=None):
    """util.run's contract (a Run; output to OUT, TIMEOUT seconds), with
    RLIMIT_AS set to LIMIT_AS bytes in the child when given, and the most
    host threads it had at once appended to THREADS when given."""
    argv = [str(a) for a in argv]
    t0 = time.monotonic()

    def limit():
        if limit_as is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    with open(out, "w") as f:
        f.write("$ %s%s\n" % (" ".join(argv), "  (RLIMIT_AS %d MiB)" % (limit_as >> 20)
                              if limit_as else ""))
        f.flush()
        p = subprocess.Popen(argv, stdout=f, stderr=f, stdin=subprocess.DEVNULL, cwd=cwd,
                             env=env, start_new_session=True, preexec_fn=limit)
        try:
            rc = (p.wait(timeout) if threads is None
                  else wait_counting(p, timeout, threads))
        except subprocess.TimeoutExpired:
            for sig in (15, 9):
                try:
                    os.killpg(p.pid, sig)
                    p.wait(10)
                    break
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    continue
            rc = None
    if rc is not None and rc < 0:
        rc = 128 - rc
    return Run(argv, rc, time.monotonic() - t0, out)


def run(ctx, argv):
    """The selected rows on ctx's two builds; returns their table."""
    ap = argparse.ArgumentParser(prog="conformance")
    ap.add_argument("--only", help="run only the rows whose name matches this regex")
    args = ap.parse_args(argv)
    for b in ctx.builds.values():
        b.check()
    suite = Suite(ctx)
    selected = [c for c in cases.select(suite.cases(), ctx.full)
                if not args.only or re.search(args.only, "%s: %s" % (c.section, c.name))]
    if not selected:
        raise HarnessError("conformance: no row selected")
    t0 = time.monotonic()
    for case in selected:
        suite.row(case)
    suite.table.notes.append("%d rows in %.0f s" % (len(selected), time.monotonic() - t0))
    return suite.table
