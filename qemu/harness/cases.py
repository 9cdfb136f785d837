"""Every case the harness runs, declared once, as data.

A Plugin is a plugin library with its arguments and what is known about
its output: strings it must print, the normaliser that makes two runs'
outputs comparable, and a known upstream failure with its reason. A Case
is a plugin (or none) on a guest, in user or system mode, with the tags
that say which phases and which sets (CI's reduced one, the full one)
run it. The boot check, the user-mode checks, qemu-bench and qemu-gate
all pick their cases from the lists below; nothing else declares one.
"""
import re
from dataclasses import dataclass, field, replace


@dataclass(frozen=True)
class Plugin:
    """A plugin and its arguments. LIB names libLIB.so: in the build's
    tests/tcg/plugins ("tests"), contrib/plugins ("contrib"), or built by
    the harness from qemu/tests/LIB.c ("ours")."""
    lib: str
    args: str = ""
    where: str = "tests"
    expect: tuple = ()              # fixed strings its output must hold
    upstream_failure: str = None    # why upstream fails it, when known
    normaliser: str = "shape"       # see normalise.py

    @classmethod
    def parse(cls, spec, **kw):
        """"bb,inline=on" -> Plugin("bb", "inline=on"); "libbb.so" works too."""
        lib, _, args = spec.partition(",")
        if lib.startswith("lib") and lib.endswith(".so"):
            lib = lib[3:-3]
        return cls(lib, args, **kw)

    @property
    def so(self):
        return "lib%s.so" % self.lib

    @property
    def label(self):
        return self.lib + ("," + self.args if self.args else "")


@dataclass(frozen=True)
class Case:
    """One thing to run on both builds."""
    name: str
    plugin: Plugin = None           # None: no plugin
    guest: str = None               # qemu/tests/GUEST.c; None in system mode
    args: tuple = ()                # the guest's arguments (CI set)
    full_args: tuple = None         # with --full, when they differ
    mode: str = "user"              # "user" (qemu-x86_64) or "system" (a boot)
    tags: frozenset = field(default_factory=frozenset)
    group: str = ""                 # qemu-bench's grouping
    goal: float = None              # qemu-bench: the CPU ratio to reach
    also_expect: tuple = ()         # strings expected besides the plugin's

    def argv(self, full=False):
        return [str(a) for a in (self.full_args if full and self.full_args else self.args)]

    @property
    def expect(self):
        return (self.plugin.expect if self.plugin else ()) + self.also_expect

    @property
    def known_upstream_failure(self):
        return self.plugin.upstream_failure if self.plugin else None


def select(cases, everything=False, only=None):
    """The cases of CASES in CI's set ("ci"), or all of them when
    EVERYTHING; with ONLY, those whose name matches that regex."""
    return [c for c in cases if (everything or "ci" in c.tags)
            and (not only or re.search(only, c.name))]


def _t(*tags):
    return frozenset(tags)


# ---------------------------------------------------------------- plugins
# QEMU's tests/tcg/plugins with the arguments the checks use. libpatch
# rewrites boot/patch-target.c's `movabs $0x5150445f4f524947, %rax` into
# `movabs $0x5150445f50415443, %rax`. Known upstream failures (QEMU
# 10.0.13 / 10.2.2) stay in the matrix, so that they show.
P = {p.label: p for p in (
    Plugin("inline"),
    Plugin("bb", "inline=on"),
    Plugin("mem", "callback=on", expect=("mem accesses",)),
    Plugin("bb", "inline=on,idle=on", expect=("Idling CPU",)),
    Plugin("reset", expect=("reset done", "uninstall done", "plugin exit")),
    Plugin("empty"),
    Plugin("bb"),
    Plugin("insn", expect=("total insns",)),
    Plugin("insn", "inline=on", expect=("total insns",)),
    Plugin("mem", "inline=on", expect=("mem accesses",)),
    Plugin("mem", "callback=on,haddr=on", expect=("io accesses",)),
    Plugin("mem", "region-summary=on", expect=("Region Base",),
           upstream_failure="mem.c asserts on the first access that crosses one of "
           "its 16 KiB regions"),
    Plugin("mem", "callback=on,inline=on"),
    Plugin("mem", "inline=on,callback=off"),
    Plugin("syscall", expect=("syscall no.",), normaliser="syscall"),
    Plugin("discons", upstream_failure="10.2's discons aborts on the first PC mismatch "
           "(an interrupt, under a second into a boot)", normaliser="discons"),
    Plugin("discons", "abort=off", normaliser="discons"),
    Plugin("patch", "target=48b84749524f5f445051,patch=48b8435441505f445051",
           expect=("Success!", "patch-target=patched")),
    Plugin("patch", "use_hwaddr=false,target=0f0b,patch=0f0b"),   # ud2: never run
)}


# ------------------------------------------------------------------ boot
# A Linux boot with 4 vCPUs under each plugin (phases/boot.py); "ci" is
# CI's reduced matrix. The no-plugin boot checks the patch target's
# original output.
BOOT = [Case(name, P[label] if label else None, mode="system",
              tags=_t("boot", *(("ci",) if ci else ())),
              also_expect=() if label else ("patch-target=original",))
        for name, label, ci in (
            ("no plugin", None, 0),
            ("inline", "inline", 1),
            ("bb inline=on", "bb,inline=on", 1),
            ("mem callback=on", "mem,callback=on", 1),
            ("bb inline=on,idle=on", "bb,inline=on,idle=on", 1),
            ("reset", "reset", 1),
            ("empty", "empty", 0),
            ("bb", "bb", 0),
            ("insn", "insn", 1),
            ("insn inline=on", "insn,inline=on", 0),
            ("mem inline=on", "mem,inline=on", 0),
            ("mem callback=on,haddr=on", "mem,callback=on,haddr=on", 0),
            ("mem region-summary=on", "mem,region-summary=on", 0),
            ("syscall", "syscall", 0),
            ("discons", "discons", 0),
            ("discons abort=off", "discons,abort=off", 0),
            ("patch", "patch,target=48b84749524f5f445051,patch=48b8435441505f445051", 0))]

# ---------------------------------------------------------- user checks
USER_THREADS = (1, 16, 64, 256)

# a. libinline.so's own assertions at 1..256 guest threads.
INLINE = [Case("libinline, threads=%d" % t, P["inline"], "guest-threads",
               (t, 1000000), (t, 4000000), tags=_t("user", "inline"))
          for t in USER_THREADS]

# b. translated-code flushes counted with gdb, per scoreboard plugin.
FLUSHES = [Case("lib%s, threads=%d" % (p.label, t), p, "guest-threads",
                (t, 20000), (t, 200000), tags=_t("user", "flushes"))
           for p in (P["inline"], P["bb,inline=on"]) for t in USER_THREADS]

# c. reset and uninstall: QEMU's libreset.so and our plugin-reset.c.
RESET = [
    Case("libreset (QEMU's reset.c), threads=16", P["reset"], "guest-threads",
         (16, 20000000), tags=_t("user", "reset")),
    Case("libplugin-reset, syscalls=300, threads=16",
         Plugin("plugin-reset", "syscalls=300", where="ours", expect=("plugin-reset: PASS",)),
         "guest-threads", (16, 20000000), tags=_t("user", "reset")),
]

# d. a forking guest that starts threads, under every test plugin the two
# builds have (found at run time) plus these argument variants; "full" ones
# only with --full.
FORK_ARGS = {"patch": P["patch,use_hwaddr=false,target=0f0b,patch=0f0b"].args}
FORK_FULL_EXTRA = [P["bb,inline=on"], P["insn,inline=on"], P["mem,inline=on,callback=off"]]


def fork_case(plg, full=False):
    """The fork check of PLG (None: no plugin, the control)."""
    label = "no plugin (control)" if plg is None else "lib" + plg.label
    iters = 400000 if full else 100000
    return Case("%s, iterations=%d" % (label, iters), plg, "fork-threads", (3, 4, iters),
                tags=_t("user", "fork"), also_expect=("fork-threads: PASS",))


# ---------------------------------------------------------------- bench
def bench_cases(nproc):
    """qemu-bench's workloads; "ci" marks the set ./run qemu times."""
    w = [Case("no plugin", None, "guest-threads", (4, 20000000), group="baseline",
              tags=_t("bench", "ci"))]
    for t in sorted({1, 2, nproc}):
        for lib in ("bb", "insn", "mem"):
            w.append(Case("%s inline=on %dT" % (lib, t), P[lib + ",inline=on"], "spin",
                          (t, 20000000), group="inline", goal=0.35 if t >= 2 else None,
                          tags=_t("bench", *(("ci",) if t == 2 and lib != "insn" else ()))))
    w += [Case("insn callback %dT" % nproc, P["insn"], "spin", (nproc, 2000000),
               group="callbacks", goal=0.9, tags=_t("bench")),
          Case("mem callback=on %dT" % nproc, P["mem,callback=on"], "spin",
               (nproc, 4000000), group="callbacks", goal=0.9, tags=_t("bench")),
          Case("syscall %dT" % nproc, P["syscall"], "syscalls", (nproc, 400000),
               group="callbacks", goal=0.9, tags=_t("bench"))]
    for size, funcs, rounds in (("small", 16, 1024), ("big", 4096, 4)):
        for t in (16, 64, 256):
            big = (size, t) == ("big", 256)
            w.append(Case("growth %s-code %dT" % (size, t), P["bb,inline=on"], "waves",
                          (t, funcs, rounds), group="growth", goal=0.85 if big else None,
                          tags=_t("bench", *(("ci",) if big else ()))))
    # Threads that each start the next and exit: vCPU indices climb to 2000
    # while at most 3 run (upstream regrows its scoreboards at each doubling).
    w.append(Case("relay 2000 bb inline=on", P["bb,inline=on"], "relay", (2000,),
                  group="relay", tags=_t("bench", "ci")))
    # The boot of ./run qemu (4 guest threads, 1M iterations each), then the
    # same with a 10x longer parallel phase. args: the guest's iterations.
    for name, plg, iters, goal in (
            ("boot -smp 4 no plugin", None, 1000000, None),
            ("boot -smp 4 bb inline=on", P["bb,inline=on"], 1000000, 0.9),
            ("boot -smp 4 insn", P["insn"], 1000000, None),
            ("boot -smp 4 bb inline=on, 10M iters", P["bb,inline=on"], 10000000, 0.9)):
        w.append(Case(name, plg, None, (iters,), mode="system", group="system", goal=goal,
                      tags=_t("bench")))
    return w


# ----------------------------------------------------------------- gate
# qemu-gate's workloads: short single-thread runs under callgrind. discons
# (10.2) registers nothing in linux-user: a loaded, idle plugin. patch is
# left out: it rewrites guest code. The gate keys its baselines by name.
GATE = [Case(name, P[label] if label else None, guest, args, tags=_t("gate"))
        for name, label, guest, args in (
            ("none", None, "guest-threads", (1, 50000)),
            ("bb", "bb", "guest-threads", (1, 50000)),
            ("bb-inline", "bb,inline=on", "guest-threads", (1, 50000)),
            ("insn", "insn", "guest-threads", (1, 50000)),
            ("insn-inline", "insn,inline=on", "guest-threads", (1, 50000)),
            ("mem-cb", "mem,callback=on", "guest-threads", (1, 50000)),
            ("mem-inline", "mem,inline=on", "guest-threads", (1, 50000)),
            ("inline", "inline", "guest-threads", (1, 10000)),
            ("empty", "empty", "guest-threads", (1, 50000)),
            ("reset", "reset", "guest-threads", (1, 50000)),
            ("discons", "discons", "guest-threads", (1, 50000)),
            ("syscall", "syscall", "syscalls", (1, 40000)))]


def with_args(case, args):
    return replace(case, args=tuple(args), full_args=None)
