"""Every number a chapter's prose states is one the chapter printed: the check that keeps prose and outputs together.

A number in a markdown cell (a decimal, a percentage, a duration, a ratio such as 1.6x, millions as 54.4 M) must be
printed by the chapter's code cells, to the precision the prose gives it (the prose's 0.24 is a printed 0.238 rounded;
0.238 is not a printed 0.237), or be a number the book quotes from elsewhere, listed in QUOTED with where it comes
from. Prose keeps plain numbers, so that it reads the same in Colab and Jupyter, where MyST roles show raw.

Run on the committed outputs by tests/test_chapters.py and on nbval's own run of each chapter by book/conftest.py. On
nbval's run, a number printed by a cell whose output nbval does not compare (its last digits depend on the CPU, or on a
GAN's training, which other CPUs' rounding sends elsewhere) may differ from the prose by CPU_TOLERANCE of itself.
"""

import re

#: Numbers the prose quotes rather than measures, per chapter: the number as written, and where it comes from.
QUOTED = {
    "04-generator": {"6.1": "the section of the paper's appendix that gives the architecture",
                     **dict.fromkeys(("0.35", "35%", "0.48", "0.80"), "the paper's Table 2 (FCN-scores, batch size 10)")},
    "09-reproducing": {"1611.07004": "the paper's arXiv identifier"},
}

#: How far, relative to itself, a number printed by a cell nbval does not compare may move on another CPU.
CPU_TOLERANCE = 0.2

_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"
# a decimal, a percentage, or a whole number with a unit of time, size or ratio; not part of a name, version or path
_UNIT = re.compile(r"\s?(?:x|minutes?|min|hours?|seconds?|s|dB|MB|GB|KB)\b")
_IN_PROSE = re.compile(rf"(?<![\w.,/:-])({_NUMBER})(?:(%)|(?={_UNIT.pattern})|(?![\w.]))")
_MILLIONS = re.compile(r"\*{0,2}\s?(?:M|million)\b")
_PRINTED = re.compile(r"(?<![\w.])-?(\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?)(%?)")
# what is not prose: code, maths, HTML tags, link targets, and headings' section numbers
_NOT_PROSE = re.compile(r"```.*?```|`[^`]*`|\$\$.*?\$\$|\$[^$\n]*\$|<[^>]*>|\]\([^)]*\)|https?://\S+", re.DOTALL)


def stated(markdown: str) -> list[tuple[str, str]]:
    """The numbers stated in `markdown` that must be printed: (number as written, a few words around it)."""
    prose = _NOT_PROSE.sub(" ", markdown)
    found = []
    for match in _IN_PROSE.finditer(prose):
        number, percent = match.group(1), bool(match.group(2))
        if "." not in number and not percent and not _UNIT.match(prose, match.end()):
            continue  # a bare whole number (a count, a year, a size) is not checked
        context = " ".join(prose[max(match.start() - 40, 0):match.end() + 25].split())
        millions = " M" if _MILLIONS.match(prose, match.end()) else ""
        found.append((number + ("%" if percent else "") + millions, context))
    return found


def _values(text: str) -> list[float]:
    """Every number printed in `text`; a percentage also as the fraction it is."""
    values = []
    for number, percent in _PRINTED.findall(text):
        value = float(number.replace(",", ""))
        values.extend((value, value / 100) if percent else (value,))
    return values


def _decimals(number: str) -> int:
    return len(number.split(".")[1]) if "." in number else 0


def printed_as(number: str, values: list[float], relative: float = 0.0) -> bool:
    """Whether `number` (as the prose writes it) is one of `values` rounded to the prose's precision (or within
    `relative` of itself)."""
    percent, scale = number.endswith("%"), 1e6 if number.endswith(" M") else 1.0
    digits = number.removesuffix(" M").rstrip("%")
    value, half = scale * float(digits.replace(",", "")), scale * 0.5 * 10.0 ** -_decimals(digits)
    targets = [(value, max(half, relative * value))] + ([(value / 100, max(half, relative * value) / 100)] if percent else [])
    return any(abs(printed - target) <= tolerance * (1 + 1e-9) for printed in values for target, tolerance in targets)


def unprinted(chapter: str, markdown: str, printed: str, uncompared: str = "") -> list[str]:
    """The numbers of `chapter`'s prose that neither its outputs (`printed`) nor QUOTED have.

    `uncompared`: what the cells printed whose outputs nbval does not compare, matched within CPU_TOLERANCE.
    """
    values, loose, quoted = _values(printed), _values(uncompared), QUOTED.get(chapter, {})
    return [f"{number!r} in '... {context} ...'" for number, context in stated(markdown)
            if number not in quoted and not printed_as(number, values) and not printed_as(number, loose, CPU_TOLERANCE)]


def notebook_text(notebook) -> tuple[str, str]:
    """A notebook's prose (its markdown cells) and what its code cells printed (stdout, text and markdown outputs)."""
    markdown = "\n\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    return markdown, printed_text(output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs)


def printed_text(outputs) -> str:
    """What outputs printed or displayed as text: stdout, text/plain and text/markdown."""
    parts = []
    for output in outputs:
        if output.get("output_type") == "stream" and output.get("name") == "stdout":
            parts.append(output.get("text", ""))
        for kind in ("text/plain", "text/markdown"):
            parts.append(output.get("data", {}).get(kind, ""))
    return "\n".join(parts)
