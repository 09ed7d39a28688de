"""The chapters' structure, read from the committed notebooks.

What each chapter must show is checked on nbval's own run of it (`pytest --nbval book/`, see book/conftest.py); the
parameters a reader changes are run by the tests of what they call: train_book_run (tests/test_bookruns.py), the
ablations (tests/test_ablate.py), the troubleshooting runs (tests/test_troubleshooting.py) and a released dataset
(tests/test_chapter_datasets.py, chapter 3 with `dataset = "facades"` at the tiny preset).
"""

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest
import yaml

BOOK = Path(__file__).resolve().parents[1] / "book"
CHAPTERS = sorted(BOOK.glob("*.ipynb"))
_spec = importlib.util.spec_from_file_location("prose_numbers", BOOK / "prose_numbers.py")
prose_numbers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(prose_numbers)


def test_every_chapter_in_the_toc_has_checks():
    toc = yaml.safe_load((BOOK.parent / "_toc.yml").read_text())
    listed = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert sorted(Path(f).name for f in listed) == [c.stem for c in CHAPTERS]
    checks = (BOOK / "conftest.py").read_text()
    assert all(f'"{c.stem}": ' in checks for c in CHAPTERS), "each chapter has its checks in book/conftest.py CHECKS"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_structure(chapter):
    notebook = nbformat.read(chapter, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    config = yaml.safe_load((BOOK.parent / "_config.yml").read_text())
    assert f'REPOSITORY = "{config["repository"]["url"]}"' in code[0].source, "setup cell: install p2p from the repository"
    assert "hide-cell" in code[0].metadata.get("tags", []), "the setup cell is collapsed on the site (it still runs)"
    assert "parameters" in code[1].metadata.get("tags", []) and code[1].source.startswith('preset = "')
    assert all(c.execution_count for c in code), "chapters are committed executed"
    markdown = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "**In this chapter**" in markdown and "## Summary" in markdown and "## Exercises" in markdown
    assert not re.search(r"layers\.Conv2D(Transpose)?\(|GradientTape\(\)", "\n".join(c.source for c in code))


def test_the_introduction_lists_every_page_in_the_order_of_the_toc():
    toc = yaml.safe_load((BOOK.parent / "_toc.yml").read_text())
    pages = [BOOK.parent / f"{c['file']}.ipynb" for part in toc["parts"] for c in part["chapters"]]
    titles = [nbformat.read(p, as_version=4).cells[0].source.splitlines()[0] for p in pages]
    names = [title.removeprefix("# ").removeprefix("Appendix: ").split(":")[0] for title in titles]
    introduction = nbformat.read(BOOK / "01-introduction.ipynb", as_version=4)
    listing = next(c.source for c in introduction.cells if c.source.startswith("## The chapters"))
    positions = [listing.find(f"**{name}**") for name in names]
    assert -1 not in positions, [name for name, at in zip(names, positions) if at == -1]
    assert positions == sorted(positions), "chapter 1 lists the pages in the order of the table of contents"


#: The core that trains pix2pix, whole: what chapters 2-7 print (p2p.runtime is the machinery beneath it).
TRAINING_CORE = ("data", "losses", "models", "pix2pix", "optimizers", "inference", "config", "training", "runs")


def test_chapters_2_to_7_print_every_line_of_the_core_that_trains():
    printed = "".join(
        output.get("text", "")
        for chapter in ("02-data", "03-objective", "04-generator", "05-patchgan", "06-train-step",
                        "07-running")
        for cell in nbformat.read(BOOK / f"{chapter}.ipynb", as_version=4).cells if cell.cell_type == "code"
        for output in cell.outputs if output.output_type == "stream"
    )
    for module in TRAINING_CORE:
        source = (BOOK.parent / "p2p" / f"{module}.py").read_text()
        assert source.rstrip("\n") in printed, f"p2p/{module}.py, as it is now, is not printed whole by chapters 2-7"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda p: p.stem)
def test_every_number_in_the_prose_is_printed_by_the_committed_outputs(chapter):
    markdown, printed = prose_numbers.notebook_text(nbformat.read(chapter, as_version=4))
    unprinted = prose_numbers.unprinted(chapter.stem, markdown, printed)
    assert not unprinted, "numbers in the prose that no output prints:\n" + "\n".join(unprinted)


def test_the_prose_number_check_finds_what_it_must():
    printed = "sharpness 0.237, colour spread 0.131; windows darker in 78% of them; 30,000 steps in 26 min; 1.57x"
    found = lambda markdown: prose_numbers.unprinted("none", markdown, printed)
    assert found("sharpness 0.24 (rounded), 0.237 exactly, 78% of them, 0.8 of them, 1.6x faster") == []
    assert [problem.split("'")[1] for problem in found("0.238, 0.14, 79%, 27 minutes, 1.5x; in code `0.999`, 3 steps")] \
        == ["0.238", "0.14", "79%", "27", "1.5"]
    assert prose_numbers.stated("Table 2, 256x256, 12 classes, arXiv v3, in $0.5$") == []
    # printed by a cell nbval does not compare: within CPU_TOLERANCE of itself on nbval's run
    assert prose_numbers.unprinted("none", "0.238 and 0.40", printed, uncompared="0.25") == ["'0.40' in '... 0.238 and 0.40 ...'"]
