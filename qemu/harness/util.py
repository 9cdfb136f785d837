"""Small things every module of the harness uses: logging, the one
exception that means "the harness could not run" (exit 2), running a
command with a time limit, and the few words a failed run is summed up in.
"""
import os
import re
import select
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass

# Exit status of every entry point: 0 pass, 1 a qpd failure or regression,
# 2 the harness could not run (no package, no source, no build, bad usage).
EXIT_PASS, EXIT_FAIL, EXIT_INFRA = 0, 1, 2


class HarnessError(Exception):
    """The harness itself cannot go on: exit status 2, never a qpd failure."""


def log(msg, who="qemu"):
    """Progress on stderr, time-stamped."""
    print("[%s %s] %s" % (who, time.strftime("%H:%M:%S"), msg),
          file=sys.stderr, flush=True)


def fmt_secs(s):
    """754 -> "12m34s", so phase times read at a glance."""
    s = int(round(s))
    return "%dm%02ds" % divmod(s, 60) if s >= 60 else "%ds" % s


def as_root(argv):
    """ARGV prefixed with sudo unless we are root (CI runs as root)."""
    return list(argv) if os.geteuid() == 0 else ["sudo"] + list(argv)


@dataclass
class Run:
    """How one command ended: exit status (128+S for signal S, None when
    it timed out), seconds, and the file its output went to."""
    argv: list
    rc: object
    seconds: float
    out: str = ""

    @property
    def timed_out(self):
        return self.rc is None

    def output(self):
        try:
            with open(self.out, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def ended(self):
        """How the run ended, in a word or two: "timeout", "signal 6", "exit 1"."""
        if self.rc is None:
            return "timeout"
        if self.rc > 128:
            return "signal %d" % (self.rc - 128)
        return "exit %d" % self.rc

    def why(self):
        """The end and QEMU's first assertion or error message, if any."""
        text = self.output()
        m = (re.search(r"^.*(?:assert|error|already online|fatal).*$", text, re.M | re.I)
             or re.search(r"^.*(?:abort|segmentation fault|killed by signal).*$",
                          text, re.M | re.I))
        msg = m.group(0).strip() if m else ""
        if msg.startswith("Bail out! "):
            msg = msg[len("Bail out! "):]
        return self.ended() + (": " + msg[:160] if msg else "")


def run(argv, out, timeout, env=None, cwd=None, stdin=subprocess.DEVNULL, stdout=None,
        reap_group=False):
    """Run ARGV with stdout (unless STDOUT says where) and stderr to the
    file OUT, at most TIMEOUT seconds (then SIGTERM to its process group,
    SIGKILL 10 s later). REAP_GROUP: once ARGV has ended, SIGKILL whatever
    is left in its process group (a forked child its crash left behind)."""
    argv = [str(a) for a in argv]
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    t0 = time.monotonic()
    with open(out, "w") as f:
        f.write("$ %s\n" % shlex.join(argv))
        f.flush()
        p = subprocess.Popen(argv, stdout=f if stdout is None else stdout, stderr=f, stdin=stdin,
                             env=env, cwd=cwd, start_new_session=True)
        try:
            rc = _wait(p, timeout)
        except subprocess.TimeoutExpired:
            _kill_group(p)
            rc = None
        if reap_group:
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:
                pass
    if rc is not None and rc < 0:
        rc = 128 - rc
    return Run(argv, rc, time.monotonic() - t0, out)


def _wait(p, timeout):
    """P's exit status once it ends, at most TIMEOUT seconds: a pidfd wakes
    us when it does (Popen.wait with a timeout polls every 50 ms, which
    hundreds of short runs notice)."""
    fd = os.pidfd_open(p.pid)
    try:
        poll = select.poll()
        poll.register(fd, select.POLLIN)
        if not poll.poll(timeout * 1000):
            raise subprocess.TimeoutExpired(p.args, timeout)
    finally:
        os.close(fd)
    return p.wait()


def _kill_group(p):
    for sig, wait in ((15, 10), (9, None)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            break
        try:
            p.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue


def capture(argv, check=True, **kw):
    """Stdout of ARGV; a failure is a HarnessError with its output's tail."""
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise HarnessError("%s failed (exit %d): %s" % (
            shlex.join(map(str, argv)), p.returncode, (p.stderr or p.stdout)[-800:]))
    return p.stdout


def slug(text):
    """A file-name-safe form of a label."""
    return re.sub(r"[^A-Za-z0-9=.-]+", "_", text).strip("_")
