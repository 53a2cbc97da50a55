"""A griffe extension for the API pages: read Keras-style docstrings.

The project's docstrings follow the Keras style: `Example:` followed by an
unindented block of doctests. griffe's Google parser wants `Examples:` with
an indented block, and would otherwise render the doctests as Markdown
quotes. This rewrites the docstring text before it is parsed (nothing in the
package changes). Arguments described in one entry (`series, targets: as
for naive_split`) get one entry each, so that each shows its type, and a
`Call arguments:` section (griffe shows it as a note) becomes a list.
Loaded by mkdocs.yml (mkdocstrings options).
"""

import re

import griffe

_HEADER = re.compile(r"^(?P<indent>\s*)(?P<name>[A-Z][A-Za-z ]*):\s*$")
_EXAMPLE = re.compile(r"^(?P<indent>\s*)Examples?:\s*(?P<text>.*)$")


def keras_examples_to_google(text):
    """Rename `Example:` to `Examples:` and indent its block under it.

    Text on the header line (`Example: two lengths, ...`) becomes the first
    line of the section. The blank line under a bare `Example:` goes (griffe
    reads a header followed by a blank line as text).
    """
    lines, out, inside, indent, opened = text.splitlines(), [], False, "", False
    for line in lines:
        header, example = _HEADER.match(line), _EXAMPLE.match(line)
        if example and not inside:
            inside, indent = True, example["indent"]
            out.append(f"{indent}Examples:")
            if example["text"]:
                out.append(f"{indent}    {example['text']}")
            opened = not example["text"]
            continue
        if opened and not line.strip():
            continue
        opened = False
        if inside and header and header["indent"] == indent:
            inside = False  # the next section
        if inside and line.strip() and not line.startswith(indent + "    "):
            line = "    " + line
        out.append(line)
    return "\n".join(out)


def join_grouped_arguments(text):
    """`a, b,\n    c: text` (several arguments, wrapped) -> `a, b, c: text`."""
    return re.sub(r"^(\s+\w+(?:, \w+)*,)\n\s+(?=\w+(?:, \w+)*: )", r"\1 ", text, flags=re.M)


_ARGS = re.compile(r"^(?P<indent>\s*)(?:Args|Arguments|Parameters):\s*$")
_GROUP = re.compile(r"^(?P<indent>\s+)(?P<names>\w+(?:, \w+)+): (?P<text>.*)$")


def split_grouped_arguments(text):
    """`a, b: text` in `Args:` -> `a: text` and `b: text`, so that each
    argument gets its own entry, with the type of its annotation."""
    out, section = [], None  # section: the indent of the current `Args:` header
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        header = _ARGS.match(line)
        if header:
            section = header["indent"]
        elif section is not None and line.strip() and (
                len(line) - len(line.lstrip()) <= len(section)):
            section = None  # the next section
        group = _GROUP.match(line) if section is not None else None
        if group is None:
            out.append(line)
            i += 1
            continue
        block = [group["text"]]  # the entry's lines, the first without its names
        i += 1
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(group["indent"] + " ")):
            block.append(lines[i])
            i += 1
        while block and not block[-1].strip():  # blank lines belong after the entries
            i -= 1
            block.pop()
        for name in group["names"].split(", "):
            out.append(f"{group['indent']}{name}: {block[0]}")
            out.extend(block[1:])
    return "\n".join(out)


_CALL_ARGUMENTS = re.compile(r"^(?P<indent>\s*)Call arguments:\s*$")
_ITEM = re.compile(r"^(?P<indent>\s+)(?P<name>\*{0,2}\w+): ")


def call_arguments_to_list(text):
    """The items of a Keras-style `Call arguments:` section (which griffe
    shows as a note, as text) -> a Markdown list, one argument per item."""
    out, item_indent = [], None
    for line in text.splitlines():
        header = _CALL_ARGUMENTS.match(line)
        if header:
            item_indent = header["indent"] + "    "
        elif item_indent is not None and line.strip() and not line.startswith(item_indent):
            item_indent = None  # the next section
        item = _ITEM.match(line) if item_indent is not None else None
        if item and item["indent"] == item_indent:
            line = f"{item_indent}- `{item['name']}`: {line[item.end():]}"
        out.append(line)
    return "\n".join(out)


class ExampleSections(griffe.Extension):
    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            text = split_grouped_arguments(join_grouped_arguments(obj.docstring.value))
            text = call_arguments_to_list(text)
            obj.docstring.value = keras_examples_to_google(text)
