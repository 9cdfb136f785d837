"""How often one QEMU run flushes its translated code, counted with gdb.

QEMU runs under gdb with a breakpoint whose commands count and continue;
after the run, gdb prints the count and QEMU's exit status. QEMU itself is
not changed.

Where a flush is counted: QEMU 10.0 flushes in the static do_tb_flush(),
called directly (serial or exclusive context) or queued, so its address.
QEMU 10.2 split it: tb_flush__exclusive_or_serial() flushes and
do_tb_flush() only wraps the queued case, so count the former, at every
location of it (do_tb_flush may have inlined it).

gdb now and then loses the race with the exiting process ("Couldn't get
registers: No such process") and stops its script before the summary;
such a run is repeated, up to ATTEMPTS times in all.

  flushes, run = count(argv, log_path, timeout)

FLUSHES is the count (None when unknown); RUN (util.Run) is how QEMU
ended: its exit status (128+S for signal S, None on a timeout, 3 when gdb
could not tell) and the log of the last attempt.
"""
import functools
import os
import re
import subprocess
import time

from .util import HarnessError, Run, log, run

ATTEMPTS = 3
UNKNOWN_EXIT = 3        # Run.rc when gdb could not tell how QEMU ended

_SCRIPT = r"""set pagination off
set confirm off
set print thread-events off
set print inferior-events off
set disable-randomization off
handle all nostop noprint pass
set $qpd_flushes = 0
break %s
commands
silent
set $qpd_flushes = $qpd_flushes + 1
continue
end
run
printf "qpd-flushes: %%d\n", $qpd_flushes
if $_isvoid($_exitcode)
  if $_isvoid($_exitsignal)
    printf "qpd-exit: unknown\n"
  else
    printf "qpd-exit: signal %%d\n", $_exitsignal
  end
else
  printf "qpd-exit: %%d\n", $_exitcode
end
"""


def script(location):
    """The gdb script that counts the flushes at LOCATION and prints the summary."""
    return _SCRIPT % location


def location_from(info):
    """The breakpoint location given gdb's "info address" output for both
    flush functions, or None when neither is there (a stripped QEMU)."""
    if re.search(r'"tb_flush__exclusive_or_serial" is a function at address', info):
        return "tb_flush__exclusive_or_serial"
    if re.search(r'"do_tb_flush" is a function at address', info):
        return "*do_tb_flush"
    return None


@functools.lru_cache(maxsize=None)
def location(qemu):
    """Where to count the flushes of the QEMU binary QEMU."""
    p = subprocess.run(["gdb", "-batch", "-nx",
                        "-ex", "info address tb_flush__exclusive_or_serial",
                        "-ex", "info address do_tb_flush", qemu],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    loc = location_from(p.stdout + p.stderr)
    if loc is None:
        raise HarnessError("no flush function in %s (stripped?)" % qemu)
    return loc


def parse(text):
    """(flushes, exit status) from gdb's output: each None when its line is
    missing; the status is 128+S for signal S and UNKNOWN_EXIT for "unknown"."""
    f = re.findall(r"^qpd-flushes: (\d+)$", text, re.M)
    e = re.findall(r"^qpd-exit: (.*)$", text, re.M)
    flushes = int(f[-1]) if f else None
    if not e:
        return flushes, None
    m = re.fullmatch(r"(signal )?(\d+)", e[-1].strip())
    if not m:
        return flushes, UNKNOWN_EXIT
    return flushes, int(m.group(2)) + (128 if m.group(1) else 0)


def count(argv, log_path, timeout):
    """Run ARGV (QEMU first) under gdb with at most TIMEOUT seconds in all;
    returns (flushes or None, util.Run of QEMU) with gdb's output in LOG_PATH."""
    argv = [str(a) for a in argv]
    gdb_script = log_path + ".gdb"
    os.makedirs(os.path.dirname(os.path.abspath(log_path)), exist_ok=True)
    with open(gdb_script, "w") as f:
        f.write(script(location(argv[0])))
    gdb = ["gdb", "-batch", "-nx", "-x", gdb_script, "--args"] + argv
    t0 = time.monotonic()
    for attempt in range(1, ATTEMPTS + 1):
        r = run(gdb, log_path, max(1, t0 + timeout - time.monotonic()))
        flushes, rc = parse(r.output())
        if r.timed_out or rc is not None:
            return flushes, Run(argv, rc, time.monotonic() - t0, log_path)
        log("gdb ended before the summary (attempt %d/%d): %s" % (
            attempt, ATTEMPTS, " / ".join(r.output().splitlines()[-3:])), "flushes")
    with open(log_path, "a") as f:
        f.write("count-flushes: error: gdb ended before QEMU's exit status, %d times\n"
                % ATTEMPTS)
    return flushes, Run(argv, UNKNOWN_EXIT, time.monotonic() - t0, log_path)
