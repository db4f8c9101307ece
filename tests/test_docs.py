"""The README stays short and the docs point at things that exist: files, configs, launchers."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 220

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
LAUNCH = re.compile(r"python -m launch\.(\w+)")
CONFIG = re.compile(r"\bconfigs/(\w+\.py)\b")  # in a --config= flag or a table's command cell
SCRIPT = re.compile(r"python (benchmarks/\w+\.py)")


def _prose(text: str) -> str:
    """The text outside code: a link inside a code block or span is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def relative_links(text: str) -> list[str]:
    """Targets of markdown links and images that point into the repository."""
    out = []
    for target in LINK.findall(_prose(text)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:) or an anchor on the same page
        out.append(target.split("#", 1)[0])
    return out


def test_link_parser_finds_links_and_skips_urls_anchors_and_code():
    text = (
        "[a](docs/x.md) ![f](figures/y.png) [b](https://e.org/z) [c](#top) [d](z.md#sec)\n"
        "`[e](not/a/link.md)`\n```\n[f](in/code.md)\n```\n"
    )
    assert relative_links(text) == ["docs/x.md", "figures/y.png", "z.md"]


def test_readme_is_short():
    n = len(README.read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md: expected <= {README_MAX_LINES} lines, got {n}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    missing = [t for t in relative_links(page.read_text()) if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)}: links to missing files {missing}"


def named_files(text: str) -> list[str]:
    """Files the commands in ``text`` name: config files, launchers, benchmark scripts. Upper-case names
    (``configs/NAME.py``) are placeholders of the grammar, not files."""
    paths = [f"configs/{c}" for c in CONFIG.findall(text)]
    paths += [f"launch/{m}.py" for m in LAUNCH.findall(text)]
    paths += SCRIPT.findall(text)
    return [p for p in paths if not Path(p).stem.isupper()]


def test_command_parser_finds_configs_launchers_and_scripts():
    text = (
        "python -m launch.run --config=configs/gmm.py:cpu --workdir=D\n"
        "python -m launch.sweep --config=configs/kde.py --workdir=D\n"
        "python benchmarks/paper_path.py --workdir=D; python -m launch.run --config=configs/NAME.py"
    )
    assert named_files(text) == [
        "configs/gmm.py",
        "configs/kde.py",
        "launch/run.py",
        "launch/sweep.py",
        "launch/run.py",
        "benchmarks/paper_path.py",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_commands_name_existing_configs_launchers_and_scripts(page):
    missing = sorted({p for p in named_files(page.read_text()) if not (ROOT / p).is_file()})
    assert not missing, f"{page.relative_to(ROOT)}: commands name missing files {missing}"


def test_docs_exist():
    assert len(PAGES) > 1, "docs/*.md: expected the documentation pages, found none"
