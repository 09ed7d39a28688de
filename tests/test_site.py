"""The built site, opened in headless Chromium with no network: every chapter page is complete.

Complete: its figures loaded, its equations typeset by the site's own MathJax, its widgets drawn
from their saved state (a progress bar as it finished), no error output, and no request for
anything outside the site (recorded in the page and in Chromium's network log).
"""

import functools
import html
import http.server
import json
import re
import subprocess
import sys
import threading
from pathlib import Path

import nbclient
import nbformat
import pytest
import yaml

pytestmark = pytest.mark.slow  # builds the site and drives Chromium

ROOT = Path(__file__).resolve().parents[1]

CHECK_PAGE = r"""<!doctype html><html><body><pre id="result">pending</pre><script>
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));
const VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]';
const drawn = view => view.previousElementSibling?.classList.contains("widget-subarea")
                      && view.previousElementSibling.getBoundingClientRect().height > 0;
function prose(doc) {  // the page's text outside code, where LaTeX left raw would show
  const walker = doc.createTreeWalker(doc.body, NodeFilter.SHOW_TEXT, {acceptNode: node =>
    node.parentElement.closest("pre, code, script, style, mjx-container") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT});
  let text = "";
  while (walker.nextNode()) text += walker.currentNode.data;
  return text;
}
async function check(page) {
  const frame = document.createElement("iframe");
  frame.style.width = "1200px";
  frame.style.height = "900px";
  frame.src = page;
  document.body.appendChild(frame);
  await new Promise(resolve => frame.onload = resolve);
  const win = frame.contentWindow, doc = frame.contentDocument;
  if (win.MathJax?.startup?.promise) await win.MathJax.startup.promise;
  const views = [...doc.querySelectorAll(VIEW)];
  for (let waited = 0; waited < 20000 && !views.every(drawn); waited += 100) await sleep(100);
  const images = [...doc.images];
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  const text = doc.body.innerText;
  const report = {page, title: doc.title, figures: doc.querySelectorAll(".cell_output img").length,
    colab: doc.querySelector('a[href*="colab.research.google.com"]')?.href,
    unloaded: images.filter(i => i.naturalWidth === 0).map(i => i.src),
    errors: doc.querySelectorAll(".output.traceback, .output.error, .output.stderr").length,
    text: text.length,
    outside: win.performance.getEntriesByType("resource").map(e => e.name)
      .filter(u => /^(https?|wss?):/.test(u) && !u.startsWith(location.origin + "/")),
    equations: doc.querySelectorAll(".math").length,
    untypeset: [...doc.querySelectorAll(".math")].filter(m => !m.querySelector("mjx-container")).length,
    tex_errors: doc.querySelectorAll("mjx-merror").length,
    raw_tex: (prose(doc).match(/\\[\[(]|\$\$/g) || []).length,
    widgets: views.length, blank_widgets: views.filter(v => !drawn(v)).length,
    counts: [...text.matchAll(/(\d+)\/(\d+)\s*[\[\u2501]/g)].map(m => [m[1], m[2]]),  // tqdm's "0/600 [", Keras' "1/1000 ━"
    fonts_failed: [...doc.fonts].filter(f => f.status === "error").map(f => f.family)};
  frame.remove();
  return report;
}
(async () => {
  const results = [];
  for (const page of PAGES) results.push(await check(page));
  document.getElementById("result").textContent = JSON.stringify(results);
})();
</script></body></html>"""


def _chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]


def _build(source: Path, folder: Path) -> Path:
    """The book in `source` built into `folder` with the project's _config.yml, from the notebooks' saved outputs."""
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    # the config's paths are the repository's, but this config file and `source` may be elsewhere
    sphinx = config["sphinx"]
    sphinx["local_extensions"] = {name: str(ROOT / path) for name, path in sphinx["local_extensions"].items()}
    for paths in ("html_extra_path", "html_static_path"):
        sphinx["config"][paths] = [str(ROOT / path) for path in sphinx["config"][paths]]
    (folder / "_config.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter-book")), "build", str(source), "--config", str(folder / "_config.yml"),
         "--path-output", str(folder), "--warningiserror", "--nitpick"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder / "_build" / "html"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The book built from the committed chapter outputs (no execution), with warnings as errors."""
    return _build(ROOT, tmp_path_factory.mktemp("site"))


def _requests_from(net_log: Path, origin: str) -> list[str]:
    """The URLs that pages of `origin` asked for, from a Chromium network log (--log-net-log)."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    params = [event.get("params", {}) for event in log["events"] if event["type"] == start]  # its end has none
    return [p["url"] for p in params if p.get("initiator") == origin]  # not Chromium's own (autofill, updates)


def _open_offline(chromium: str, site: Path, pages: list[str]) -> list[dict]:
    """Each page of `site` opened in headless `chromium` that can reach nothing but the site: what CHECK_PAGE reports."""
    (site / "check.html").write_text(CHECK_PAGE.replace("PAGES", json.dumps(pages)))
    missing = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def send_error(self, code, message=None, explain=None):
            if self.path != "/favicon.ico":  # asked for by the browser itself; the book has none
                missing.append((code, self.path))
            super().send_error(code, message, explain)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    net_log = site.parent / "chromium-net-log.json"
    try:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--log-net-log={net_log}",
             f"--user-data-dir={site.parent / 'chromium-profile'}", "--virtual-time-budget=120000", "--dump-dom",
             f"{origin}/check.html"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.S)
    assert found and found.group(1) != "pending", result.stdout[-2000:] + result.stderr[-2000:]
    reports = json.loads(html.unescape(found.group(1)))
    assert [r["page"] for r in reports] == pages
    assert not missing, f"the site lacks files its pages load: {missing}"
    outside = [url for url in _requests_from(net_log, origin) if not url.startswith(origin)]
    assert not outside, f"pages asked for files outside the site: {outside}"
    for report in reports:
        assert not report["outside"] and not report["unloaded"] and not report["fonts_failed"], report
        assert report["errors"] == report["untypeset"] == report["tex_errors"] == report["raw_tex"] == 0, report
        assert report["blank_widgets"] == 0, report
        assert all(done == total for done, total in report["counts"]), report  # no progress bar left unfinished
    return reports


def test_every_chapter_page_is_complete_offline(chromium, site):
    reports = _open_offline(chromium, site, [f"{chapter}.html" for chapter in _chapters()])
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    repository = config["repository"]["url"].removeprefix("https://github.com/")
    colab = f"{config['launch_buttons']['colab_url']}/github/{repository}/blob/{config['repository']['branch']}"
    for chapter, report in zip(_chapters(), reports):
        assert report["figures"] >= 1 and report["text"] > 2000, report
        assert report["colab"] == f"{colab}/{chapter}.ipynb", report  # the launch button opens this chapter
    # the checks were exercised: the chapters have equations and a widget
    assert sum(r["equations"] for r in reports) >= 1 and sum(r["widgets"] for r in reports) >= 1


def test_a_progress_bar_saved_as_a_widget_reads_as_finished(chromium, tmp_path):
    """A notebook's tqdm.auto bar (what p2p's progress bars are) reads 600/600 on the site, as it finished."""
    source = tmp_path / "book"
    source.mkdir()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# A progress bar"),
        nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor step in tqdm(range(600), desc='train'):\n    pass"),
    ])
    notebook.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbclient.NotebookClient(notebook, timeout=120).execute()
    (output,) = notebook.cells[1].outputs
    assert "0/600" in output.data["text/plain"]  # the text saved beside the widget is the bar as first drawn
    nbformat.write(notebook, source / "progress.ipynb")
    (source / "_toc.yml").write_text("format: jb-book\nroot: progress\n")
    (report,) = _open_offline(chromium, _build(source, tmp_path), ["progress.html"])
    assert report["widgets"] == 1 and report["counts"] == [["600", "600"]], report


def test_every_chapters_setup_cell_is_collapsed(site):
    for chapter in _chapters():
        page = (site / f"{chapter}.html").read_text()
        setup = page.index("find_spec")  # the setup cell's code: it installs p2p on Colab
        cell = page.rindex('<div class="cell ', 0, setup)  # the cell's own div, not its cell_input
        opening = page[cell:page.index(">", cell)]
        assert "tag_hide-cell" in opening and "<details" in page[cell:setup], f"{chapter}: the setup cell is not collapsed"


def test_the_implementations_table_is_a_table_of_text(site):
    """Chapter 9's five implementations, displayed from a cell as Markdown, reach the page as an HTML table."""
    page = (site / "book" / "09-reproducing.html").read_text()
    table = page[page.index("<table", page.index("Five implementations side by side")):]
    table = table[: table.index("</table>")]
    assert table.count("<tr") >= 10 and "TF tutorial" in table and "bottleneck" in table


MEASURE_PAGE = r"""<!doctype html><html><body><pre id="result">pending</pre><script>
const BLOCKS = [["input", "div.cell_input pre"], ["output", "div.cell_output pre"]];
async function measure(page) {
  const frame = document.createElement("iframe");
  frame.style.cssText = "width: WIDTHpx; height: 900px; border: 0";  // the window
  frame.src = page;
  document.body.appendChild(frame);
  await new Promise(resolve => frame.onload = resolve);
  const win = frame.contentWindow, doc = frame.contentDocument;
  await doc.fonts.ready;
  // A collapsed cell is a <details> (sphinx-togglebutton): opened here, so that its
  // blocks are measured as a reader who opens it sees them (in the admonition's
  // padding); a block still hidden (checkVisibility: display or content-visibility)
  // is reported as hidden rather than measured.
  for (const details of doc.querySelectorAll("details")) details.open = true;
  for (const hidden of doc.querySelectorAll(".toggle-hidden"))
    hidden.classList.remove("toggle-hidden");
  const blocks = [];
  for (const [kind, selector] of BLOCKS)
    for (const pre of doc.querySelectorAll(selector)) {
      const style = win.getComputedStyle(pre);
      const probe = doc.createElement("span");  // a character's width in its font
      probe.textContent = "0".repeat(100);
      pre.appendChild(probe);
      const char = probe.getBoundingClientRect().width / 100;
      probe.remove();
      const room = pre.clientWidth - parseFloat(style.paddingLeft)
                   - parseFloat(style.paddingRight);
      const longest = pre.textContent.split("\n")
        .reduce((a, b) => b.length > a.length ? b : a);
      const code = pre.closest("div.cell")?.querySelector(".cell_input")?.textContent;
      blocks.push({kind, shown: pre.checkVisibility(),
                   scroll: pre.scrollWidth, client: pre.clientWidth,
                   fits: Math.floor(room / char), longest: longest.slice(0, 80),
                   length: longest.length, getsource: /getsource\(/.test(code)});
    }
  frame.remove();
  return {page, blocks};
}
(async () => {
  const results = [];
  for (const page of PAGES) results.push(await measure(page));
  document.getElementById("result").textContent = JSON.stringify(results);
})();
</script></body></html>"""


def _measure_offline(chromium: str, site: Path, pages: list[str], width: int) -> list:
    """Each page of `site` in headless `chromium` (reaching nothing but the site) in a
    window `width` px wide: what MEASURE_PAGE reports of its code blocks."""
    page = MEASURE_PAGE.replace("PAGES", json.dumps(pages)).replace("WIDTH", str(width))
    (site / "measure.html").write_text(page)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
             f"--user-data-dir={site.parent / 'chromium-measure-profile'}",
             f"--window-size={width + 100},900",  # the iframe is the page's window
             "--run-all-compositor-stages-before-draw", "--virtual-time-budget=120000",
             "--dump-dom", f"http://127.0.0.1:{server.server_address[1]}/measure.html"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.S)
    output = result.stdout[-2000:] + result.stderr[-2000:]
    assert found and found.group(1) != "pending", output
    return json.loads(html.unescape(found.group(1)))


def _chapters_printing_source() -> list[str]:
    """The site's chapters that print p2p's source: those whose notebooks call
    inspect.getsource (searched afresh, so that a new chapter is covered), and any
    chapter named 06-* or 07-running*."""

    def prints_source(chapter):
        cells = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4).cells
        return any(c.cell_type == "code" and "getsource(" in c.source for c in cells)

    named = [c for c in _chapters() if Path(c).name.startswith(("06-", "07-running"))]
    return [c for c in _chapters() if c in named or prints_source(c)]


def test_printed_source_never_scrolls_sideways(chromium, site):
    """In a 1280 px window no block of printed source (the output of a cell that calls
    inspect.getsource) scrolls sideways, collapsed ones opened: the core is written at 88
    columns (tests/test_project.py) and the site's code font fits 95 (book/_css/code.css).
    """
    chapters = _chapters_printing_source()
    found = {Path(chapter).name[:3] for chapter in chapters}
    assert {"02-", "03-", "04-", "05-", "06-"} <= found, chapters  # the search works
    reports = _measure_offline(chromium, site, [f"{c}.html" for c in chapters], 1280)
    overflowing, measured = {}, 0
    for chapter, report in zip(chapters, reports):
        assert report["blocks"], f"{chapter}: no code blocks found"
        for block in report["blocks"]:
            hidden = f"{chapter}: a collapsed {block['kind']} block stayed hidden"
            assert block["shown"], hidden
            if not (block["kind"] == "output" and block["getsource"]):
                continue  # the chapters' own code and other outputs: not this check's
            measured += 1
            if block["scroll"] > block["client"] + 1:
                overflowing.setdefault(f"{chapter}.html", []).append(
                    f"  {block['length']:3} chars, {block['fits']} fit: {block['longest']!r}"
                )
    assert measured >= 10, measured  # the blocks of printed source were found
    if overflowing:
        pages = [f"{page}\n" + "\n".join(lines) for page, lines in overflowing.items()]
        message = "blocks scrolling sideways at 1280 px:\n" + "\n".join(pages)
        pytest.fail(message, pytrace=False)
