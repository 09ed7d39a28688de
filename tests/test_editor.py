"""The Play page's in-browser facade editor: the export of the generator, then the page in headless Chromium.

The browser tests serve the editor folder with the book run exported into it from a loopback
server and open a check page that drives the editor: its label maps must equal
`p2p.lab.facades.label_map`, its photos (dropout off) the Python generator's, within 2/255.
"""

import base64
import dataclasses
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest

from p2p import Generator, data
from p2p.__main__ import main
from p2p.inference import translate
from p2p.lab import bookruns, facades
from p2p.lab.export import export_generator

ROOT = Path(__file__).resolve().parents[1]
EDITOR = ROOT / "book" / "_static" / "editor"

# Layouts drawn by both sides: the editor's defaults, then shop fronts, balconies, blinds, margins and roofs.
LAYOUTS = [
    facades.Facade(),
    facades.Facade(floors=5, windows_per_floor=4, shop=True, balconies=(2, 4), margin=0.07),
    facades.Facade(floors=6, windows_per_floor=6, blinds=True, pillars=True, moldings=True, deco=True, roof=0.0, margin=0.03),
    facades.Facade(floors=3, windows_per_floor=7, door=False, balconies=(1, 2), blinds=True, window_width=0.65,
                   window_height=0.62, roof=0.17, margin=0.11),
]
# Label maps only: random layouts, one whose box edges fall on half pixels (Python rounds them to even) and one
# whose deco ends above the image (a negative index, which Python's slicing counts from the end).
MORE_LAYOUTS = [facades.random_facade(rng) for rng in map(np.random.default_rng, range(12))] + [
    facades.Facade(floors=4, window_width=0.375, window_height=0.5, roof=0.0625, margin=0.03125, shop=True, balconies=(1, 3),
                   blinds=True),
    facades.Facade(floors=8, deco=True, roof=0.0, window_height=0.98),
]
# What the check page sets in the editor's own controls, and the layout Python draws for it.
QUERY = "?floors=6&windows_per_floor=3&window_width=0.65&balconies=1&blinds=1&door=0&dropout=0"
QUERY_LAYOUT = facades.Facade(floors=6, windows_per_floor=3, window_width=0.65, balconies=(1, 3, 5), blinds=True, door=False)

CHECK_PAGE = """<!doctype html><html><body><img src="hold" alt="">
<script src="vendor/tf-core.min.js"></script><script src="vendor/tf-backend-cpu.min.js"></script>
<script src="vendor/tf-backend-wasm.min.js"></script>
<script type="module">
import {colorize, labelMap} from "./facades.js";
import {loadGenerator, useBackend} from "./generator.js";

const CASES = CASES_JSON;
const base64 = array => {
  const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
  let text = "";
  for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
  return btoa(text);
};
const meanDifference = (a, b) => a.reduce((sum, value, i) => sum + Math.abs(value - b[i]), 0) / a.length;

async function openEditor(query) {
  const frame = Object.assign(document.createElement("iframe"), {src: "index.html" + query, width: 900, height: 700});
  document.body.append(frame);
  await new Promise(resolve => frame.addEventListener("load", resolve, {once: true}));
  await frame.contentWindow.editorReady;
  await frame.contentWindow.editor.idle();
  return frame;
}

async function change(frame, act, until = () => true) {  // act on the editor's page; its label map and photo once painted
  act(frame.contentDocument);
  for (let wait = 0; !until(frame.contentDocument) && wait < 200; wait++) await new Promise(r => setTimeout(r, 100));
  await frame.contentWindow.editor.idle();
  return {labels: base64(frame.contentWindow.editor.labels()), photo: frame.contentWindow.editor.photo().slice()};
}

const report = {};
try {
  report.labels = CASES.map(({facade, size}) => base64(labelMap(facade, size, FACADE_CLASSES)));
  report.backend = await useBackend("vendor/");
  const generator = await loadGenerator("model/generator.json");
  const {manifest} = generator;
  const inputs = CASES.filter(c => c.photo)
    .map(({facade}) => colorize(labelMap(facade, manifest.image_size, manifest.classes), manifest.colors));
  report.photos = [];
  for (const rgb of inputs) report.photos.push(base64(await generator.translate(rgb, {dropout: false})));
  for (let i = 0; i < 2; i++) await generator.translate(inputs[0]);  // warm-up
  report.milliseconds = [];
  for (let i = 0; i < 5; i++) {
    const begin = performance.now();
    await generator.translate(inputs[0]);
    report.milliseconds.push(performance.now() - begin);
  }
  const [one, two] = [await generator.translate(inputs[0]), await generator.translate(inputs[0])];
  report.dropout_difference = meanDifference(one, two);

  const editor = await openEditor("");
  report.dropout_default = editor.contentDocument.querySelector("[name=dropout]").checked;
  const steps = {};
  steps.dropout_on = await change(editor, () => {});
  steps.dropout_off = await change(editor, doc => doc.querySelector("[name=dropout]").click());
  steps.shop = await change(editor, doc => doc.querySelector("[name=shop]").click());
  steps.floors = await change(editor, doc => {
    const floors = doc.querySelector("[name=floors]");
    floors.value = 6;
    floors.dispatchEvent(new Event("input", {bubbles: true}));
  });
  steps.brush = await change(editor, doc => {
    doc.querySelector("#palette [title=pillar]").click();
    const canvas = doc.getElementById("labels"), box = canvas.getBoundingClientRect();
    const at = {clientX: box.left + box.width / 2, clientY: box.top + box.height / 2, pointerId: 1, buttons: 1, bubbles: true};
    canvas.dispatchEvent(new PointerEvent("pointerdown", at));
  });
  const upload = (doc, name, blob) => {
    const files = new DataTransfer();
    files.items.add(new File([blob], name, {type: "image/png"}));
    doc.querySelector("[name=upload]").files = files.files;
    doc.querySelector("[name=upload]").dispatchEvent(new Event("change"));
  };
  const mine = Object.assign(document.createElement("canvas"), {width: 50, height: 50});
  Object.assign(mine.getContext("2d"), {fillStyle: "rgb(0, 0, 255)"}).fillRect(0, 0, 50, 50);
  const png = await new Promise(resolve => mine.toBlob(resolve, "image/png"));
  const status = doc => doc.getElementById("status").textContent;
  steps.upload = await change(editor, doc => upload(doc, "mine.png", png), doc => status(doc).startsWith("painted mine.png"));
  await change(editor, doc => upload(doc, "junk.png", new Blob(["junk"])), doc => status(doc).startsWith("junk.png"));
  report.junk_status = status(editor.contentDocument);
  report.steps = Object.fromEntries(
    Object.entries(steps).map(([name, {labels, photo}]) => [name, {labels, photo: base64(photo)}]));
  report.editor_milliseconds = editor.contentWindow.editor.milliseconds();

  const queried = await openEditor("QUERY");
  report.query = {labels: base64(queried.contentWindow.editor.labels()), photo: base64(queried.contentWindow.editor.photo())};
  report.requests = [window, editor.contentWindow, queried.contentWindow]
    .flatMap(w => [w.location.href, ...w.performance.getEntriesByType("resource").map(entry => entry.name)]);
} catch (error) {
  report.error = String(error.stack || error);
}
await fetch("result", {method: "POST", body: JSON.stringify(report)});
</script></body></html>"""


def _decode(text, dtype, shape):
    return np.frombuffer(base64.b64decode(text), dtype).reshape(shape)


def _mean_levels(a, b):
    """Mean absolute difference of two images in [-1, 1], in levels of 255."""
    return float(np.abs(np.asarray(a, np.float64) - b).mean() * 127.5)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; holds GET /hold (and so the page's load event) until the page POSTs its /result."""

    def __init__(self, *args, result, **kwargs):
        self.result = result
        super().__init__(*args, **kwargs)

    def do_GET(self):
        if self.path == "/hold":
            self.result["posted"].wait(240)
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def do_POST(self):
        self.result["body"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.result["posted"].set()
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_export_writes_every_weight_it_needs_in_float16(tmp_path):
    generator = Generator(32, 4)
    manifest = json.loads(export_generator(generator, tmp_path / "model", source="a test").read_text())
    weights = np.fromfile(tmp_path / "model" / manifest["weights"], "<f2")
    assert manifest["image_size"] == 32 and manifest["source"] == "a test"
    assert manifest["colors"] == facades.COLORS.tolist() and manifest["classes"] == list(facades.CLASSES)
    layers = {layer["name"]: layer for layer in manifest["layers"]}
    assert [layer["name"] for layer in manifest["layers"]] == [layer.name for layer in generator.layers]
    assert layers["dec1_skip"]["inputs"] == ["enc4_bn", "dec1_dropout"] and layers["dec1_dropout"]["rate"] == 0.5
    for layer in generator.layers:
        used = [w for w in layer.weights if w.name not in ("moving_mean", "moving_variance")]
        assert sorted(layers[layer.name]["weights"]) == sorted(w.name for w in used)
        for weight in used:
            entry = layers[layer.name]["weights"][weight.name]
            stored = weights[entry["offset"]:entry["offset"] + weight.numpy().size].reshape(entry["shape"])
            np.testing.assert_array_equal(stored, weight.numpy().astype(np.float16))
    assert weights.size == sum(int(np.prod(e["shape"])) for layer in layers.values() for e in layer["weights"].values())


def test_export_refuses_a_model_the_editor_cannot_run(tmp_path):
    import keras

    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.MaxPooling2D(name="pool")(inputs), name="other")
    with pytest.raises(ValueError, match="layer pool is a MaxPooling2D"):
        export_generator(model, tmp_path)


def test_export_command_takes_a_book_run_and_names_what_it_cannot_find(tmp_path, capsys):
    assert main(["export", "l1-cgan", str(tmp_path / "model")]) == 0
    manifest = json.loads((tmp_path / "model" / "generator.json").read_text())
    assert manifest["source"].startswith("book run 'l1-cgan'") and manifest["image_size"] == 128
    capsys.readouterr()
    assert main(["export", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "nowhere: neither a run folder" in error and "l1-cgan" in error
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def page_report(tmp_path_factory, chromium):
    """Run the check page against the editor with the book run exported into it: (its report, the generator, chromium's log)."""
    assert (EDITOR / "vendor" / "tf-core.min.js").exists(), \
        f"{EDITOR / 'vendor'}: no TensorFlow.js beside the editor; run `make editor` (npm ci, then copies it there)"
    site = tmp_path_factory.mktemp("editor") / "editor"
    shutil.copytree(EDITOR, site, ignore=shutil.ignore_patterns("model"))
    generator, _ = bookruns.load("l1-cgan", verbose=False)
    export_generator(generator, site / "model")
    cases = [{"facade": dataclasses.asdict(f), "size": 128, "photo": True} for f in LAYOUTS]
    cases += [{"facade": dataclasses.asdict(f), "size": size, "photo": False} for f in MORE_LAYOUTS for size in (128, 256)]
    page = (CHECK_PAGE.replace("CASES_JSON", json.dumps(cases)).replace("FACADE_CLASSES", json.dumps(facades.CLASSES))
            .replace("QUERY", QUERY))
    (site / "check.html").write_text(page)
    result = {"posted": threading.Event()}
    handler = functools.partial(_Handler, directory=str(site), result=result)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:  # --dump-dom exits once the page has loaded, which /hold delays until the page has posted its report
        run = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--enable-logging=stderr", "--v=0",
             f"--user-data-dir={site.parent / 'chromium-profile'}", "--dump-dom",
             f"http://127.0.0.1:{server.server_address[1]}/check.html"],
            capture_output=True, text=True, timeout=300,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert "body" in result, run.stdout[-2000:] + run.stderr[-3000:]
    report = result["body"]
    assert "error" not in report, report["error"]
    report["origin"] = f"http://127.0.0.1:{server.server_address[1]}/"
    return report, generator, run.stderr


def _photos(generator, layouts):
    labels = np.stack([facades.colorize(facades.label_map(layout, 128)) for layout in layouts])
    return translate(generator, data.normalize(labels), dropout=False).numpy()


@pytest.mark.slow  # exports the book run and drives Chromium
def test_the_page_draws_the_label_maps_python_draws(page_report):
    report, _, _ = page_report
    cases = [(f, 128) for f in LAYOUTS] + [(f, size) for f in MORE_LAYOUTS for size in (128, 256)]
    for (layout, size), drawn in zip(cases, report["labels"], strict=True):
        page, python = _decode(drawn, np.uint8, (size, size)), facades.label_map(layout, size)
        assert np.array_equal(page, python), f"{layout} at {size}: {np.sum(page != python)} pixels differ"
    query = _decode(report["query"]["labels"], np.uint8, (128, 128, 3))
    np.testing.assert_array_equal(query, facades.colorize(facades.label_map(QUERY_LAYOUT, 128)))


@pytest.mark.slow  # exports the book run and drives Chromium
def test_the_page_paints_what_the_python_generator_paints(page_report):
    report, generator, _ = page_report
    expected = _photos(generator, LAYOUTS + [facades.Facade(), QUERY_LAYOUT])
    painted = [_decode(photo, "<f4", (128, 128, 3)) for photo in report["photos"]]
    painted += [_decode(report["steps"]["dropout_off"]["photo"], "<f4", (128, 128, 3)),
                _decode(report["query"]["photo"], "<f4", (128, 128, 3))]
    differences = [_mean_levels(page, python) for page, python in zip(painted, expected, strict=True)]
    print(f"\nmean |page - python|, dropout off, in levels of 255: {', '.join(f'{d:.4f}' for d in differences)}")
    assert max(differences) <= 2.0, differences
    # the generator's output varies with the layout, so agreeing with it is no accident
    assert _mean_levels(expected[0], expected[1]) > 10 * max(differences)


@pytest.mark.slow  # exports the book run and drives Chromium
def test_every_control_changes_the_photo_and_dropout_is_on_by_default(page_report):
    report, _, _ = page_report
    steps = {name: (_decode(step["labels"], np.uint8, (128, 128, 3)), _decode(step["photo"], "<f4", (128, 128, 3)))
             for name, step in report["steps"].items()}
    assert report["dropout_default"] is True
    assert report["dropout_difference"] > 0.001  # two translations with dropout on differ, as at the paper's test time
    for before, after in [("dropout_off", "shop"), ("shop", "floors"), ("floors", "brush"), ("brush", "upload")]:
        assert not np.array_equal(steps[before][0], steps[after][0]), f"{after}: the label map did not change"
        assert _mean_levels(steps[before][1], steps[after][1]) > 1.0, f"{after}: the photo did not change"
    np.testing.assert_array_equal(steps["shop"][0], facades.colorize(facades.label_map(facades.Facade(shop=True), 128)))
    pillar = facades.COLORS[facades.CLASSES.index("pillar")]
    assert (steps["brush"][0][64, 64] == pillar).all() and not (steps["floors"][0][64, 64] == pillar).all()
    assert (steps["upload"][0] == facades.COLORS[facades.CLASSES.index("facade")]).all()  # a label map of one class
    assert report["junk_status"].startswith("junk.png: not an image"), report["junk_status"]


@pytest.mark.slow  # exports the book run and drives Chromium
def test_one_translation_takes_under_a_second_with_no_error_and_no_request_off_the_machine(page_report):
    report, _, log = page_report
    times = sorted(report["milliseconds"])
    print(f"\nin-page translation ({report['backend']}), 5 runs after a warm-up: median {times[2]:.0f} ms, "
          f"max {times[-1]:.0f} ms; the editor's own last one: {report['editor_milliseconds']:.0f} ms")
    assert times[2] <= 1000, times
    # Chromium logs every console message, of any level, from every frame: none is expected
    assert re.findall(r"CONSOLE.*", log) == []
    assert len(report["requests"]) > 10  # the pages, the scripts, TensorFlow.js's .wasm, the generator
    assert [url for url in report["requests"] if not url.startswith(report["origin"])] == []


def test_export_replaces_only_its_own_files_unless_told_to(tmp_path, capsys):
    # Before: a user's generator.json and generator.bin in OUT were replaced without a word.
    generator = Generator(32, 4)
    for name, content in (("generator.json", b'{"mine": true}'), ("generator.bin", b"my weights")):
        out = tmp_path / name.split(".")[1]
        out.mkdir()
        (out / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"{out / name}: exists, and export did not write it.*--overwrite") as error:
            export_generator(generator, out)
        assert "\n" not in str(error.value) and os.listdir(out) == [name] and (out / name).read_bytes() == content
        capsys.readouterr()
        assert main(["export", "l1-cgan", str(out)]) == 2
        assert capsys.readouterr().err.startswith(f"error: {out / name}: exists, and export did not write it")
        assert os.listdir(out) == [name] and (out / name).read_bytes() == content
        assert main(["export", "l1-cgan", str(out), "--overwrite"]) == 0
        assert json.loads((out / "generator.json").read_text())["format"] == "p2p-generator-1"
    export_generator(generator, tmp_path / "json")  # its own earlier export: replaced
    os.mkfifo(tmp_path / "fifo.json")  # never opened: a FIFO would wait for a writer
    (tmp_path / "bin" / "generator.json").unlink()
    (tmp_path / "bin" / "generator.json").symlink_to(tmp_path / "fifo.json")
    with pytest.raises(ValueError, match="export did not write it"):
        export_generator(generator, tmp_path / "bin")


def test_export_refuses_the_shipped_book_runs(tmp_path, capsys, monkeypatch):
    # Before: `export l1-cgan p2p/lab/trained/l1-cgan` wrote generator.json and .bin among the shipped run's files.
    shipped = tmp_path / "package" / "trained"  # in place of p2p/lab/trained, which the test leaves alone
    shutil.copytree(bookruns.SHIPPED / "l1-cgan", shipped / "l1-cgan")
    monkeypatch.setattr(bookruns, "SHIPPED", shipped)
    before = sorted(os.listdir(shipped / "l1-cgan"))
    assert main(["export", "l1-cgan", str(shipped / "l1-cgan")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {shipped / 'l1-cgan'}: lies in the shipped book runs") and len(err.splitlines()) == 1, err
    assert sorted(os.listdir(shipped / "l1-cgan")) == before
