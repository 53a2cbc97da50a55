"""A griffe extension for the API page: read Keras-style `Example:` sections.

The project's docstrings follow the Keras style: `Example:` followed by an
unindented block of doctests. griffe's Google parser wants `Examples:` with
an indented block, and would otherwise render the doctests as Markdown
quotes. This rewrites the docstring text before it is parsed (nothing in the
package changes). Loaded by mkdocs.yml (mkdocstrings options).
"""

import re

import griffe

_HEADER = re.compile(r"^(?P<indent>\s*)(?P<name>[A-Z][A-Za-z ]*):\s*$")
_EXAMPLE = re.compile(r"^(?P<indent>\s*)Examples?:\s*(?P<text>.*)$")


def keras_examples_to_google(text):
    """Rename `Example:` to `Examples:` and indent its block under it.

    Text on the header line (`Example: two lengths, ...`) becomes the first
    line of the section.
    """
    lines, out, inside, indent = text.splitlines(), [], False, ""
    for line in lines:
        header, example = _HEADER.match(line), _EXAMPLE.match(line)
        if example and not inside:
            inside, indent = True, example["indent"]
            out.append(f"{indent}Examples:")
            if example["text"]:
                out.append(f"{indent}    {example['text']}")
            continue
        if inside and header and header["indent"] == indent:
            inside = False  # the next section
        if inside and line.strip() and not line.startswith(indent + "    "):
            line = "    " + line
        out.append(line)
    return "\n".join(out)


def join_grouped_arguments(text):
    """`a, b,\n    c: text` (several arguments, wrapped) -> `a, b, c: text`."""
    return re.sub(r"^(\s+\w+(?:, \w+)*,)\n\s+(?=\w+(?:, \w+)*: )", r"\1 ", text, flags=re.M)


class ExampleSections(griffe.Extension):
    def on_object(self, *, obj, **kwargs):
        if obj.docstring is not None:
            text = join_grouped_arguments(obj.docstring.value)
            obj.docstring.value = keras_examples_to_google(text)
