"""The repository stands alone: nothing refers to files outside it, and user-facing text names
features, not the seed documents they came from. The one place that maps the seeds to feature
names is the provenance table in docs/protocol.md.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROVENANCE = "docs/protocol.md"
# Spelled in pieces so that this file does not match itself.
OUTSIDE_FILES = re.compile(
    "|".join(
        re.escape(name)
        for name in ("../" + "shared", "PROTOCOL" + ".md", "ARCHITECTURE" + ".md", "STYLE" + ".md")
    )
)
SEED_NUMBER = re.compile(r"\bseeds?\s+0\d\d\b", re.IGNORECASE)


def tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def provenance_rows(lines: list[str]) -> set[int]:
    """Line numbers of the table under docs/protocol.md's "Provenance" heading."""
    rows: set[int] = set()
    inside = False
    for number, line in enumerate(lines, 1):
        if line.startswith("#"):
            inside = "provenance" in line.lower()
        elif inside and line.startswith("|"):
            rows.add(number)
    return rows


def mentions(name: str) -> list[str]:
    try:
        lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        return []
    allowed = provenance_rows(lines) if name == PROVENANCE else set()
    found = []
    for number, line in enumerate(lines, 1):
        if OUTSIDE_FILES.search(line) or (SEED_NUMBER.search(line) and number not in allowed):
            found.append(f"{name}:{number}: {line.strip()[:120]}")
    return found


def offenders(names: list[str]) -> list[str]:
    return [hit for name in names if name != "tests/test_standalone.py" for hit in mentions(name)]


def test_the_readme_and_docs_name_features_and_cite_nothing_outside_the_repository():
    docs = [name for name in tracked_text_files() if name == "README.md" or name.startswith("docs/")]
    assert offenders(docs) == []


def test_the_provenance_table_maps_every_seed_to_a_feature():
    lines = (ROOT / PROVENANCE).read_text(encoding="utf-8").splitlines()
    table = "\n".join(lines[number - 1] for number in sorted(provenance_rows(lines)))
    for seed in ("000", "001", "002", "003", "004"):
        assert re.search(rf"\|\s*seed {seed}\s*\|", table, re.IGNORECASE), seed


def test_no_tracked_file_cites_a_seed_or_a_file_outside_the_repository():
    assert offenders(tracked_text_files()) == []


def test_the_readme_configuration_lists_every_setting():
    settings = (ROOT / "src" / "talkgate" / "settings.py").read_text(encoding="utf-8")
    names = set(re.findall(r'"((?:TALKGATE|ELEVENLABS|LIVEAVATAR)_[A-Z0-9_]+)"', settings))
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    configuration = readme[readme.index("## Configuration") : readme.index("## API")]
    assert names
    assert sorted(name for name in names if f"`{name}`" not in configuration) == []
