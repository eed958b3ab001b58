"""The repository stands on its own: every file path, markdown link and `wandb_ops` module that a
tracked file names exists in the repository, and no tracked file points at a document kept
outside it or at a ticket number (those mean nothing to a reader of the repository).

What counts as a reference:
- a markdown link `[text](target)` in a `*.md` file, relative to that file (web links and mail
  aside), and its `#anchor` when the target is a markdown page;
- anywhere in any tracked text file, a path that starts at a top-level folder of the repository
  (`docs/`, `scripts/`, `functions/`, `layers/`, `statemachines/`, `events/`, `tests/`, `bench/`)
  or at the package (`wandb_ops/...`), and a dotted `wandb_ops.x.y` module name.
Paths with a placeholder (`<name>`, `*`, `{...}`) and the generated folders `.gitignore` lists
are not checked.
"""

import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = ROOT / "layers" / "common"
TOP_LEVEL = ("docs", "scripts", "functions", "layers", "statemachines", "events", "tests", "bench")
# Written out of the tree by the build, the tools and the benchmarks: named in the docs, never tracked.
GENERATED = (".aws-sam", ".tools", ".venv", ".cache", "__pycache__")

_PATH = re.compile(
    r"(?<![\w./~:@$-])((?:" + "|".join(TOP_LEVEL) + r"|wandb_ops)/[\w./@-]*[\w/])(#[\w-]+)?(?![\w@<*{-]|[./][\w<*{])"
)
_MODULE = re.compile(r"(?<![\w./])(wandb_ops(?:\.\w+)+)")
_MARKDOWN_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")
# Written in pieces so that this file does not match itself.
_ELSEWHERE = [
    (re.compile(r"\bissues?\s*#?\s*\d+\b", re.IGNORECASE), "an issue number"),
    (re.compile(r"(?<![\w&/#])#\d{1,5}\b(?![\w;])"), "an issue or pull request number"),
    (re.compile(r"\b(?:PR|GH)[- ]?#?\d+\b"), "a pull request number"),
    (re.compile("DESIGN" + r"\.md"), "a design document outside the repository (use docs/design.md)"),
    (re.compile(r"/work/(?:main|wt|shared)\b|\b" + "shared" + r"/DESIGN"), "a path on the author's machine"),
]
# Workflows that exist only as examples: the recipe's (docs/adding-a-workflow.md) and the recipe
# test's fake one (tests/unit/test_workflow_recipe.py). A path or module naming them is not checked.
EXAMPLE_WORKFLOWS = re.compile(r"(?:^|[/.])(?:bucket[_-]audit|audit)(?:$|[/.-])")
# Recorded command lines of benchmark runs: where the benchmark ran, not a reference.
_NOT_CHECKED_FOR_ELSEWHERE = re.compile(r"^bench/[^/]+/results/")
# A record of a released version names that version's paths, some since renamed or removed (the
# template contract's baseline: scripts/template_contract.py's output for the release's template).
RELEASE_RECORDS = ("tests/unit/template_contract_baseline.json",)
# This file names broken references on purpose, to test the checker.
SELF = str(Path(__file__).resolve().relative_to(ROOT))


@cache
def tracked_files() -> tuple[str, ...]:
    """Every file git tracks (plus new files not yet added, so a check before `git add` agrees);
    outside a git checkout (an exported tree), every file but the generated folders."""
    try:
        listing = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = set(listing.split("\0"))
    except (OSError, subprocess.CalledProcessError):
        names = {
            str(path.relative_to(ROOT))
            for path in ROOT.rglob("*")
            if not any(part in GENERATED or part.startswith(".") for part in path.relative_to(ROOT).parts)
        }
    return tuple(sorted(name for name in names if name and (ROOT / name).is_file()))


def text_files() -> Iterator[tuple[str, str]]:
    for name in tracked_files():
        if name == SELF:
            continue
        try:
            yield name, (ROOT / name).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"`|\*\*|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    in_code = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and (match := re.match(r"#{1,6}\s+(.*)", line)):
            base = slug(match[1])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return frozenset(found)


def problem_with(target: Path, anchor: str | None, shown: str) -> str | None:
    """Why `target` (with `#anchor`) is not a file or folder of the repository, or None if it is."""
    try:
        relative = target.resolve().relative_to(ROOT)
    except ValueError:
        return f"{shown} is outside the repository"
    if any(part in GENERATED for part in relative.parts):
        return None
    if not target.exists():
        return f"{shown} does not exist (moved or renamed? point it at the new path)"
    if target.is_file() and str(relative) not in tracked_files():
        return f"{shown} exists here but is not tracked by git (git add it, or do not name it)"
    if anchor and target.suffix == ".md" and anchor not in anchors(target):
        return f"{shown}: {relative} has no heading with the anchor #{anchor}"
    return None


def module_problem(dotted: str) -> str | None:
    """A dotted name is a module or package of the layer, or one name defined in it."""
    parts = dotted.split(".")
    for length in range(len(parts), 0, -1):
        base = PACKAGE_ROOT.joinpath(*parts[:length])
        source = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if source.is_file():
            rest = parts[length:]
            if not rest:
                return None
            defined = re.search(
                rf"^(?:def|class|async def)\s+{rest[0]}\b|^{rest[0]}\s*[:=]", source.read_text(), re.MULTILINE
            )
            if len(rest) == 1 and defined:
                return None
            break
    return f"`{dotted}` names no module of layers/common, nor a name one defines (moved or renamed? point it there)"


def broken_references(name: str, text: str) -> Iterator[str]:
    here = ROOT / name
    if name.endswith(".md"):
        for match in _MARKDOWN_LINK.finditer(text):
            target = match[1]
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            path, _, anchor = target.partition("#")
            destination = here.parent / path if path else here
            problem = problem_with(destination, anchor or None, f"link ({target})")
            if problem:
                yield f"{name}:{line_of(text, match.start())}: {problem}"
    for match in _PATH.finditer(text):
        path = match[1]
        if EXAMPLE_WORKFLOWS.search(path):
            continue
        shown = path + (match[2] or "")
        base = PACKAGE_ROOT if path.startswith("wandb_ops/") else ROOT
        problem = problem_with(base / path, match[2][1:] if match[2] else None, f"`{shown}`")
        if problem:
            yield f"{name}:{line_of(text, match.start())}: {problem}"
    if not name.endswith((".py", ".md", ".yaml", ".yml", ".toml", ".json")) and name != "Makefile":
        return
    for match in _MODULE.finditer(text):
        if name.endswith(".py") and text[max(0, match.start() - 5) : match.start()] in ("from ", "port "):
            continue  # an import: mypy and the tests prove it resolves
        if EXAMPLE_WORKFLOWS.search(match[1]):
            continue
        problem = module_problem(match[1].rstrip("."))
        if problem:
            yield f"{name}:{line_of(text, match.start())}: {problem}"


def test_every_named_path_link_and_module_exists() -> None:
    broken = [
        problem
        for name, text in text_files()
        if name not in RELEASE_RECORDS
        for problem in broken_references(name, text)
    ]
    assert not broken, "references to files or modules that are not in the repository:\n" + "\n".join(broken)


def test_no_file_points_outside_the_repository() -> None:
    found = [
        f"{name}:{line_of(text, match.start())}: {what}: {match[0]!r}"
        for name, text in text_files()
        if not _NOT_CHECKED_FOR_ELSEWHERE.match(name)
        for pattern, what in _ELSEWHERE
        for match in pattern.finditer(text)
    ]
    assert not found, (
        "the repository must stand on its own: say what is needed in docs/design.md or the right docs page "
        "instead of citing a ticket or a document kept elsewhere:\n" + "\n".join(found)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("see [the runbook](runbooks.md#a-workflow-failed)", []),
        ("see [the runbook](runbooks.md#no-such-section)", ["no heading with the anchor #no-such-section"]),
        ("see [gone](gone.md)", ["link (gone.md) does not exist"]),
        ("see [outside](../../elsewhere.md)", ["is outside the repository"]),
        ("run `scripts/no_such_script.py`", ["`scripts/no_such_script.py` does not exist"]),
        ("runs `functions/<workflow>/app.py` and statemachines/*.asl.json", []),
        ("built into `.aws-sam/build` and `bench/s3_sync/.tools/`", []),
        ("https://github.com/wandb/terraform-aws-wandb/blob/main/docs/x.md", []),
        ("`wandb_ops.core.steps` and `wandb_ops.core.steps.Steps`", []),
        ("`wandb_ops.core.no_such_module`", ["names no module of layers/common"]),
        ("`wandb_ops.core.steps.no_such_name`", ["names no module of layers/common"]),
        ("inputs in `events/credential-rotation-*.json`, `layers/common/wandb_ops/workflows/<name>/`", []),
        ("see docs/runbooks.md. Then docs/no-such-page.md.", ["`docs/no-such-page.md` does not exist"]),
        ("`docs/runbooks.md#no-such-section`", ["no heading with the anchor #no-such-section"]),
    ],
)
def test_the_checker_finds_what_it_should(text: str, expected: list[str]) -> None:
    found = list(broken_references("docs/example.md", text))
    assert len(found) == len(expected), found
    for problem, fragment in zip(found, expected, strict=True):
        assert fragment in problem


@pytest.mark.parametrize(
    ("text", "flagged"),
    [
        ("as decided in issue 17", True),
        ("fixed by #23.", True),
        ("see " + "DESIGN" + ".md", True),
        ("see docs/design.md", False),
        ('color: "#ff0000"; x &#35; y', False),
        ("Runbook: docs/tfstate-backup.md, section 'Anomalies'", False),
    ],
)
def test_tickets_and_outside_documents_are_recognised(text: str, flagged: bool) -> None:
    assert any(pattern.search(text) for pattern, _ in _ELSEWHERE) == flagged
