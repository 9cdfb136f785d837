"""Per-plugin output normalisers: what makes two runs' plugin outputs
comparable.

Under MTTCG the counts a plugin prints change from run to run, and so
does the order in which vCPUs print; what an upstream and a qpd build
must agree on is which lines there are. A normaliser turns a plugin's
output into its sorted set of distinct lines, with what may legitimately
vary taken out:

  shape    (the default) every number -- decimal, hex with or without
           0x -- replaced by N, vCPU indices ("cpu 1", "CPU1", "VCPU 1")
           kept as <1>
  syscall  shape, but syscall.c's statistics keep their syscall numbers
           and lose their column padding (it follows the counts' widths:
           "202          13     0" against "202          5      0")
  discons  shape without vCPU indices: discons.c (10.2) reports a PC
           mismatch on whichever vCPU an interrupt happened to hit
  exact    (the conformance suite's deterministic runs) every line kept,
           in order, numbers included; only what changes from run to run
           of one build goes: host addresses (hex of 2^40 and above: the
           guest's mmap'd pages under qemu-user follow the host's ASLR),
           the numbers of a line that has one, and timing ("1.23 s",
           "12.5 MIPS")
  table    shape, with the rows of a plugin's ranked tables (lines that
           start with a hex address, howvec's "Instr:" lines, bbv's "T:"
           vectors) reduced to their kind: which blocks or instructions
           rank first, and how many rows there are, follow the timing;
           runs of blanks collapsed (columns padded to the counts' widths)
  unordered  exact as a sorted set of lines: tables whose ties come out
           in a hash table's order
  hotpages-rw, hotpages-reads, hotpages-writes
           unordered, for hotpages sorted by that key: the rows tied
           with the last one printed become one "<N rows tied last>" line.
           hotpages' comparison never says "equal", so ties keep the hash
           table's order, and it prints at most 50 rows and never the
           last page of its list: which of the tied pages are printed
           follows the hash of page addresses, the stack's among them
           (host ASLR), upstream as on qpd
  hwprofile  table, each of hwprofile's device rows as "<device row>"
           (which devices a boot touches follows its timing; unnamed ones
           are "anon" + a host pointer)

cases.Plugin.normaliser names a plugin's normaliser; compare() says how
two outputs differ, in a line.
"""
import re

# A vCPU index (groups 1-2), or any other number, hex included.
_NUMBER = re.compile(r"((?i:v?cpu) ?)(\d+)|\b(?:0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*\b", re.ASCII)
# A row of syscall.c's statistics: number, calls, errors.
_SYSCALL_ROW = re.compile(r"^(-?\d+) +(\d+) +(\d+)$")


def _line_shape(line, cpus=True):
    """LINE with its numbers replaced by N and, if CPUS, its vCPU indices kept."""
    def sub(m):
        if m.group(2) is None:
            return "N"
        return m.group(1) + ("<%s>" % m.group(2) if cpus else "N")
    return _NUMBER.sub(sub, line)


def shape(text):
    """The distinct lines of TEXT, numbers as N and vCPU indices kept."""
    return sorted({_line_shape(l) for l in text.splitlines()})


def syscall(text):
    """shape, with syscall.c's rows as "syscall <NR>: N calls, N errors"
    and runs of spaces collapsed."""
    out = set()
    for line in text.splitlines():
        m = _SYSCALL_ROW.match(line.strip())
        out.add("syscall <%s>: N calls, N errors" % m.group(1) if m
                else " ".join(_line_shape(line).split()))
    return sorted(out)


def discons(text):
    """shape with vCPU indices replaced by N too."""
    return sorted({_line_shape(l, cpus=False) for l in text.splitlines()})


# A host address (2^40 and above), and a duration or a rate.
_HOST_ADDR = re.compile(r"\b0x0*[0-9a-fA-F]{11,16}\b")
_TIMING = re.compile(r"\b\d+(?:\.\d+)?\s*(?:s|ms|us|ns|secs?|seconds|MIPS|[kMG]?IPS)\b")
# The first word of a ranked table's row.
_TABLE_ROW = re.compile(r"^\s*(0x[0-9a-fA-F]+|Instr:|T:)")


def _host_addr(m):
    return "<addr>" if int(m.group(0), 16) >= 1 << 40 else m.group(0)


def exact(text):
    """TEXT's lines, numbered so that their order counts, with host
    addresses as <addr> and durations as <time>; a line about a host
    address has its numbers as N too (hotpages' count of the stack page
    follows where in its page the randomised stack starts)."""
    out = []
    for i, line in enumerate(text.splitlines()):
        line = _TIMING.sub("<time>", _HOST_ADDR.sub(_host_addr, line))
        if "<addr>" in line:
            line = _line_shape(line)
        out.append("%05d %s" % (i, line))
    return out


def table(text):
    """shape with runs of blanks collapsed (columns are padded to the
    counts' widths), a ranked table's row as "<row 0x>", "<row Instr:>" or
    "<row T:>"."""
    out = set()
    for line in text.splitlines():
        m = _TABLE_ROW.match(line)
        out.add("<row %s>" % ("0x" if m.group(1).startswith("0x") else m.group(1)) if m
                else " ".join(_line_shape(line).split()))
    return sorted(out)


def unordered(text):
    """exact, but as a sorted list of lines: for tables whose ties come
    out in a hash table's order (hotpages sorted by writes)."""
    return sorted(line.split(" ", 1)[1] for line in exact(text))


_HOTPAGES_ROW = re.compile(r"^0x[0-9a-fA-F]+, 0x[0-9a-fA-F]+, (\d+), 0x[0-9a-fA-F]+, (\d+)$")
_HOTPAGES_KEYS = {"rw": lambda r, w: r + w, "reads": lambda r, w: r, "writes": lambda r, w: w}


def _hotpages(key):
    """The hotpages-KEY normaliser (see the module's docstring)."""
    rank = _HOTPAGES_KEYS[key]

    def norm(text):
        lines = text.splitlines()
        rows = {}
        for i, line in enumerate(lines):
            m = _HOTPAGES_ROW.match(line)
            if m:
                rows[i] = rank(int(m.group(1)), int(m.group(2)))
        if rows:
            last = min(rows.values())
            tied = {i for i, k in rows.items() if k == last}
            lines = [l for i, l in enumerate(lines) if i not in tied]
            lines.append("<%d rows tied last>" % len(tied))
        return unordered("\n".join(lines))
    norm.__name__ = "hotpages_" + key
    return norm


# hwprofile's device rows: a name ("anon" + a host pointer for an
# unnamed region), then hex counts and vCPU masks without 0x.
_HW_ROW = re.compile(r"^[\w.-]+, .*$")


def hwprofile(text):
    """table, each of hwprofile's device rows as "<device row>": which
    devices a boot touches (lpc-rcrb-mmio or not) follows its timing."""
    out = set()
    for line in text.splitlines():
        out.add("<device row>" if _HW_ROW.match(line) and not line.startswith("Device,")
                else " ".join(_line_shape(line).split()))
    return sorted(out)


NORMALISERS = {"shape": shape, "syscall": syscall, "discons": discons, "exact": exact,
               "table": table, "unordered": unordered, "hwprofile": hwprofile,
               "hotpages-rw": _hotpages("rw"), "hotpages-reads": _hotpages("reads"),
               "hotpages-writes": _hotpages("writes")}


def normaliser(name):
    """The normaliser called NAME (see the module's docstring)."""
    try:
        return NORMALISERS[name]
    except KeyError:
        raise ValueError("no normaliser %r (have: %s)" % (name, ", ".join(NORMALISERS)))


def compare(a, b, name="shape", labels=("upstream", "qpd")):
    """None when outputs A and B normalise alike under NAME, else the
    first differing line and which of LABELS has it."""
    norm = normaliser(name)
    na, nb = set(norm(a)), set(norm(b))
    diff = sorted((line, labels[0]) for line in na - nb)
    diff += sorted((line, labels[1]) for line in nb - na)
    if not diff:
        return None
    line, who = min(diff)
    more = " (+%d more)" % (len(diff) - 1) if len(diff) > 1 else ""
    return "only %s's output has %r%s" % (who, line[:100], more)
