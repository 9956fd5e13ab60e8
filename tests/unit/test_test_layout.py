"""The tests' own layout: shared helpers live in tests/support/, no test module or conftest is
imported by another module, every wait is scaled in one place, the unit layer opens no sockets."""

from __future__ import annotations

import ast
import socket
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]

TESTS = Path(__file__).resolve().parents[1]


def imported_test_modules(path: Path) -> list[str]:
    """The modules under tests/ that ``path`` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tests."):
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.startswith("tests.")]
    return found


def test_no_module_imports_a_test_module_or_a_conftest():
    offenders = [
        f"{path.relative_to(TESTS)} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for module in imported_test_modules(path)
        if module.rsplit(".", 1)[-1].startswith("test_") or module.endswith("conftest")
    ]
    assert offenders == [], "shared helpers belong in tests/support/"


def test_helpers_are_imported_only_from_tests_support():
    offenders = [
        f"{path.relative_to(TESTS)} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for module in imported_test_modules(path)
        if not module.startswith("tests.support.")
    ]
    assert offenders == []


def test_the_slowdown_factor_is_read_in_one_place():
    readers = sorted(
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if "TALKGATE_TEST_SLOWDOWN" in path.read_text() and path.name != Path(__file__).name
    )
    assert readers == ["support/timing.py"]


def test_every_module_of_the_unit_directory_is_marked_unit():
    unmarked = [
        path.name
        for path in sorted((TESTS / "unit").glob("test_*.py"))
        if "pytest.mark.unit" not in path.read_text()
    ]
    assert unmarked == []


def test_a_unit_test_cannot_open_a_socket():
    with socket.socket() as sock, pytest.raises(AssertionError, match="a unit test used the network"):
        sock.connect(("127.0.0.1", 9))
