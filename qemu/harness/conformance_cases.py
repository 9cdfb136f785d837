"""The conformance suite's cases, as data (phases/conformance.py runs them).

Every row runs one command on both builds and is judged by
results.verdict. A Conf is a cases.Plugin (library, arguments, normaliser,
known upstream failure) on a guest with what its run must show:

  section   "plugins"   every plugin library of the builds on the
                        deterministic single-thread guest (serial.c), with
                        its documented options (VARIANTS)
            "programs"  large dynamically linked Debian programs
            "threads"   multi-threaded guests: 4-64 threads, fork with
                        threads, a relay of 5000 short-lived threads
            "selfreset" qemu/tests/plugin-selfreset.c resetting itself
            "order"     several plugins at once: their callbacks' order
            "ulimit"    the smallest RLIMIT_AS upstream runs at, for qpd
            "tasks"     the most host threads a run has at once: qpd's
                        no more than upstream's
            "boot"      the boot phase's Linux boot with -smp 4
  guest     a qemu/tests guest (NAME) or an absolute path (a host program)
  args      its arguments; "{dir}" is the run's own directory (output
            files), "{src}" the directory of the suite's input files
  rc        the exit status the run must end with
  expect    strings its output must hold
  checks    functions of the output, each None or what is wrong: a run
            that fails one fails
  same      KEY=N fields of the output whose values must be equal on both
            builds (where upstream's are deterministic)
  skip      why the row is not run (a plugin for another mode)
  more      further plugins, each its own -plugin after the first
  files     "names": the files a run writes are compared by name only
            (uftrace's binary traces and its copy of the host's memory map)
  runs      how many times each build runs it (CI, --full): every run
            must pass, and each of qpd's must match upstream's first

Plugin arguments may use "{dir}" too: files a run writes in its directory
(bbv's, drcov's) are part of its output. A plugin library that only one
build has is a row (verdict: qpd lacks it, or skipped), never dropped.
Tags: "conformance", and "ci" for CI's reduced matrix (cases.select).
"""
import re
from dataclasses import dataclass, field, replace

from .cases import Plugin, _t


@dataclass(frozen=True)
class Conf:
    name: str
    section: str
    plugin: Plugin = None
    guest: str = None
    args: tuple = ()
    rc: int = 0
    expect: tuple = ()
    checks: tuple = ()
    same: tuple = ()
    skip: str = None
    timeout: int = 120
    runs: tuple = (1, 1)            # runs per build: CI's, --full's
    env: tuple = ()                 # (NAME, VALUE) pairs added to the environment
    files: str = "text"             # written files compared by "text" or by "names" only
    more: tuple = ()                # further Plugins, loaded after `plugin`
    tags: frozenset = field(default_factory=frozenset)

    @property
    def normaliser(self):
        return self.plugin.normaliser if self.plugin else "exact"

    @property
    def known_upstream_failure(self):
        return self.plugin.upstream_failure if self.plugin else None


# ------------------------------------------------------------- checks
# Each takes a run's output and returns None or what is wrong with it.

_BB_CPU = re.compile(r"^CPU(\d+): bb's: (\d+), insns: (\d+)$", re.M)
_BB_TOTAL = re.compile(r"^Total: bb's: (\d+), insns: (\d+)$", re.M)


def bb_sums(text):
    """libbb: the per-vCPU counts add up to its Total line."""
    total = _BB_TOTAL.search(text)
    if not total:
        return "no Total line"
    cpus = _BB_CPU.findall(text)
    bbs, insns = sum(int(c[1]) for c in cpus), sum(int(c[2]) for c in cpus)
    if cpus and (bbs, insns) != (int(total.group(1)), int(total.group(2))):
        return "per-vCPU sums %d/%d != Total %s/%s" % (bbs, insns, total.group(1),
                                                        total.group(2))
    return None


def bb_max_cpu(n):
    """libbb: a vCPU index of N (the relay's last generation) reported."""
    def check(text):
        cpus = [int(c[0]) for c in _BB_CPU.findall(text)]
        if not cpus or max(cpus) < n:
            return "highest vCPU index %s, want %d" % (max(cpus) if cpus else "none", n)
        return None
    check.__name__ = "bb_max_cpu_%d" % n
    return check


def syscall_calls(nr, want):
    """libsyscall: system call NR counted exactly WANT times."""
    def check(text):
        m = re.search(r"^\s*%d\s+(\d+)\s+\d+\s*$" % nr, text, re.M)
        got = int(m.group(1)) if m else 0
        return None if got == want else "syscall %d: %d calls counted, guest made %d" % (
            nr, got, want)
    check.__name__ = "syscall_%d_%d" % (nr, want)
    return check


def field_is(key, want):
    """A KEY=N field of the output equals WANT."""
    def check(text):
        got = fields(text).get(key)
        return None if got == want else "%s=%s, want %d" % (key, got, want)
    check.__name__ = "%s_is_%d" % (key, want)
    return check


def resets_done(text):
    """plugin-selfreset: every reset asked for was done, except perhaps
    the last one, asked for as the guest exits; at least one was."""
    f = fields(text)
    asked, done = f.get("asked"), f.get("resets")
    if asked is None or done is None:
        return "no resets/asked fields"
    if done < 1 or not asked - 1 <= done <= asked:
        return "resets=%d of asked=%d" % (done, asked)
    return None


def fields(text):
    """The KEY=N fields of TEXT's lines (the last value of each key)."""
    return {k: int(v) for k, v in re.findall(r"\b([a-z_]+)=(\d+)\b", text)}


# ------------------------------------------------------------ plugins
SERIAL = ("serial", ("50000",))             # the deterministic guest
SERIAL_SHORT = ("serial", ("200",))         # for per-instruction output
SYSTEM_ONLY = "a system-mode plugin: the boot rows run it"


def V(args="", ci=False, normaliser="exact", rc=0, expect=(), upstream_failure=None,
      skip=None, guest=SERIAL, files="text"):
    """One configuration of a plugin on the deterministic guest."""
    return dict(args=args, ci=ci, normaliser=normaliser, rc=rc, expect=expect,
                upstream_failure=upstream_failure, skip=skip, guest=guest, files=files)


# Every plugin of tests/tcg/plugins and contrib/plugins (10.0 and 10.2)
# with its documented options (read from each plugin's .c). A library not
# listed here gets one row without arguments, compared by shape.
VARIANTS = {
    # tests/tcg/plugins
    "bb": [V(ci=True), V("inline=on"), V("inline=on,idle=on")],
    "empty": [V()],
    "inline": [V(ci=True)],
    "insn": [V(ci=True), V("inline=on"), V("sizes=on"),
             V("match=mov", upstream_failure="insn.c segfaults at exit with match= "
               "(g_hash_table_iter_init on a NULL table)"),
             V("trace=on", guest=SERIAL_SHORT)],
    "mem": [V(), V("inline=on", ci=True), V("callback=on"), V("callback=on,haddr=on"),
            V("track=r,callback=on"), V("track=w,inline=on"),
            # The values stored include the thread id (set_tid_address).
            V("print-accesses=on", guest=SERIAL_SHORT, normaliser="shape"),
            # Warnings about the stack's region (a host address) come once
            # or twice, following where the randomised stack starts in its
            # page (upstream 10.2.2: 12 warnings in one run, 11 in 25 others;
            # qpd alike): compared as a set of lines.
            V("region-summary=on", normaliser="unordered",
              upstream_failure="mem.c asserts on the first access "
              "that crosses one of its 16 KiB regions")],
    "reset": [V()],
    "syscall": [V(), V("print=on", normaliser="shape"), V("log_writes=on")],
    "discons": [V(), V("abort=off")],
    "patch": [V("use_hwaddr=false,target=0f0b,patch=0f0b")],
    # contrib/plugins
    "bbv": [V("interval=100000,outfile={dir}/bbv", ci=True), V("interval=10000,outfile={dir}/bbv")],
    "cache": [V(ci=True),
              V("dcachesize=16384,dassoc=4,dblksize=32,icachesize=16384,iassoc=2,iblksize=32"),
              V("evict=fifo"), V("evict=rand", normaliser="table"), V("l2=on"),
              V("l2=on,l2cachesize=262144,l2assoc=8,l2blksize=64"), V("limit=5")],
    "cflow": [V(), V("sort=hottest"), V("sort=early"), V("sort=exceptions")],
    "drcov": [V("filename={dir}/drcov.out", upstream_failure="10.0's drcov.c needs "
                "qemu_plugin_entry_code, which 10.0's qemu-x86_64 does not export")],
    "execlog": [V("ifilter=syscall", ci=True), V("afilter=0x401000"),
                V("ifilter=syscall,reg=rax"), V("ifilter=syscall,reg=rax,rdisas=on"),
                V(guest=SERIAL_SHORT)],
    "hotblocks": [V(), V("inline=on", ci=True)],
    # Pages of equal counts come out in a hash table's order, and which of
    # those tied last are printed follows it (normalise.py, hotpages-*).
    "hotpages": [V(ci=True, normaliser="hotpages-rw"),
                 V("sortby=reads", normaliser="hotpages-reads"),
                 V("sortby=writes", normaliser="hotpages-writes"),
                 V("sortby=address", normaliser="unordered"), V("io=on"),
                 V("pagesize=4096", normaliser="hotpages-rw")],
    "howvec": [V(), V("inline=on", ci=True), V("count=unclas"), V("inline=on,count=unclas"),
               V("verbose=on")],
    "hwprofile": [V(skip=SYSTEM_ONLY)],
    "ips": [V("ips=1000000000", skip="ips needs time control (system mode): qemu-x86_64 asserts in "
              "its install; the boot rows run it")],
    "lockstep": [V("sockpath={dir}/lockstep.sock", skip="lockstep runs two QEMUs in step over "
                   "one socket, a system-mode setup: not run")],
    "stoptrigger": [V("icount=100000:3", rc=3, expect=("icount reached",)), V("icount=1000000")],
    "traps": [V(skip=SYSTEM_ONLY)],
    # Writes ./uftrace.data: binary traces, the host's /proc/self/maps.
    "uftrace": [V(files="names"), V("trace-privilege-level=on", files="names")],
}


def plugin_rows(libs):
    """The "plugins" rows for LIBS, {lib: "tests"|"contrib"} (every library
    either build has)."""
    rows = []
    for lib in sorted(libs):
        for v in VARIANTS.get(lib, [V(normaliser="shape")]):
            p = Plugin(lib, v["args"], where=libs[lib], normaliser=v["normaliser"],
                       upstream_failure=v["upstream_failure"])
            guest, args = v["guest"]
            name = "%s/lib%s%s" % (libs[lib], lib, " " + v["args"] if v["args"] else "")
            rows.append(Conf(name.replace("{dir}/", ""), "plugins", p, guest, args, rc=v["rc"], expect=v["expect"],
                             skip=v["skip"], files=v["files"], tags=_t("conformance", *(("ci",) if v["ci"] else ()))))
    return rows


# ----------------------------------------------------------- programs
PYTHON = ("/usr/bin/python3", ("-c", "import json, decimal"))
CC1 = ("/usr/lib/gcc/x86_64-linux-gnu/12/cc1",
       ("-quiet", "-O2", "{src}/hello.c", "-o", "{dir}/hello.s"))
# A C file for cc1 without #include (cc1 alone knows no include path).
HELLO_C = """\
int printf(const char *fmt, ...);
struct point { int x, y; };
static int sq(int v) { return v * v; }
static int dist2(struct point a, struct point b)
{
    return sq(a.x - b.x) + sq(a.y - b.y);
}
int main(void)
{
    struct point p[4] = { { 0, 0 }, { 3, 4 }, { 6, 8 }, { 1, 1 } };
    int sum = 0;
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            sum += dist2(p[i], p[j]);
    printf("%d\\n", sum);
    return 0;
}
"""
_PROGRAM_PLUGINS = (
    ("hotblocks", "", True), ("hotblocks", "inline=on", False), ("howvec", "", False),
    ("howvec", "inline=on", True), ("bbv", "interval=1000000,outfile={dir}/bbv", True),
)


def _program(name, prog, lib, args, ci):
    p = Plugin(lib, args, where="contrib", normaliser="table")
    return Conf("%s: lib%s%s" % (name, lib, (" " + args).replace("{dir}/", "") if args else ""),
                "programs", p,
                prog[0], prog[1], timeout=300, env=(("PYTHONHASHSEED", "0"),),
                tags=_t("conformance", *(("ci",) if ci and name == "python3" else ())))


PROGRAMS = [_program(name, prog, lib, args, ci)
            for name, prog in (("python3", PYTHON), ("cc1", CC1))
            for lib, args, ci in _PROGRAM_PLUGINS]


# ------------------------------------------------------------ threads
BB_INLINE = Plugin("bb", "inline=on", normaliser="shape")
FORK_FAILURE = ("upstream's plugins/core.c (10.0 and 10.2) asserts in "
                "qemu_plugin_vcpu_init__async (success) when a forked child starts threads")
RELAY_GENERATIONS = 5000

THREADS = [
    Conf("guest-threads 4: libbb inline=on", "threads", BB_INLINE, "guest-threads",
         ("4", "400000"), checks=(bb_sums,), tags=_t("conformance")),
    Conf("guest-threads 64: libbb inline=on", "threads", BB_INLINE, "guest-threads",
         ("64", "400000"), checks=(bb_sums,), tags=_t("conformance")),
    Conf("guest-threads 16: libinline", "threads", Plugin("inline", normaliser="shape"),
         "guest-threads", ("16", "400000"), tags=_t("conformance")),
    Conf("guest-threads 16: contrib/libhotblocks inline=on", "threads",
         Plugin("hotblocks", "inline=on", where="contrib", normaliser="table"),
         "guest-threads", ("16", "400000"), tags=_t("conformance")),
    Conf("syscalls 8x20000: libsyscall", "threads", Plugin("syscall", normaliser="syscall"),
         "syscalls", ("8", "20000"), checks=(syscall_calls(110, 8 * 20000 // 4),),
         tags=_t("conformance")),
    Conf("fork-threads 3x4: libbb inline=on", "threads",
         replace(BB_INLINE, upstream_failure=FORK_FAILURE), "fork-threads",
         ("3", "4", "100000"), expect=("fork-threads: PASS",), tags=_t("conformance")),
    Conf("relay %d: libbb inline=on" % RELAY_GENERATIONS, "threads", BB_INLINE, "relay",
         (str(RELAY_GENERATIONS),), checks=(bb_sums, bb_max_cpu(RELAY_GENERATIONS)),
         tags=_t("conformance", "ci")),
    Conf("relay 20000: libbb inline=on", "threads", BB_INLINE, "relay", ("20000",),
         checks=(bb_sums, bb_max_cpu(20000)), timeout=300, tags=_t("conformance")),
]

# ---------------------------------------------------------- selfreset
SELFRESET_ONE = Plugin("plugin-selfreset", "every=2000", where="ours", normaliser="shape",
                       expect=("plugin-selfreset:",))
SELFRESET_EIGHT = replace(SELFRESET_ONE, args="every=20000", upstream_failure=(
    "upstream dies now and then in a reset while 8 threads run: a QEMU internal "
    "SIGSEGV (MAPERR; 10.0.13 and 10.2.2, about 1 run in 25), or cpu_exec_longjmp_cleanup's "
    "assertion cpu == current_cpu (10.2.2, 1 run in 10)"))
SELFRESET = [
    # syscalls.c's workers call getppid (110) every 4th call.
    # vCPU exits are not compared: the worker exits right after the last
    # reset it asked for, and an exit that falls between that reset's
    # unregistering and the callback's registering is missed, upstream as
    # on qpd (0 exits seen in 1 of 60 runs upstream, 2 of 60 on qpd, the two
    # builds running at once, 10.0.13).
    Conf("syscalls 1x20000, reset every 2000", "selfreset", SELFRESET_ONE, "syscalls",
         ("1", "20000"), checks=(field_is("counted", 20000 // 4),),
         same=("syscalls", "resets", "counted"), runs=(3, 10),
         tags=_t("conformance", "ci")),
    # vcpu_exits is not compared: a thread that exits (outside the exclusive
    # section) between the reset's unregistering and the callback's
    # registering is not seen, upstream as on qpd (7 of 8 seen upstream in
    # 3 of 6 runs with both builds running at once). Nor is the number of
    # resets: with 8 threads, a multiple of EVERY reached while a reset is
    # pending asks for none, and the last one asked for may still be pending
    # at exit (upstream 10.0.13: 7 or 8 between runs); checked instead: all
    # asked for were done but perhaps the last.
    Conf("syscalls 8x20000, reset every 20000", "selfreset", SELFRESET_EIGHT, "syscalls",
         ("8", "20000"), checks=(field_is("counted", 8 * 20000 // 4), resets_done),
         same=("counted",), runs=(3, 10), tags=_t("conformance", "ci")),
]

# -------------------------------------------------------------- order
# Upstream runs an event's callbacks most recently registered first: with
# -plugin libbb -plugin libinsn, insn's ATEXIT output comes before bb's.
ORDER = [
    Conf("libbb then libinsn: ATEXIT order", "order", Plugin("bb", normaliser="exact"),
         "serial", ("1000",), more=(Plugin("insn"),), expect=("Total:",),
         tags=_t("conformance", "ci")),
    Conf("libinsn then libbb then libsyscall: ATEXIT order", "order",
         Plugin("insn", normaliser="exact"), "serial", ("1000",),
         more=(Plugin("bb"), Plugin("syscall")), expect=("Total:",), tags=_t("conformance")),
]

# ------------------------------------------------------------- ulimit
# The smallest RLIMIT_AS (a multiple of STEP, at most MAX) at which
# upstream runs the guest under libbb; qpd must run at exactly that value.
# With one malloc arena: glibc gives each thread that frees memory an arena
# of its own (64 MiB of address space, 128 MiB while it is being aligned),
# created when the thread first frees, and when QEMU's RCU thread first does
# is a matter of timing, so upstream's own smallest value moved from 164 to
# 196 MiB between runs. With one arena it is the same value run after run
# (161 MiB on 10.0.13 and 10.2.2), and the row measures what the cores map.
# What the arenas of extra threads would cost is the "tasks" row's.
ULIMIT_STEP_MIB, ULIMIT_MAX_MIB = 1, 2048
ONE_ARENA = (("GLIBC_TUNABLES", "glibc.malloc.arena_max=1"),)
ULIMIT = [Conf("ulimit -v: libbb on serial, one malloc arena", "ulimit",
               Plugin("bb", normaliser="shape"), "serial", ("1000",), expect=("Total:",),
               env=ONE_ARENA, tags=_t("conformance", "ci"))]

# ---------------------------------------------------------------- tasks
# Host threads: a thread of qpd's own would be one QEMU does not have (with
# glibc, one more malloc arena under `ulimit -v`, and one more entry in
# /proc/PID/task). Polled while a host program sleeps under the plugin.
TASKS = [Conf("host threads: %s on sleep 0.3" % name, "tasks", plugin, "/bin/sleep", ("0.3",),
              runs=(2, 3), tags=_t("conformance", *(("ci",) if ci else ())))
         for name, plugin, ci in (
             ("libbb", Plugin("bb", normaliser="shape"), True),
             ("contrib/libhotblocks", Plugin("hotblocks", where="contrib",
                                             normaliser="table"), False))]

# --------------------------------------------------------------- boot
# The boot phase's boot (phases/boot.py) under contrib plugins.
BOOT = [Conf("boot -smp 4: contrib/lib%s%s" % (lib, (" " + args).replace("{dir}/", "") if args
                                                else ""), "boot",
             Plugin(lib, args, where="contrib",
                    normaliser="hwprofile" if lib == "hwprofile" else "table"), timeout=600,
             tags=_t("conformance", *(("ci",) if ci else ())))
        for lib, args, ci in (
            ("hotblocks", "", True), ("howvec", "", False), ("hotpages", "", False),
            ("cache", "", False), ("bbv", "interval=10000000,outfile={dir}/bbv", False),
            ("ips", "ips=1000000000", False), ("hwprofile", "", False))]


def all_cases(libs):
    """Every row, given the plugin libraries the builds have."""
    return (plugin_rows(libs) + PROGRAMS + THREADS + SELFRESET + ORDER + ULIMIT + TASKS
            + BOOT)
