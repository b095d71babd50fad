"""The README and docs/ stay true: relative links lead somewhere, and `train.py` commands name
config-group options that exist. Cheap checks, no command is run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import REPO

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^( *)```([^\n]*)\n(.*?)^\1```", re.S | re.M)
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CONF = REPO / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith("_"))


def page_id(path: Path) -> str:
    return str(path.relative_to(REPO))


def prose(text: str) -> str:
    """The text outside fenced blocks and inline code, where Markdown links live."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"`", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(m.group(1)) for m in re.finditer(r"^#{1,6} +(.+?) *#*$", text, re.M)}


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    return [(m.group(2).strip(), m.group(3)) for m in FENCE.finditer(text)]


def train_commands(text: str) -> list[str]:
    """Every `python ... train.py ...` or `examples/my_app.py` command in the page's fenced blocks,
    continuation lines joined, comments dropped."""
    commands = []
    for lang, body in fenced_blocks(text):
        if lang not in ("", "bash", "sh", "text"):
            continue
        for line in re.sub(r"\s*\\\n\s*", " ", body).splitlines():
            line = line.split(" # ", 1)[0].strip()
            if re.search(r"python\S* +(\S*/)?(train\.py|examples/my_app\.py)\b", line):
                commands.append(line)
    return commands


def group_choices(command: str) -> list[tuple[str, str]]:
    """The `group=option` overrides of a command whose key is a config group under conf/."""
    try:
        words = shlex.split(command)
    except ValueError:
        words = command.split()
    out = []
    for word in words:
        key, sep, value = word.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in GROUPS or value in ("", "null"):
            continue
        if "(" in value:  # a sweep range such as choice(step,cosine): the sweeper checks those
            continue
        out.extend((key, option) for option in value.split(","))
    return out


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_point_to_existing_files_and_headings(page: Path):
    broken = []
    for target in LINK.findall(prose(page.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page_id(page)}: " + "; ".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_commands_name_config_group_options_that_exist(page: Path):
    missing = [
        f"{command!r}: conf/{group}/{option}.yaml"
        for command in train_commands(page.read_text())
        for group, option in group_choices(command)
        if not (CONF / group / f"{option}.yaml").is_file()
    ]
    assert not missing, f"{page_id(page)}: " + "; ".join(missing)


def test_the_readme_has_train_commands_and_they_are_checked():
    commands = train_commands((REPO / "README.md").read_text())
    assert any(c.endswith("train.py") or "train.py " in c for c in commands)
    assert ("search", "lr") in [choice for c in commands for choice in group_choices(c)]


def test_the_checks_catch_what_they_are_for():
    assert group_choices("python train.py -m search=lr schedule=step,cosine 'x=choice(a,b)' +model.width=3") == [
        ("search", "lr"),
        ("schedule", "step"),
        ("schedule", "cosine"),
    ]
    assert ("schedule", "nosuch") in group_choices("python train.py schedule=nosuch")
    assert slug("Measured: one LR vs backbone/head (`x`)") == "measured-one-lr-vs-backbonehead-x"
    assert LINK.findall(prose("see [a](docs/a.md#b) and `[c](d)` and ![img](e.png)")) == ["docs/a.md#b"]
    assert train_commands("```bash\npython train.py \\\n    data=wine  # a comment\n```\n") == [
        "python train.py data=wine"
    ]


def test_every_docs_page_starts_with_a_one_line_summary():
    for page in sorted((REPO / "docs").glob("*.md")):
        lines = page.read_text().splitlines()
        assert lines[0].startswith("# "), page.name
        assert lines[1] == "" and lines[2].strip() and not lines[2].startswith(("#", "`" * 3)), page.name
        if len(lines) > 150:
            assert "Contents" in lines[3:6], f"{page.name}: {len(lines)} lines and no contents list"
