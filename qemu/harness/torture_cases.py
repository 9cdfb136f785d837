"""The torture's scenarios, as data (phases/torture.py runs them).

A scenario is a guest of many threads (qemu/tests/torture.c: relaying
threads, signals, forks whose children start threads; or
qemu/tests/syscalls.c) under plugins of the project that change the
plugin core's state from vCPU threads: qemu/tests/plugin-churn.c, built
under several names so that QEMU loads independent copies side by side,
and qemu/tests/plugin-selfreset.c. Each copy's arguments say what it
churns (plugin-churn.c's header lists them and the invariants it checks).

"{ms}" in a guest's arguments is the guest's running time in
milliseconds, "{calls}" the system calls per thread of qemu/tests/syscalls.c
(20,000; 2,000 under TSan, whose shadow stack does not unwind QEMU's
siglongjmp out of every system call and overflows after some thousands). UPSTREAM_FAILURE names what upstream QEMU is known to do
wrong in a scenario and REPRODUCER the section of doc/qemu-torture.md that
reduces it to the smallest run.
"""
from dataclasses import dataclass, field

from .cases import Plugin

# Our plugin libraries: the file name QEMU loads -> the source in qemu/tests.
SOURCES = {"churn-a": "plugin-churn", "churn-b": "plugin-churn", "churn-c": "plugin-churn",
           "plugin-selfreset": "plugin-selfreset"}


def churn(copy, args):
    return Plugin(copy, args, where="ours")


@dataclass(frozen=True)
class Scenario:
    name: str
    plugins: tuple                  # Plugin(where="ours"), loaded in this order
    guest: str                      # qemu/tests/GUEST.c
    args: tuple                     # the guest's arguments; "{ms}" its time
    tags: frozenset = field(default_factory=frozenset)
    upstream_failure: str = None    # what upstream is known to do wrong here
    reproducer: str = None          # doc/qemu-torture.md's section

    def argv(self, ms, calls=20000):
        return [str(a).replace("{ms}", str(ms)).replace("{calls}", str(calls))
                for a in self.args]

    @property
    def tags_of_churn(self):
        """The tags of the plugin-churn copies: each must report."""
        out = []
        for p in self.plugins:
            if SOURCES.get(p.lib) == "plugin-churn":
                out += [a[4:] for a in p.args.split(",") if a.startswith("tag=")]
        return out


_SYSCALL_RET = ("the syscall callback unregisters syscall_ret while other vCPUs "
                "walk its list: upstream frees the entry at once (SIGSEGV)")

_FORK = ("a forked child's new threads trip qemu_plugin_vcpu_init__async's "
         "assertion (success)")
_MIXED = ("the failures of the scenarios above together: freed or unmapped "
          "callbacks under a running system-call callback; " + _FORK)

# Three copies at once: one toggles registrations and churns scoreboards,
# one resets itself with inline/cond/memory instrumentation, one toggles
# and uninstalls itself mid-run with the same instrumentation.
_ALL3 = (churn("churn-a", "tag=a,toggle=7,sb=50"),
         churn("churn-b", "tag=b,tb=on,reset=3000"),
         churn("churn-c", "tag=c,tb=on,toggle=5,uninstall=20000"))

SCENARIOS = [
    Scenario("syscall_ret-toggle-8", (churn("churn-a", "tag=t,toggle=7"),),
             "syscalls", (8, "{calls}"), frozenset({"ci"}),
             upstream_failure=_SYSCALL_RET, reproducer="syscall_ret toggle"),
    Scenario("selfreset-8", (Plugin("plugin-selfreset", "every=500", where="ours"),),
             "syscalls", (8, "{calls}"), frozenset({"ci"}),
             upstream_failure="the reset frees the plugin's callback entries while "
             "other vCPUs walk them in a system call (use-after-free)",
             reproducer="self-reset"),
    Scenario("uninstall-in-syscall-8", (churn("churn-c", "tag=c,sb=1,uninstall=5000"),),
             "syscalls", (8, "{calls}"), frozenset({"ci"}),
             upstream_failure="the uninstall closes the module while other vCPUs "
             "are still in its system-call callback", reproducer="uninstall"),
    Scenario("all3-8", _ALL3, "torture", (8, "{ms}", 200), frozenset({"ci"}),
             upstream_failure=_MIXED, reproducer="all of them"),
    Scenario("all3-64", _ALL3, "torture", (64, "{ms}", 200), frozenset({"ci"}),
             upstream_failure=_MIXED, reproducer="all of them"),
    Scenario("all3-256", _ALL3, "torture", (256, "{ms}", 500),
             upstream_failure=_MIXED, reproducer="all of them"),
    Scenario("uninstall-early-32", (churn("churn-b", "tag=b,tb=on,reset=500"),
                                    churn("churn-c", "tag=c,tb=on,toggle=3,uninstall=50")),
             "torture", (32, "{ms}", 100), frozenset({"ci"}),
             upstream_failure=_FORK, reproducer="fork"),
    Scenario("fork-scoreboards-32", (churn("churn-a", "tag=a,sb=1"),),
             "torture", (32, "{ms}", 20), frozenset({"ci"}),
             upstream_failure=_FORK, reproducer="fork"),
    Scenario("scoreboards-128", (churn("churn-a", "tag=a,sb=2,toggle=11"),
                                 churn("churn-b", "tag=b,tb=on,reset=1000")),
             "torture", (128, "{ms}", 0)),
]
