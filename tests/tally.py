#!/usr/bin/env python3
"""Adds up meson test logs: a Criterion binary counts its own tests, any
other test counts once.  Prints 'tests: N passed, N failed' and exits 1 on
any failure."""
import json
import re
import sys

SYNTH = re.compile(r"Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)")
passed = failed = 0
for path in sys.argv[1:]:
    with open(path) as f:
        for line in f:
            t = json.loads(line)
            ok = t["result"] in ("OK", "EXPECTEDFAIL")
            m = SYNTH.search((t.get("stdout") or "") + (t.get("stderr") or ""))
            if m:
                _, p, fl, cr = map(int, m.groups())
                passed += p
                failed += fl + cr + (0 if ok or fl + cr else 1)
            elif t["result"] == "SKIP":
                continue
            elif ok:
                passed += 1
            else:
                failed += 1
print(f"tests: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
