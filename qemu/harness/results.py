"""The one verdict rule and the one result table of the harness.

Every phase runs the same case on two builds of one QEMU source, upstream
and qpd, and sums each build's run up as an Outcome: it passed or not, and
why, in a few words. verdict() is the only place that turns two outcomes
into a judgement, and the rule is the project's:

  - qpd must pass wherever upstream passes: upstream passes and qpd does
    not (or is flaky, or its output differs from upstream's) is a qpd
    failure, the only verdict that fails a run;
  - a case upstream fails is upstream's failure, reported, never held
    against qpd (with the declared reason when it is a known one);
  - a case neither build can run (a plugin this QEMU version lacks) is
    skipped.

A Table holds a phase's rows (case, one cell per column, the verdict) and
renders them as Markdown, JSON and TAP; its exit status follows from the
verdicts alone.
"""
import json
from dataclasses import dataclass, field

from .util import EXIT_FAIL, EXIT_INFRA, EXIT_PASS

PASS, QPD_FAIL, UPSTREAM_FAIL, SKIP = "pass", "QPD FAIL", "upstream failure", "skipped"
HARNESS_ERROR = "harness error"     # only in the phase summary: the phase could not run


@dataclass
class Outcome:
    """One build's result for one case."""
    ok: bool
    text: str = ""          # what the table shows ("pass", "timeout", ...)
    flaky: bool = False     # failed, then passed when repeated alone
    absent: bool = False    # the build cannot run the case (plugin missing)

    def __str__(self):
        return self.text or ("pass" if self.ok else "FAIL")


def passed(text="pass"):
    return Outcome(True, text)


def failed(text):
    return Outcome(False, text)


@dataclass
class Verdict:
    kind: str               # PASS, QPD_FAIL, UPSTREAM_FAIL or SKIP
    text: str

    @property
    def fails(self):
        return self.kind == QPD_FAIL

    def __str__(self):
        return self.text


def verdict(upstream, qpd, differs=None, known_upstream_failure=None, qpd_must_pass=False):
    """The verdict of one case from the two builds' outcomes. DIFFERS says
    how qpd's output differs from upstream's when both passed (None: it
    does not); KNOWN_UPSTREAM_FAILURE is the declared reason a case fails
    upstream, shown when it does. QPD_MUST_PASS is for cases that test
    qpd's own claims with plugins of the project (the torture): there a
    qpd failure fails even where upstream fails too."""
    if qpd_must_pass and not qpd.absent and (not qpd.ok or qpd.flaky):
        return Verdict(QPD_FAIL, "QPD FAIL" + ("" if upstream.ok else " (upstream fails too)"))
    if upstream.absent and qpd.absent:
        return Verdict(SKIP, "skipped (%s)" % (upstream.text or "not in this QEMU"))
    if qpd.absent and not upstream.absent:
        return Verdict(QPD_FAIL, "QPD FAIL (qpd build lacks it)")
    if not upstream.ok or upstream.flaky:
        text = "upstream failure"
        if known_upstream_failure:
            text += " (known: %s)" % known_upstream_failure
        if qpd.ok and not qpd.flaky:
            text += ", qpd passes"
        return Verdict(UPSTREAM_FAIL, text)
    if not qpd.ok:
        return Verdict(QPD_FAIL, "QPD FAIL")
    if qpd.flaky:
        return Verdict(QPD_FAIL, "QPD FAIL (flaky)")
    if differs:
        return Verdict(QPD_FAIL, "QPD FAIL (%s)" % differs)
    return Verdict(PASS, "pass")


@dataclass
class Row:
    case: str
    cells: dict
    verdict: Verdict
    data: dict = field(default_factory=dict)    # extra JSON-only fields


class Table:
    """A phase's rows. COLUMNS are the cells shown between the case and the
    verdict (by default the two builds' outcomes)."""

    def __init__(self, name, title, columns=("upstream", "qpd"), notes=()):
        self.name, self.title = name, title
        self.columns = list(columns)
        self.notes = list(notes)
        self.rows = []
        self.infra = []          # harness errors met on the way

    def add(self, case, verdict_, cells=None, **data):
        """Add a row; CELLS maps column to text (default: the outcomes
        given as data upstream= and qpd=)."""
        if cells is None:
            cells = {c: str(data.get(c, "")) for c in self.columns}
        row = Row(case, {c: str(cells.get(c, "")) for c in self.columns}, verdict_,
                  {k: _plain(v) for k, v in data.items()})
        self.rows.append(row)
        return row

    def compare(self, case, upstream, qpd, differs=None, known=None, must_pass=False, **data):
        """Add the row of one case run on both builds, judged by verdict()."""
        v = verdict(upstream, qpd, differs, known, must_pass)
        return self.add(case, v, {"upstream": str(upstream), "qpd": str(qpd)},
                        upstream=upstream, qpd=qpd, **data)

    def count(self, kind):
        return sum(r.verdict.kind == kind for r in self.rows)

    @property
    def qpd_failures(self):
        return self.count(QPD_FAIL)

    def exit_status(self):
        """1 when a row is a qpd failure, else 2 when one is a harness
        error (a phase that could not run), else 0."""
        if self.qpd_failures:
            return EXIT_FAIL
        return EXIT_INFRA if self.count(HARNESS_ERROR) else EXIT_PASS

    def summary(self):
        word = {EXIT_PASS: "PASS", EXIT_FAIL: "FAIL", EXIT_INFRA: "HARNESS ERROR"}
        return "%s: %s (%d rows: %d pass, %d qpd failures, %d upstream failures, %d skipped)" % (
            self.name, word[self.exit_status()], len(self.rows),
            self.count(PASS), self.qpd_failures, self.count(UPSTREAM_FAIL), self.count(SKIP))

    def markdown(self, only_notable=False):
        """The table in Markdown; ONLY_NOTABLE keeps the rows that are not a
        plain pass (the count of the others is said below it)."""
        head = ["case"] + self.columns + ["verdict"]
        lines = ["### " + self.title, ""] if self.title else []
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        shown = [r for r in self.rows if not only_notable or r.verdict.kind != PASS]
        for r in shown:
            cells = [r.case] + [r.cells[c] for c in self.columns] + [r.verdict.text]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        if len(shown) < len(self.rows):
            lines.append("")
            lines.append("(%d more rows pass on both builds)" % (len(self.rows) - len(shown)))
        lines += [""] + ["- " + n for n in self.notes] if self.notes else []
        return "\n".join(lines) + "\n"

    def to_json(self):
        return {"phase": self.name, "title": self.title, "columns": self.columns,
                "rows": [{"case": r.case, "cells": r.cells, "verdict": r.verdict.kind,
                          "verdict_text": r.verdict.text, **r.data} for r in self.rows],
                "qpd_failures": self.qpd_failures, "notes": self.notes}

    def tap(self):
        """TAP version 13: a qpd failure is "not ok", anything else "ok"
        (an upstream failure or a skip with a SKIP directive)."""
        lines = ["TAP version 13", "1..%d" % len(self.rows)]
        for i, r in enumerate(self.rows, 1):
            ok = "not ok" if r.verdict.fails else "ok"
            desc = ("%s: %s" % (self.name, r.case)).replace("#", "\\#")
            directive = " # SKIP %s" % r.verdict.text if r.verdict.kind in (SKIP, UPSTREAM_FAIL) else ""
            lines.append("%s %d - %s%s" % (ok, i, desc, directive))
        return "\n".join(lines) + "\n"

    def write(self, logdir):
        """TABLE.md, TABLE.json and TABLE.tap in LOGDIR; returns the .md path."""
        import os
        os.makedirs(logdir, exist_ok=True)
        base = os.path.join(logdir, self.name)
        with open(base + ".md", "w") as f:
            f.write(self.markdown())
        with open(base + ".json", "w") as f:
            json.dump(self.to_json(), f, indent=1)
        with open(base + ".tap", "w") as f:
            f.write(self.tap())
        return base + ".md"


def _plain(v):
    """A JSON-able form of a row's data."""
    if isinstance(v, Outcome):
        return {"ok": v.ok, "text": v.text, "flaky": v.flaky, "absent": v.absent}
    return v
