"""Run the Python snippets of the docs and check the outputs they claim.

Usage (from the repository root):

    .venv/bin/python docs/check_snippets.py [docs/page.md ...]

Every ```python block of a page runs, in order, in one namespace per page
(so a page reads top to bottom like a session). A top-level line of the form

    print(a, b)  # expected output

is checked: what it prints must equal the comment, whitespace-insensitively,
where `...` in the comment matches anything. A block fenced as ```python jax
runs on its own in a fresh process under KERAS_BACKEND=jax; ```python no-run
blocks are skipped. Exits non-zero on the first failure.
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.M | re.S)
PRINT = re.compile(r"^print\((?P<args>.*)\)\s+#\s(?P<expected>.+)$")


def _matches(got, expected):
    got, expected = " ".join(got.split()), " ".join(expected.split())
    pattern = ".*".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, got) is not None


def _checked_print(expected, *args):
    got = " ".join(str(a) for a in args)
    print(got)
    if not _matches(got, expected):
        raise AssertionError(f"printed:\n  {got}\nbut the docs say:\n  {expected}")


def _rewrite(source):
    lines = []
    for line in source.splitlines():
        match = PRINT.match(line)
        if match:
            line = f"_checked_print({match['expected']!r}, {match['args']})"
        lines.append(line)
    return "\n".join(lines)


def _run_in_jax(source):
    script = "\n".join([
        "import sys",
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "from check_snippets import _checked_print",
        _rewrite(source),
    ])
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", script], env=env, text=True,
                          capture_output=True)
    print(done.stdout, end="")
    if done.returncode:
        raise RuntimeError(f"the JAX block failed:\n{done.stderr[-3000:]}")


def check(path):
    text = Path(path).read_text()
    namespace = {"_checked_print": _checked_print, "__name__": "__docs__"}
    blocks = [(m[1].strip(), m[2]) for m in BLOCK.finditer(text)]
    started = time.perf_counter()
    for number, (info, source) in enumerate(blocks, 1):
        if info == "no-run":
            continue
        line = text[: text.index(source)].count("\n") + 1
        try:
            if info == "jax":
                _run_in_jax(source)
                continue
            exec(compile(_rewrite(source), f"{path}:{line}", "exec"), namespace)
        except Exception:
            print(f"FAILED: {path}, block {number} (line {line})", file=sys.stderr)
            raise
    print(f"ok: {path}, {len(blocks)} blocks in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    pages = sys.argv[1:] or sorted(str(p) for p in Path(__file__).parent.glob("*.md"))
    for page in pages:
        check(page)
