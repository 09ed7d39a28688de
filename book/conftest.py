"""What each chapter must show, checked on the outputs of `pytest --nbval book/`'s own run of it.

nbval runs every chapter once and compares its outputs with the committed ones, except the cells marked to skip that
comparison because their last digits depend on the CPU. After a chapter's last cell, one more test reads what that
fresh run printed and checks the claims the chapter's text makes about it, with tolerances for those cells.
"""

import re

import pytest

# -- what each chapter must have printed (text: all of stdout and text/plain; kinds: the MIME types displayed) --


def introduction(text, kinds):
    assert "paper   256px" in text and "image/png" in kinds


def data(text, kinds):
    assert "train 400 files" in text and "test 106 files" in text
    assert "(512, 256) RGB" in text and "bad-data/1.jpg: cannot be decoded" in text


def _table(text, names):
    """{name: {measure: value}} from lines 'name  measure value  measure value ...'."""
    rows = {}
    for name in names:
        line = next(row for row in text.splitlines() if row.startswith(name + " ") or row.startswith(name.ljust(13)))
        rows[name] = {k.strip(): float(v) for k, v in re.findall(r"([a-zA-Z0-9 ]+?) (-?\d+\.\d+)", line[len(name):])}
    return rows


def objective(text, kinds):
    rendering = re.search(r"sharpness of one rendering \(mean of 32\): (\d\.\d+); of their per-pixel median: (\d\.\d+)", text)
    # the median blurs the fine structure: 0.36 of one rendering's sharpness at the book's 128 px
    assert rendering and float(rendering.group(2)) < 0.5 * float(rendering.group(1))
    # D's updates (nbval skips this cell's output: its last digits depend on the CPU's arithmetic)
    moved = dict(re.findall(r"^(halved loss|whole loss, half the learning rate) +moves D (\d\.\d+) times", text, re.MULTILINE))
    off = dict(re.findall(r"^(halved loss|whole loss, half the learning rate) .* (\d+\.\d)% of the way off its path", text,
                          re.MULTILINE))
    assert abs(float(moved["halved loss"]) - 1) < 0.02 and float(off["halved loss"]) < 10  # Adam: the scale cancels
    assert float(moved["whole loss, half the learning rate"]) < 0.8 and float(off["whole loss, half the learning rate"]) > 30
    # what is left of the halving is Adam's epsilon: made negligible, the halved loss keeps to the whole loss's path
    first = re.search(r"^halved loss, after one step +moves D \d\.\d+ times .* (\d+\.\d)% of the way off", text, re.MULTILINE)
    assert first and 0 < float(first.group(1)) < float(off["halved loss"])
    negligible = re.search(r"^halved loss, epsilon 1e-30 instead of 1e-7 +moves D (\d\.\d+) times .* (\d+\.\d)% of the way off",
                           text, re.MULTILINE)
    assert negligible and negligible.group(1) == "1.000" and float(negligible.group(2)) < 0.1
    assert "0.032 |g| (t = 1), 0.141 |g| (t = 20)" in text  # sqrt(v) without bias correction, which epsilon is added to
    assert "book run 'l1' (" in text and "book run 'l1-cgan' (" in text  # the provenance of what it loaded
    table = _table(text, ["ground truth", "L1 + cGAN", "L1"])
    assert table["ground truth"]["l1"] == 0.0
    for name in ("L1", "L1 + cGAN"):
        assert 0 < table[name]["l1"] < 1 and 0 < table[name]["sharpness"] < 2 and table[name]["colour spread"] >= 0
    assert table["L1 + cGAN"]["sharpness"] > 2 * table["L1"]["sharpness"]  # the chapter's lesson: L1 alone blurs
    assert "image/png" in kinds


def generator(text, kinds):
    # the blocks and the Generator, printed from p2p.models and run on tensors at the paper's size
    assert all(f"def {name}(" in text for name in ("downsample", "upsample", "Generator"))
    assert "image (1, 256, 256, 3) -> enc1 (1, 128, 128, 64) -> enc2 (1, 64, 64, 128)" in text
    assert "bottleneck (1, 1, 1, 512) -> dec1 (1, 2, 2, 512)" in text
    for layer, shape in [("enc1_conv", "(128, 128, 64)"), ("enc8_conv", "(1, 1, 512)"), ("dec1_skip", "(2, 2, 1024)"),
                         ("dec7_skip", "(128, 128, 128)"), ("out_conv", "(256, 256, 3)")]:
        assert re.search(rf"^{layer} +{re.escape(shape)} ", text, re.MULTILINE), layer
    assert "output (1, 256, 256, 3)" in text
    assert "this preset (128px, ngf=16): [16, 32, 64, 128, 128, 128, 128]" in text  # "128 numbers at this preset"
    assert "54,413,955 trainable parameters" in text and "2,768,705 trainable parameters" in text
    assert "bottleneck_norm=True : two different inputs give identical outputs" in text
    assert "bottleneck_norm=False: two different inputs give different outputs" in text
    assert "book run 'encoder-decoder' (" in text and "book run 'encoder-decoder-l1' (" in text
    rows = re.findall(r"window contrast (-?\d+\.\d+), L1 to ground truth (\d+\.\d+)", text)
    assert len(rows) == 4 and all(abs(float(w)) < 10 and 0 < float(l1) < 1 for w, l1 in rows)
    assert re.search(r"real photos +window contrast 0\.\d\d", text)
    darker = re.search(r"windows darker than the wall in (\d+)% of the 106 test photos", text)
    assert darker and 50 < int(darker.group(1)) < 100  # most real facades, not all: the text quotes the share
    contrast = dict(re.findall(r"^(encoder-decoder, L1 \+ cGAN|encoder-decoder, L1|U-Net, L1 \+ cGAN|U-Net, L1) +window contrast "
                               r"(-?\d+\.\d+)", text, re.MULTILINE))
    real = float(re.search(r"real photos +window contrast (\d\.\d\d)", text).group(1))
    # the encoder-decoder loses the layout with either loss, the U-Net carries it across
    assert all(float(contrast[f"encoder-decoder, {loss}"]) < 0.6 * real < real < float(contrast[f"U-Net, {loss}"])
               for loss in ("L1", "L1 + cGAN"))


def patchgan(text, kinds):
    # the block and the Discriminator, printed from p2p.models, run on a 256x256 pair down to the 30x30 logits
    assert "def discriminator_block(" in text and "def Discriminator(" in text
    for block, shape in [("pair", "(1, 256, 256, 6)"), ("c1_lrelu", "(1, 128, 128, 64)"), ("c2_lrelu", "(1, 64, 64, 128)"),
                         ("c3_lrelu", "(1, 32, 32, 256)"), ("c4_lrelu", "(1, 31, 31, 512)"), ("logits", "(1, 30, 30, 1)")]:
        assert re.search(rf"^{block} +{re.escape(shape)}$", text, re.MULTILINE), block
    assert "image/png" in kinds  # the receptive fields over a test photo, and the patch maps
    for n, field in [(0, 1), (1, 16), (3, 70), (5, 286)]:
        assert f"n_layers={n}: computed {field}, measured ({field}, {field})" in text
    probabilities = [float(v) for v in re.findall(r"pair (\d\.\d\d)", text)]
    assert len(probabilities) == 2 and all(0 <= p <= 1 for p in probabilities)
    # the pair shown is a typical one (the median of D's margins), and D ranks it as it ranks nearly all of them
    assert re.search(r"test pair \d+ of 106, at the median of D's margins", text) and probabilities[0] > probabilities[1]
    ranked = re.search(r"over the 106 test pairs: mean p\(real\) (\d\.\d\d) for real pairs, (\d\.\d\d) for generated ones; "
                       r"D ranks the real pair above the generated one for (\d+)% of the label maps", text)
    assert ranked and float(ranked.group(1)) > 0.5 > float(ranked.group(2)) and int(ranked.group(3)) >= 95


def training(text, kinds):
    assert "metrics.csv steps: [15, 30, 45, 60, 75, 90]" in text
    assert "resumed from the checkpoint at step 60, now at step 90" in text
    assert "resuming runs/resume-demo at step 60 of 90" in text
    assert "ValueError: runs/resume-demo has already trained 90 steps, more than the 30 asked for" in text
    losses = re.search(r"D (\d+\.\d+), G adversarial (\d+\.\d+), L1 (\d+\.\d+)", text)
    assert losses and all(0 < float(v) < 5 for v in losses.groups())
    for row in ("one image at a time (the paper)", "pooled batches of 8", "training=False"):
        assert re.search(re.escape(row) + r"( +\d\.\d{3}){4}", text)
    differences = re.search(r"mean difference between two translations: (\d+\.\d+)", text)
    assert differences and float(differences.group(1)) > 0  # dropout is on at test time


def play(text, kinds):
    assert "book run 'l1-cgan' (" in text
    assert "application/vnd.jupyter.widget-view+json" in kinds and "image/png" in kinds


def reproducing(text, kinds):
    for title in ("Loss ablation", "Generator ablation", "Discriminator receptive field"):
        assert title in text
    assert re.search(r"loss: 10 orderings by per_pixel_acc over 3 seeds; \d+ as in the paper and significant", text)
    assert "PSNR (dB)" in text and "SSIM" in text  # the image scores beside the FCN-scores
    assert "share in the paper" in text  # the patch-size mapping, stated
    assert "G from D's verdict before D's update (Lua, TF tutorial)" in text  # the measured implementation option
    assert "image/png" in kinds


def scaling(text, kinds):
    assert "GFLOP per train step" in text and "tutorial step" in text and "image/png" in kinds
    assert "fused Adam" in text and "convolutions" in text  # the committed profile
    assert re.search(r"p2p, simultaneous update +\d+\.\d\d steps/s +\d\.\d\dx the tutorial's step", text)
    for gan_update in ("sequential", "simultaneous"):
        assert re.search(gan_update + r" +largest .*the same training, up to float rounding: True", text)
    # at the tutorial's own scale (D's summed loss) the runs differ through Adam's epsilon: more than rounding, still small
    summed = re.search(r"against the tutorial's summed D loss: largest relative difference of a loss (\S+), of the weight "
                       r"updates after 5 steps (\S+)", text)
    assert summed and 1e-4 < float(summed.group(2)) < 0.05 and float(summed.group(1)) < 1e-3
    assert "mixed_float16   layers compute in float16" in text and "LossScaleOptimizer" in text
    assert "mixed_bfloat16  layers compute in bfloat16" in text
    assert "worker 0 finished: exit code 0" in text and "worker 1 finished: exit code 0" in text
    assert "metrics.csv steps: [3, 6]" in text


def troubleshooting(text, kinds):
    from p2p.lab.troubleshooting import VARIANTS

    assert "image/png" in kinds and "book run 'l1-cgan' (" in text
    for way in ("one at a time (the paper)", "pooled batches of 8", "training=False"):
        assert re.search(re.escape(way) + r"( +\d\.\d{3}){3}", text)
    for call in ("generator.predict(x)", "generator(x)"):
        largest = re.search(re.escape(call) + r" differs from training=False by at most (\S+)", text)
        assert largest and float(largest.group(1)) < 1e-5  # the same inference, in another graph: rounding at most
    gradients = re.search(r"non-saturating -log D (\d\.\d+), saturating log\(1 - D\) (\d\.\d+)", text)
    assert gradients and float(gradients.group(1)) + float(gradients.group(2)) == pytest.approx(1.0, abs=2e-3)
    for name in VARIANTS:  # every short run has a row of scores
        assert re.search(r"^" + re.escape(name) + r"(, [\w ]+)? +-?\d+\.\d{3}", text, re.MULTILINE), name
    assert re.search(r"batch 4, InstanceNorm, batches of 4( +\d\.\d{3}){3} +0\.000", text)  # its own statistics
    # the label colours' share of each side (nbval skips this cell's output: its last digit depends on the CPU)
    shares = dict(re.findall(r"direction=(\w+): (\d+)% of the input pixels", text))
    assert int(shares["BtoA"]) > 90 and int(shares["AtoB"]) < 10
    assert "Generator(100): image_size must be a power of two" in text
    assert "rebuilt(generator, 128, 192): a 128x192 input does not fit this generator" in text and "multiples of 128" in text
    still = re.search(r"still camera +(\d\.\d{3}) +(\d\.\d{3}) +(\d\.\d{3}) +(\d\.\d{3})", text)
    assert still and float(still.group(1)) == float(still.group(3)) == 0.0 < float(still.group(2))  # dropout alone flickers
    spreads = dict(re.findall(r"^(G, dropout draws|renderings) +(\d\.\d{3})", text, re.MULTILINE))
    assert float(spreads["G, dropout draws"]) < float(spreads["renderings"])


CHECKS = {
    "01-introduction": introduction, "02-data": data, "03-objective": objective, "04-generator": generator,
    "05-patchgan": patchgan, "06-training": training, "07-play": play, "08-reproducing": reproducing,
    "09-scaling": scaling, "10-troubleshooting": troubleshooting,
}


def printed(outputs):
    """All text the outputs printed or displayed, and the MIME types of their rich outputs; an error fails."""
    text, kinds = [], set()
    for output in outputs:
        assert output.output_type != "error", f"{output.ename}: {output.evalue}"
        if output.output_type == "stream" and output.name == "stdout":
            text.append(output.text)
        kinds.update(output.get("data", {}))
        text.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(text), kinds


# -- the nbval hook: one more test per chapter, after its cells --


class ChapterOutputs(pytest.Item):
    """Checks what the cells of one chapter printed in this run (nbval keeps each cell's outputs)."""

    def __init__(self, *, cells, check, **kwargs):
        super().__init__(**kwargs)
        self.cells, self.check = cells, check

    def runtest(self):
        if any(cell.test_outputs is None for cell in self.cells):
            pytest.skip("not every cell of the chapter ran")
        self.check(*printed([output for cell in self.cells for output in cell.test_outputs]))

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::outputs"


def pytest_collection_modifyitems(session, config, items):
    """After each chapter's last cell, the test of what the chapter printed; a chapter without checks fails."""
    if not (config.getoption("nbval", False) or config.getoption("nbval_lax", False)):
        return
    cells = {}
    for item in items:
        cells.setdefault(item.parent, []).append(item)
    order = []
    for item in items:
        order.append(item)
        chapter = item.parent
        if chapter.path.suffix == ".ipynb" and item is cells[chapter][-1]:
            order.append(ChapterOutputs.from_parent(chapter, name="outputs", cells=cells[chapter],
                                                    check=CHECKS.get(chapter.path.stem, missing)))
    items[:] = order


def missing(text, kinds):
    pytest.fail("this chapter has no checks: add a function for it to CHECKS in book/conftest.py", pytrace=False)
