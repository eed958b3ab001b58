"""The part of a docs page that a script writes from the code, between two marker lines, and
the command line both generators share (write the section, or --check that it is current)."""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

END = "<!-- end of generated section -->"


def updated(document: str, begin: str, section: str) -> str:
    """``document`` with the text between ``begin`` and END replaced by ``section``."""
    if begin not in document or END not in document:
        raise SystemExit(f"the page lacks the generated-section markers: {begin} ... {END}")
    head, rest = document.split(begin, 1)
    return head + begin + "\n\n" + section + "\n" + END + rest.split(END, 1)[1]


def main(description: str, page: Path, begin: str, generate: Callable[[], str]) -> int:
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help=f"exit 1 if {page.name} is stale")
    arguments = parser.parse_args()
    current = page.read_text()
    wanted = updated(current, begin, generate())
    if not arguments.check:
        page.write_text(wanted)
    elif wanted != current:
        print(f"{page.name} is stale: run make docs", file=sys.stderr)
        return 1
    return 0
