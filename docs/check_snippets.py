"""Run the Python snippets of the docs and check the outputs they claim.

Usage (from the repository root):

    .venv/bin/python docs/check_snippets.py [docs/page.md ...]

Every ```python block of a page runs, in order, in one namespace per page
(so a page reads top to bottom like a session). A block fenced as
```python jax runs on its own in a fresh process under KERAS_BACKEND=jax;
```python no-run blocks are skipped. Exits non-zero on the first failure.

A top-level statement whose last line ends in one of these comments is
checked (comparisons are whitespace-insensitive, and `...` in the expected
text matches anything):

    print(a, b)  # expected output

        What it prints must equal the comment.

    kt.naive_split(np.zeros(100), 10.0)  # raises TypeError: `timesteps` must be ...

        The statement (it may span several lines: the comment goes on the
        last one) must raise that exception type, or a subclass, with a
        message that matches; it fails if nothing is raised. The type is
        any name the block could write (`ValueError`, `kt.SomeError`).

    plan = kt.as_is(series)  # warns UserWarning: Series of 1000 steps ...

        The statement runs recording warnings; one of them must be of that
        category (or a subclass) with a matching message. What the
        statement assigns is assigned as usual.

`output below` in place of the expected text says that the text is the next
```text block of the page, right after the python block (one ```text block
per such line, in order): for what it prints over several lines,

    ```python
    print(suggestion)  # output below
    ```

    ```text
    suggested timesteps: 11
    rule: cycle: ...
    ```

and, for `# raises ValueError: output below` (or `warns`), the block reads
`ValueError: message`. The block is compared line by line (whitespace
collapsed within a line, blank lines ignored).

docs/hooks.py renders these lines on the site: a `raises` or `warns` line,
a print with an `output below`, and a print line longer than
LONG_LINE characters lose their comment, and the block is followed by an
output block showing what they print, raise or warn, in order.
"""

import ast
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import time
import tokenize
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

BLOCK = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.M | re.S)
# A ```text block right after the end of a python block (blank lines between).
TEXT_BLOCK = re.compile(r"[ \t]*\n(?:[ \t]*\n)*```text[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
FORM = re.compile(r"(?P<kind>raises|warns) (?P<type>[A-Za-z_][\w.]*)(?::\s*(?P<expected>.*))?")
OUTPUT_BELOW = "output below"
LONG_LINE = 88  # a checked print line longer than this shows its output below it


@dataclass
class Check:
    """A checked statement of a block: `kind` "print", "raises" or "warns",
    its lines `start`..`line` in the block (1-based; the comment is on
    `line`, from `column`), the expected text or message pattern, the
    exception or warning class as written, and whether the text comes from
    a ```text block (`below`)."""
    kind: str
    start: int
    line: int
    column: int
    expected: str
    type: str = ""
    below: bool = False


@dataclass
class Block:
    """A ```python block: its fence's `info` ("", "jax", "no-run"), its
    source, the page line of its first code line, its span in the page
    (`start`..`end`, including the ```text blocks its checks use) and its
    checks."""
    info: str
    source: str
    line: int
    start: int
    end: int
    checks: list = field(default_factory=list)


def _comments(source):
    """`{line: (column, text)}` of the comments of `source`."""
    found = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            found[token.start[0]] = (token.start[1], token.string[1:].strip())
    return found


def _is_print(node):
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            and isinstance(node.value.func, ast.Name) and node.value.func.id == "print")


def checks_of(source, filename="<block>"):
    """The checked statements of a block's source, in order."""
    tree = ast.parse(source, filename)
    comments = _comments(source)
    last = {}  # statements sharing a line (`a = 1; print(a)`): the last one
    for node in tree.body:
        last[node.end_lineno] = node
    checks = []
    for line, node in last.items():
        if line not in comments:
            continue
        column, text = comments[line]
        form = FORM.fullmatch(text)
        if form:
            checks.append(Check(form["kind"], node.lineno, line, column,
                                (form["expected"] or "...").strip(), form["type"]))
        elif _is_print(node) and text:
            checks.append(Check("print", node.lineno, line, column, text))
    return checks


def page_blocks(text, path="<page>"):
    """The ```python blocks of a page's Markdown, with their checks, the
    texts of `output below` taken from the ```text blocks that follow."""
    blocks = []
    for match in BLOCK.finditer(text):
        info, source = match[1].strip(), match[2]
        line = text.count("\n", 0, match.start(2)) + 1
        block = Block(info, source, line, match.start(), match.end())
        if info != "no-run":
            block.checks = checks_of(source, f"{path}:{line}")
        for check in block.checks:
            if check.expected != OUTPUT_BELOW:
                continue
            below = TEXT_BLOCK.match(text, block.end)
            if below is None:
                raise ValueError(
                    f"{path}:{line + check.line - 1}: `{OUTPUT_BELOW}`, but no ```text "
                    "block follows the python block")
            check.expected, check.below, block.end = below[1], True, below.end()
        blocks.append(block)
    return blocks


def shown_output(check):
    """The text an output block shows for `check`."""
    if check.kind == "print" or check.below:
        return check.expected.rstrip("\n")
    return f"{check.type.rsplit('.', 1)[-1]}: {check.expected}"


def _pattern(expected):
    return ".*".join(re.escape(part) for part in expected.split("..."))


def _matches(got, expected):
    """`got` equals `expected`, all whitespace collapsed, `...` matching anything."""
    got, expected = " ".join(got.split()), " ".join(expected.split())
    return re.fullmatch(_pattern(expected), got, re.S) is not None


def _matches_lines(got, expected):
    """Line by line: whitespace collapsed within each line, blank lines
    ignored, `...` matching anything (several lines, too)."""
    def lines(text):
        return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
    return re.fullmatch(_pattern(lines(expected)), lines(got), re.S) is not None


def _indented(text):
    return textwrap.indent(text.rstrip("\n"), "  ")


def _checked_print(expected, below, *args, **kwargs):
    buffer = io.StringIO()
    print(*args, **kwargs, file=buffer)
    got = buffer.getvalue().removesuffix("\n")
    print(got)
    if not (_matches_lines if below else _matches)(got, expected):
        raise AssertionError(f"printed:\n{_indented(got)}\nbut the docs say:\n{_indented(expected)}")


def _expected_message(kind, expected, below):
    """The message pattern of a `raises`/`warns` check: a ```text block
    reads `Kind: message`."""
    if not below:
        return expected
    name = kind.__name__
    head, _, rest = expected.strip().partition(":")
    if head.strip() != name:
        raise AssertionError(f"the ```text block of a `{name}` check must start with "
                             f"`{name}:`; it reads:\n  {expected}")
    return rest


class _Expect:
    """`with _Expect("raises", ValueError, "pattern", below): statement`."""

    def __init__(self, form, kind, expected, below):
        self.form, self.kind, self.below = form, kind, below
        self.expected = _expected_message(kind, expected, below)
        self.written = expected if below else f"{kind.__name__}: {expected}"

    def __enter__(self):
        if self.form == "warns":
            self._recorder = warnings.catch_warnings(record=True)
            self.caught = self._recorder.__enter__()
            warnings.simplefilter("always")
        return self

    def _match(self, message):
        return (_matches_lines if self.below else _matches)(message, self.expected)

    def __exit__(self, error_type, error, traceback):
        if self.form == "warns":
            self._recorder.__exit__(error_type, error, traceback)
            if error is not None:
                return False
            matching = [w for w in self.caught
                        if issubclass(w.category, self.kind) and self._match(str(w.message))]
            if not matching:
                messages = [f"{w.category.__name__}: {w.message}" for w in self.caught]
                raise AssertionError(
                    f"expected a warning {self.written}\nbut got "
                    + ("\n  ".join(["", *messages]) if messages else "no warning"))
            print(f"{matching[0].category.__name__}: {matching[0].message}")
            return False
        if error is None:
            raise AssertionError(f"expected {self.written}\nbut nothing was raised")
        got = f"{type(error).__name__}: {error}"
        if not isinstance(error, self.kind) or not self._match(str(error)):
            raise AssertionError(f"raised:\n{_indented(got)}\nbut the docs say:\n"
                                 f"{_indented(self.written)}") from error
        print(got)
        return True  # the error was expected: the block goes on


def _namespace():
    return {"_checked_print": _checked_print, "_Expect": _Expect, "__name__": "__docs__"}


def _instrumented(source, checks, filename):
    """The code object of a block whose checked statements check themselves."""
    tree = ast.parse(source, filename)
    by_line = {check.line: check for check in checks}
    last = {node.end_lineno: node for node in tree.body}  # as in checks_of
    body = []
    for node in tree.body:
        check = by_line.get(node.end_lineno)
        if check is None or last[node.end_lineno] is not node:
            body.append(node)
        elif check.kind == "print":
            call = node.value
            body.append(ast.copy_location(ast.Expr(ast.Call(
                ast.Name("_checked_print", ast.Load()),
                [ast.Constant(check.expected), ast.Constant(check.below), *call.args],
                call.keywords)), node))
        else:
            kind = ast.parse(check.type, mode="eval").body
            expect = ast.Call(ast.Name("_Expect", ast.Load()),
                              [ast.Constant(check.kind), kind, ast.Constant(check.expected),
                               ast.Constant(check.below)], [])
            body.append(ast.copy_location(ast.With([ast.withitem(expect)], [node]), node))
    tree.body = body
    ast.fix_missing_locations(tree)
    return compile(tree, filename, "exec")


def _run_jax(payload):
    """Runs in the JAX process: one block, in a namespace of its own."""
    checks = [Check(**check) for check in payload["checks"]]
    exec(_instrumented(payload["source"], checks, payload["filename"]), _namespace())


def _run_in_jax(block, filename):
    script = "\n".join([
        "import json, sys",
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
        "from check_snippets import _run_jax",
        "_run_jax(json.load(sys.stdin))",
    ])
    payload = {"source": block.source, "filename": filename,
               "checks": [asdict(check) for check in block.checks]}
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run([sys.executable, "-c", script], env=env, text=True,
                          input=json.dumps(payload), capture_output=True)
    print(done.stdout, end="")
    if done.returncode:
        raise RuntimeError(f"the JAX block failed:\n{done.stderr[-3000:]}")


def check(path):
    text = Path(path).read_text()
    namespace = _namespace()
    blocks = page_blocks(text, path)
    started = time.perf_counter()
    for number, block in enumerate(blocks, 1):
        if block.info == "no-run":
            continue
        filename = f"{path}:{block.line}"
        try:
            if block.info == "jax":
                _run_in_jax(block, filename)
                continue
            exec(_instrumented(block.source, block.checks, filename), namespace)
        except Exception:
            print(f"FAILED: {path}, block {number} (line {block.line})", file=sys.stderr)
            raise
    print(f"ok: {path}, {len(blocks)} blocks in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    pages = sys.argv[1:] or sorted(str(p) for p in Path(__file__).parent.glob("*.md"))
    for page in pages:
        check(page)
