"""The check registry and runner shared by cli_test.py and daemon_test.py.

A script registers checks with @check("name") (in order), may raise Skip
from one, and calls run(filter) from main(); notes collected with note()
are printed at the end.
"""

import time

CHECKS = []  # (name, fn), in registration order
NOTES = []   # informational lines printed after the checks


class Skip(Exception):
    """Raised by a check that cannot run here (the reason is printed)."""


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn
    return register


def note(msg):
    NOTES.append(msg)


def run(name_filter=""):
    """Runs every check whose name contains name_filter; returns
    (passed, failed, skipped). A check fails on AssertionError, or on any
    other exception (a bug in the check itself, or an OS error)."""
    passed = failed = skipped = 0
    for name, fn in CHECKS:
        if name_filter and name_filter not in name:
            continue
        t = time.monotonic()
        try:
            fn()
            print(f"PASS {name} ({time.monotonic() - t:.1f}s)", flush=True)
            passed += 1
        except Skip as e:
            print(f"SKIP {name}: {e}", flush=True)
            skipped += 1
        except AssertionError as e:
            print(f"FAIL {name}\n      {e}", flush=True)
            failed += 1
        except Exception as e:
            print(f"FAIL {name}\n      {type(e).__name__}: {e}", flush=True)
            failed += 1
    return passed, failed, skipped


def print_notes():
    for n in NOTES:
        print(f"note: {n}")


def finish(t0, passed, failed, skipped=None):
    """Prints the notes, the run's time since t0 and the verdict line that
    every script ends with; returns the exit code (1 when a check failed)."""
    print_notes()
    print(f"({time.monotonic() - t0:.1f}s" + (f", {skipped} skipped)" if skipped is not None else ")"))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
