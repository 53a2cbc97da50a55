"""Every Python snippet in docs/ runs and prints what its comments say."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_snippets_run_and_print_what_they_claim(page):
    result = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "check_snippets.py"), str(page)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"ok: {page}" in result.stdout
