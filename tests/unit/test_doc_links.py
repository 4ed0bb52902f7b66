"""Every relative link and every cited markdown file of the documentation resolves, inside the repository.

Links: `[text](path)`, `[text](path#anchor)`, `[text](#anchor)`, images and reference definitions in
README.md and docs/**/*.md, outside fenced code. The path must name a file or folder of this
repository (not one beside it: users have only the repository), and an anchor into a markdown file
must be one of its headings as GitHub makes them (lower case, punctuation dropped, spaces to hyphens,
`-1`, `-2` ... for repeated headings) or an explicit `<a id>`/`<a name>`.

Citations: a markdown file named in the text or in code (`docs/kpis.md`, a section of
`operations.md`...) must exist too, beside the citing file, at the repository's root or in docs/ (how
the docs and the docstrings name them). A specification kept outside the repository is no reference
for its users: the project's own documentation of the contract is docs/contract.md, of the KPIs
docs/kpis.md, of the HTTP API docs/api.md.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PY_DIRS = ("alerts", "api", "bench", "db", "deploy", "history", "services", "stream", "tests")

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^\s)>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)")
ATX = re.compile(r"^ {0,3}#{1,6}\s+(.*?)(?:\s+#+)?\s*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
HTML_ANCHOR = re.compile(r"<a\s[^>]*\b(?:id|name)=\"([^\"]+)\"")
SCHEME = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)
# a markdown file named in text: `name.md`, `dir/name.md`, `../dir/name.md`, with an optional anchor
CITED = re.compile(r"(?<![\w./:-])((?:\.{1,2}/)*[\w-][\w./-]*?\.md)(#[\w-]+)?(?![\w-])")


def prose(md: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of a markdown file, fenced code blocks left out."""
    fence = ""
    for n, line in enumerate(md.read_text(encoding="utf-8").splitlines(), 1):
        if m := FENCE.match(line):
            if not fence:
                fence = m.group(1)[0] * len(m.group(1))
            elif m.group(1).startswith(fence):
                fence = ""
            continue
        if not fence:
            yield n, line


def slug(heading: str) -> str:
    """GitHub's anchor of a heading (before the -1, -2 of repeated headings)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # links and images: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"\1", text)  # _emphasis_ (not snake_case)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(md: Path) -> frozenset[str]:
    """Every anchor a link into `md` may name."""
    seen: Counter[str] = Counter()
    out = set()
    previous = ""
    for _, line in prose(md):
        out.update(HTML_ANCHOR.findall(line))
        heading = None
        if m := ATX.match(line):
            heading = m.group(1)
        elif SETEXT.match(line) and previous.strip() and not previous.lstrip().startswith(("|", "-", "*", ">")):
            heading = previous.strip()
        if heading is not None:
            base = slug(heading)
            out.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
        previous = line
    return frozenset(out)


@cache
def repository_files() -> frozenset[Path] | None:
    """The files of the repository (tracked, or new and not ignored); None outside a git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return frozenset((ROOT / p).resolve() for p in out.decode().split("\0") if p)


def in_repository(path: Path) -> bool:
    """`path` exists in the repository (a file of it, or a folder holding some), not merely on this disk."""
    path = path.resolve()
    if not path.is_relative_to(ROOT) or not path.exists():
        return False
    files = repository_files()
    if files is None or path == ROOT:
        return True
    return path in files if path.is_file() else any(f.is_relative_to(path) for f in files)


def where(path: Path) -> str:
    return str(path.relative_to(ROOT))


def link_problem(md: Path, target: str) -> str | None:
    """Why the link `target` in `md` does not resolve, or None."""
    if SCHEME.match(target):
        return None
    path, _, anchor = target.partition("#")
    dest = (md.parent / unquote(path)) if path else md
    if not in_repository(dest):
        return "no such file in the repository"
    if anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest.resolve()):
        return f"{where(dest.resolve())} has no heading #{anchor}"
    return None


def broken_links(md: Path) -> list[str]:
    out = []
    for n, line in prose(md):
        text = CODE_SPAN.sub("", line)
        targets = LINK.findall(text) + REFERENCE.findall(text)
        targets += re.findall(r"<a\s[^>]*\bhref=\"([^\"]+)\"", text)
        for target in targets:
            if why := link_problem(md, target):
                out.append(f"{where(md)}:{n}: ({target}): {why}")
    return out


def cited_problem(citing: Path, name: str, anchor: str | None) -> str | None:
    """Why a cited markdown file does not resolve, or None. It resolves beside the citing file, at the
    root or in docs/ (`kpis.md` in a docstring is docs/kpis.md), else wherever the repository has a file
    whose path ends with it (`results.md` in the README's row for bench/, a path joined in code)."""
    candidates = [base / name for base in (citing.parent, ROOT, ROOT / "docs") if in_repository(base / name)]
    if not candidates:
        tail = "/" + re.sub(r"^(?:\.{1,2}/)+", "", name)
        candidates = sorted(f for f in repository_files() or () if ("/" + where(f)).endswith(tail))
    if not candidates:
        return "no such file in the repository"
    if anchor and all(anchor[1:] not in anchors(c.resolve()) for c in candidates):
        return f"{where(candidates[0].resolve())} has no heading {anchor}"
    return None


def citations(path: Path, lines: Iterator[tuple[int, str]]) -> list[str]:
    out = []
    for n, line in lines:
        for m in CITED.finditer(line):
            if re.search(r"[a-z][a-z0-9+.-]*://\S*$", line[:m.start()]):
                continue  # part of a URL
            if why := cited_problem(path, m.group(1), m.group(2)):
                out.append(f"{where(path)}:{n}: {m.group(0)}: {why}")
    return out


def python_files() -> list[Path]:
    """The project's Python files, but this one (its self-check cites files that do not exist)."""
    return sorted(p for d in PY_DIRS for p in (ROOT / d).rglob("*.py")
                  if "__pycache__" not in p.parts and p != Path(__file__).resolve())


@pytest.mark.parametrize("md", DOCS, ids=where)
def test_relative_links_resolve(md: Path) -> None:
    broken = broken_links(md)
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("md", DOCS, ids=where)
def test_cited_markdown_files_exist(md: Path) -> None:
    dangling = citations(md, prose(md))
    assert not dangling, "\n".join(dangling)


def test_python_files_cite_markdown_files_that_exist() -> None:
    dangling = [d for py in python_files()
                for d in citations(py, enumerate(py.read_text(encoding="utf-8").splitlines(), 1))]
    assert not dangling, "\n".join(dangling)


def test_the_checks_see_what_they_should(tmp_path: Path) -> None:
    """Known cases: a check that finds nothing must be able to find something."""
    assert slug("State and recovery: why no Faust tables") == "state-and-recovery-why-no-faust-tables"
    assert slug("`SQM_READ_AUTH` and [keys](x.md)") == "sqm_read_auth-and-keys"
    assert slug("Interface changes (v0.1)") == "interface-changes-v01"
    page = tmp_path / "page.md"
    page.write_text("# A\n\n```bash\n# not a heading\n```\n\n# A\n<a id=\"here\"></a>\n\nSetext\n---\n",
                    encoding="utf-8")
    assert [line for _, line in prose(page)][:4] == ["# A", "", "", "# A"]
    assert anchors(page) == {"a", "a-1", "here", "setext"}
    ops = ROOT / "docs" / "operations.md"
    assert link_problem(ops, "#backfilling-the-history") is None
    assert link_problem(ops, "kpis.md#history-and-comparison") is None
    assert link_problem(ops, "deploy/") is None
    assert link_problem(ops, "kpis.md#no-such-heading") == "docs/kpis.md has no heading #no-such-heading"
    assert link_problem(ops, "../../shared/spec/kpis.md") == "no such file in the repository"  # beside it
    assert link_problem(ops, "../var/x.md") == "no such file in the repository"  # ignored by git
    assert link_problem(ops, "https://example.com/x.md") is None
    assert cited_problem(ops, "kpis.md", None) is None
    assert cited_problem(ops, "kpis.md", "#formulas") is None
    assert cited_problem(ops, "spec/kpis.md", None) == "no such file in the repository"
    assert cited_problem(ROOT / "bench" / "run.py", "results.md", None) is None
    assert cited_problem(ROOT / "README.md", "HISTORY.md", None) is None  # bench/HISTORY.md
    assert cited_problem(ops, "deploy/kubernetes.md", "#probes") is None
    assert cited_problem(ops, "deploy/kubernetes.md", "#nowhere") == "docs/deploy/kubernetes.md has no heading #nowhere"
    assert citations(ops, iter([(1, "see `spec/kpis.md` and https://example.com/spec/x.md")])) == [
        "docs/operations.md:1: spec/kpis.md: no such file in the repository"]
