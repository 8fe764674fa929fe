"""The README and docs/ stay true: links resolve, the README stays short and starts with the two
commands CI runs, docs/api.md has a heading for every operation of the OpenAPI document, and
docs/operations.md lists exactly the server's flags with their variables and defaults.

Plain file reads and imports: no server is started.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tornado_queue.config import OPTIONS
from tornado_queue.server import openapi
from tornado_queue.server.app import ROUTES

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

README_MAX_BYTES = 15 * 1024
README_START = """\
# tornado_queue

```sh
python3 dev.py serve    # run the server on http://127.0.0.1:8000 (first run sets up .venv itself)
python3 dev.py test     # run the whole test suite
```
"""

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)
"""A link with a scheme (https:, mailto:) leaves the repository: not checked here."""


def prose_lines(page: Path) -> list[str]:
    """The page's lines outside fenced code blocks (where `#` and `[x](y)` are not markdown)."""
    lines, fenced = [], False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def without_code_spans(line: str) -> str:
    return re.sub(r"`[^`]*`", "", line)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lowercase, punctuation other than `-` and
    `_` removed, each space a `-`."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor, with GitHub's `-1`, `-2` … for repeated ones."""
    seen: dict[str, int] = {}
    found = set()
    for line in prose_lines(page):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    return [
        target
        for line in prose_lines(page)
        for target in LINK.findall(without_code_spans(line))
        if not EXTERNAL.match(target)
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_resolves_to_a_file_and_heading(page: Path):
    broken = []
    for target in links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.is_file():
            broken.append(f"{target}: no file {destination}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: no heading with anchor #{anchor} in {destination.name}")
    assert not broken, "\n".join(broken)


def test_the_pages_link_somewhere():
    # Guards the link pattern itself: a regex that matched nothing would pass the test above.
    assert "docs/api.md" in links(README)
    assert "docs/dashboard.png" in links(README)


def test_the_readme_is_short_and_starts_with_the_two_commands():
    content = README.read_bytes()
    assert len(content) <= README_MAX_BYTES, f"README.md is {len(content)} bytes"
    assert content.decode("utf-8").startswith(README_START)


def test_docs_api_has_a_heading_for_every_operation_of_the_openapi_document():
    document = openapi.document(ROUTES)
    operations = {
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method in methods
        if method != "head"  # HEAD answers as GET; the GET section says so
    }
    headings = {
        line[len("### ") :].strip()
        for line in prose_lines(DOCS / "api.md")
        if line.startswith("### ")
    }
    missing = sorted(operations - headings)
    assert not missing, "docs/api.md has no '### METHOD /path' heading for: " + ", ".join(missing)


EMPTY_DEFAULT = "none"
"""How the configuration table shows a default that is empty ("" or an empty tuple)."""


def shown_default(default: object) -> str:
    """The default as the table writes it: `str(default)`, a tuple joined by ",", and an empty
    value as `EMPTY_DEFAULT`."""
    text = ",".join(default) if isinstance(default, tuple) else str(default)
    return text or EMPTY_DEFAULT


def configuration_rows() -> dict[str, tuple[str, str]]:
    """The rows of docs/operations.md's table whose first cell is a flag: flag -> (env, default),
    each cell without its backticks."""
    rows = {}
    for line in prose_lines(DOCS / "operations.md"):
        cells = [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and re.fullmatch(r"--[a-z][a-z-]*", cells[0]):
            assert cells[0] not in rows, f"{cells[0]} is listed twice"
            rows[cells[0]] = (cells[1], cells[2])
    return rows


def test_the_configuration_table_lists_every_flag_with_its_variable_and_default():
    rows = configuration_rows()
    assert set(rows) == {option.flag for option in OPTIONS}
    for option in OPTIONS:
        assert rows[option.flag] == (option.env, shown_default(option.default)), option.flag


FORBIDDEN = {
    r"\bsessions?\b": "says how the project was made ('session'); sessionStorage is fine",
    r"\b(this|the) issue\b": "says how the project was made ('this issue')",
    r"\.\./shared": "links outside the repository (../shared)",
}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_page_talks_about_how_it_was_made(page: Path):
    text = page.read_text(encoding="utf-8")
    found = [
        f"{why}: {match.group(0)!r}"
        for pattern, why in FORBIDDEN.items()
        for match in re.finditer(pattern, text, re.IGNORECASE)
    ]
    assert not found, "\n".join(found)
