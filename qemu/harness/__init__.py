"""qpd's QEMU harness: one QEMU source from Debian built twice, upstream
and with qpd's plugin core (qemu/apply), and the two judged side by side.

  python3 -m harness MODE [--qemu VER|SUITE] [--full] [--up DIR --qpd DIR]
                          [PHASE OPTIONS]

Modules, one per concern:
  util      logging, running a command with a time limit, exit codes
  debian    Debian's packages and QEMU's source through a private apt
            configuration
  builds    the cache layout, the two trees and their builds, and Build:
            a case's command line for one build
  cases     every case, declared once as data
  results   the one verdict rule and the one table type (Markdown, JSON, TAP)
  normalise per-plugin output normalisers, so two runs' outputs compare
  guests    the project's guests and plugins (qemu/tests/)
  flushes   counting translated-code flushes with gdb
  phases/   one module per phase, each returning a Table: check_tcg, boot,
            user, bench, gate

Exit status everywhere: 0 pass, 1 a qpd failure or regression, 2 the
harness could not run.
"""
