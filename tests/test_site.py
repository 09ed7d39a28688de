"""The built site, opened in headless Chromium: every chapter page shows its figures and no error output."""

import functools
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # builds the site and drives Chromium

ROOT = Path(__file__).resolve().parents[1]

CHECK_PAGE = """<!doctype html><html><body><pre id="result">pending</pre><script>
async function check(page) {
  const frame = document.createElement("iframe");
  frame.src = page;
  document.body.appendChild(frame);
  await new Promise(resolve => frame.onload = resolve);
  const doc = frame.contentDocument;
  const images = [...doc.querySelectorAll(".cell_output img")];
  await Promise.all(images.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return {page, title: doc.title, images: images.length, loaded: images.filter(i => i.naturalWidth > 0).length,
          errors: doc.querySelectorAll(".output.traceback, .output.error, .output.stderr").length,
          text: doc.body.innerText.length};
}
(async () => {
  const results = [];
  for (const page of PAGES) results.push(await check(page));
  document.getElementById("result").textContent = JSON.stringify(results);
})();
</script></body></html>"""


def _chapters():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [chapter["file"] for chapter in toc["chapters"]]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The book built from the committed chapter outputs (no execution), with warnings as errors."""
    folder = tmp_path_factory.mktemp("site")
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    (folder / "_config.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [str(Path(sys.executable).with_name("jupyter-book")), "build", str(ROOT), "--config", str(folder / "_config.yml"),
         "--path-output", str(folder), "--warningiserror", "--nitpick"],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return folder / "_build" / "html"


def test_every_chapter_page_renders_its_figures(site):
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (`make test` installs it: apt-get install chromium)"
    pages = [f"{chapter}.html" for chapter in _chapters()]
    (site / "check.html").write_text(CHECK_PAGE.replace("PAGES", json.dumps(pages)))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={site.parent / 'chromium-profile'}", "--virtual-time-budget=30000", "--dump-dom",
             f"http://127.0.0.1:{server.server_address[1]}/check.html"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        server.shutdown()
        server.server_close()
    found = re.search(r'<pre id="result">(.*?)</pre>', result.stdout, re.S)
    assert found and found.group(1) != "pending", result.stdout[-2000:] + result.stderr[-2000:]
    reports = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert [r["page"] for r in reports] == pages
    for report in reports:
        assert report["images"] >= 1 and report["loaded"] == report["images"], report
        assert report["errors"] == 0, report
        assert report["text"] > 2000, report
