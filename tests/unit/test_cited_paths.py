"""Every file a comment, a docstring or a doc cites is in the repository, so a maintainer can follow it.

A comment that cites a file nobody can open (a contract kept outside the repository, a renamed module)
sends the reader nowhere. This reads the comments and docstrings of every Python file and the links of
every Markdown page, and fails on a cited path that does not exist.
"""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# A relative path ending in a file type the repository holds; not part of a URL or of a longer path.
CITED_PATH = re.compile(r"(?<![\w/.:-])((?:[\w.-]+/)*[\w-]+\.(?:md|py|json|jsonl|txt|toml|cfg|ini|yaml|yml|sh))\b")
# The user-facing contract lives in docs/ (policy.md, events.md, cli.md, simulate.md), not in a file outside.
OUTSIDE_CONTRACT = re.compile(r"\bCONTRACT(?:\.md|\b)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
# Where a bare name is looked up besides the citing file's own folder: ``stagepilot/origin.py`` and
# ``operator/whatif.py`` are written relative to the package, ``table.md`` relative to docs/.
BASES = (REPO, REPO / "lambdas", REPO / "lambdas" / "stagepilot", REPO / "docs")
_STATEMENT_START = {tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.NL, tokenize.ENCODING}


def python_files() -> list[Path]:
    roots = ("lambdas", "infra", "tests", "benchmarks")
    return sorted([REPO / "app.py", *(path for root in roots for path in (REPO / root).rglob("*.py"))])


def comments_and_docstrings(source: str) -> list[tuple[int, str]]:
    """``(line, text)`` of each comment and of each string that is a statement of its own (a docstring)."""
    found: list[tuple[int, str]] = []
    previous = tokenize.ENCODING
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT or (token.type == tokenize.STRING and previous in _STATEMENT_START):
            found.append((token.start[0], token.string))
        if token.type not in (tokenize.NL, tokenize.COMMENT):
            previous = token.type
    return found


def unresolved(cited: str, citing: Path) -> bool:
    return not any((base / cited).exists() for base in (*BASES, citing.parent))


def broken_citations(path: Path) -> list[str]:
    where = path.relative_to(REPO)
    broken = []
    for line, text in comments_and_docstrings(path.read_text(encoding="utf-8")):
        broken += [f"{where}:{line}: {m.group(1)}" for m in CITED_PATH.finditer(text) if unresolved(m.group(1), path)]
        broken += [f"{where}:{line}: {m.group(0)}" for m in OUTSIDE_CONTRACT.finditer(text)]
    return broken


def broken_links(page: Path) -> list[str]:
    where = page.relative_to(REPO)
    text = page.read_text(encoding="utf-8")
    broken = [f"{where}: {m.group(0)}" for m in OUTSIDE_CONTRACT.finditer(text)]
    for match in MARKDOWN_LINK.finditer(text):
        target = match.group(1).split("#", 1)[0]
        if target and ":" not in target and not (page.parent / target).exists():
            broken.append(f"{where}: {match.group(1)}")
    return broken


def test_comments_and_docstrings_cite_only_files_in_the_repository() -> None:
    files = python_files()
    assert len(files) > 150
    assert [broken for path in files for broken in broken_citations(path)] == []


def test_docs_link_only_to_files_in_the_repository() -> None:
    pages = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md"), *(REPO / "tests").rglob("*.md")])
    assert [broken for page in pages for broken in broken_links(page)] == []


def test_a_citation_of_a_missing_file_is_caught(tmp_path: Path) -> None:
    cited = tmp_path / "lambdas" / "stagepilot" / "cited.py"
    cited.parent.mkdir(parents=True)
    cited.write_text(
        '"""The flag event (CONTRACT §2), as docs/events.md says. CONTRACT: the kick."""\n'
        "x = 'docs/nowhere.md'  # a string in code is not a citation\n"
        "# see docs/gone.md and stagepilot/origin.py, https://example.com/a/b.py\n"
    )
    texts = comments_and_docstrings(cited.read_text())
    assert [text for _, text in texts if "nowhere" in text] == []  # strings in code are left alone
    missing = [m.group(1) for _, text in texts for m in CITED_PATH.finditer(text) if unresolved(m.group(1), cited)]
    assert missing == ["docs/gone.md"]
    assert [m.group(0) for _, text in texts for m in OUTSIDE_CONTRACT.finditer(text)] == ["CONTRACT", "CONTRACT"]
