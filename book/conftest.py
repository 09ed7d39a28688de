"""What each chapter must show, checked on the outputs of `pytest --nbval book/`'s own run of it.

nbval runs every chapter once and compares its outputs with the committed ones, except the cells marked to skip that
comparison because their last digits depend on the CPU. After a chapter's last cell, one more test reads what that
fresh run printed and checks the claims the chapter's text makes about it, with tolerances for those cells.
"""

import math
import re

import nbformat
import prose_numbers
import pytest

# -- what each chapter must have printed (text: all of stdout and text/plain; kinds: the MIME types displayed) --


def introduction(text, kinds):
    assert "paper   256px" in text and "image/png" in kinds
    # the first screen's figure: the two book runs it shows, with the training times the text quotes
    assert "book run 'l1' (" in text and "book run 'l1-cgan' (" in text


def data(text, kinds):
    assert "train 400 files" in text and "test 106 files" in text
    assert "(512, 256) RGB" in text
    # the data path, printed from p2p.data and run on tensors
    for function in ("load_pair", "_read_halves", "_orient", "decode_rgb", "normalize", "jitter", "resize", "paired_dataset",
                     "list_pairs", "check_pair_file"):
        assert f"def {function}(" in text, function
    assert "-> out: input (128, 128, 3) target (128, 128, 3)" in text
    # the jitter figure: each crop found exactly in the enlarged pair; as the text reads it, crop 1 is cut lowest and
    # kept as it is, crops 2 to 4 mirrored
    assert "a 128x128 crop fits at 16 x 16 places of the enlargement" in text
    crops = re.findall(r"^crop (\d): rows (\d+)-\d+, columns (\d+)-\d+(, mirrored)?$", text, re.MULTILINE)
    assert [int(n) for n, *_ in crops] == [1, 2, 3, 4] and all(0 <= int(r) <= 15 and 0 <= int(c) <= 15 for _, r, c, _ in crops)
    assert [bool(m) for *_, m in crops] == [False, True, True, True]
    assert int(crops[0][1]) == max(int(r) for _, r, _, _ in crops) > max(int(crops[2][1]), int(crops[3][1]))
    assert "one batch: inputs (4, 128, 128, 3) float32 targets (4, 128, 128, 3)" in text


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
    # the toy GAN (nbval skips these cells' output: training on a CPU's arithmetic): D trained against a fixed G is D*
    gap = re.search(r"of p_g: largest gap between the trained D and D\* (\d\.\d+)", text)
    assert gap and float(gap.group(1)) < 0.15
    # where D rejects G's samples, the saturating loss's gradient per logit is a small fraction of the non-saturating one's
    verdicts = re.search(r"D\(G\(z\)\) < 0\.1 for (\d+)% of G's samples; there the gradient per logit averages (\d\.\d+) with "
                         r"log\(1 - D\) and (\d\.\d+) with -log D", text)
    assert verdicts and int(verdicts.group(1)) > 40 and 10 * float(verdicts.group(2)) < float(verdicts.group(3))
    # mode collapse: few games at the same pace, most with D 100 times slower than G
    games = {pace: (int(collapsed), int(runs), float(median)) for pace, collapsed, runs, median in re.findall(
        r"^(same pace|D 100x slower) +\(D's learning rate .*\): (\d+) of (\d+) games collapsed .* median sd (\d\.\d+)$", text,
        re.MULTILINE)}
    (same, runs, spread), (slow, _, _) = games["same pace"], games["D 100x slower"]
    assert same <= runs / 3 and slow >= 2 * runs / 3 and spread > 1, games
    assert "p_data's sd: 2.06" in text
    # a book run's provenance, printed once where it is loaded
    assert text.count("book run 'l1' (") == 1 and text.count("book run 'l1-cgan' (") == 1
    table = _table(text, ["ground truth", "L1 + cGAN", "L1"])
    assert table["ground truth"]["l1"] == 0.0
    for name in ("L1", "L1 + cGAN"):
        assert 0 < table[name]["l1"] < 1 and 0 < table[name]["sharpness"] < 2 and table[name]["colour spread"] >= 0
    assert table["L1 + cGAN"]["sharpness"] > 2 * table["L1"]["sharpness"]  # the chapter's lesson: L1 alone blurs
    # the losses run on tensors: log 2 for an undecided D
    assert "D undecided:      D's loss 0.693, G's adversarial loss 0.693" in text
    assert "D right, 95% sure: D's loss 0.049, G's adversarial loss 3.049" in text
    # what the detail is made of: the L1 + cGAN model's grid noise stands well above the real photos' and the L1 model's
    grid = dict(re.findall(r"^(real photo|L1 \+ cGAN|L1) +sharpness .* grid noise (\d\.\d+)", text, re.MULTILINE))
    assert float(grid["L1 + cGAN"]) > 4 * max(float(grid["real photo"]), float(grid["L1"]))
    # the book runs' milestones, printed under their figure: the L1 + cGAN model's sharpness rises from the first to the last
    milestones = re.findall(r"^ *([\d,]+)" + r"  +(\d\.\d{3})" * 6 + "$", text, re.MULTILINE)
    assert [step for step, *_ in milestones][::len(milestones) - 1] == ["750", "30,000"]
    assert float(milestones[-1][4]) > float(milestones[0][4]) > float(milestones[0][1])
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
    # the two controls, from their milestones: dropout changes nothing; batch 10 no better in as many epochs, better in ten
    # times as many, still far below the U-Net
    controls = {(label, float(epochs)): float(value) for label, epochs, value in re.findall(
        r"^  (batch 10|batch 1, no dropout) +[\d,]+ steps = +([\d.]+) epochs: window contrast (-?\d\.\d\d)", text, re.MULTILINE)}
    batch_1 = float(contrast["encoder-decoder, L1"])
    assert abs(controls[("batch 1, no dropout", 75.0)] - batch_1) < 0.05
    assert controls[("batch 10", 75.0)] <= batch_1 < controls[("batch 10", 750.0)] < 0.5 * float(contrast["U-Net, L1"])
    assert "book run 'encoder-decoder-l1-batch10' (" in text and "book run 'encoder-decoder-l1-no-dropout' (" in text


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
    # its two patch maps, as the text reads them: nearly all real patches above 0.9, the lowest near the left edge;
    # nearly all generated ones below 0.2, the highest still below the lowest real one
    patches = re.search(r"its 900 patches: real pair (\d+)% above 0\.9, lowest (\d\.\d\d) at row \d+, column (\d+) of 30; "
                        r"generated pair (\d+)% below 0\.2, highest (\d\.\d\d) at row \d+, column \d+", text)
    assert patches, "the patch maps' summary"
    assert int(patches.group(1)) >= 95 and int(patches.group(4)) >= 90 and int(patches.group(3)) <= 5
    assert float(patches.group(5)) < float(patches.group(2))
    ranked = re.search(r"over the 106 test pairs: mean p\(real\) (\d\.\d\d) for real pairs, (\d\.\d\d) for generated ones; "
                       r"D ranks the real pair above the generated one for (\d+)% of the label maps", text)
    assert ranked and float(ranked.group(1)) > 0.5 > float(ranked.group(2)) and int(ranked.group(3)) >= 95


def train_step(text, kinds):
    # the step, printed from p2p.pix2pix with its named parts, and its data flow
    for head in ("def train_step(", "def train_discriminator(", "def discriminate(", "def generator_loss(",
                 "gen_tape.stop_recording()", "tf.stop_gradient(", "minimize("):
        assert head in text, head
    assert "image/png" in kinds  # the data flow
    # one step run on a batch: the shapes, what it returns, which weights each optimizer moved
    assert "x (1, 128, 128, 3) y (1, 128, 128, 3) -> G(x) (1, 128, 128, 3) -> D's logits for (x, y) (1, 30, 30, 1)" in text
    assert "the step returns gen_total (), gen_gan (), gen_l1 (), disc ()" in text
    assert "G: 37 of its 37 weight tensors moved" in text and "D: 10 of its 10 weight tensors moved" in text
    assert "steps taken: gen_optimizer 1 disc_optimizer 1" in text
    # its losses (nbval skips this cell's output: the last digits depend on the CPU): an undecided D starts near log 2,
    # and G's total is its GAN term plus 100 x L1
    first = re.search(r"gen_total (\d+\.\d+), gen_gan (\d+\.\d+), gen_l1 (\d+\.\d+), disc (\d+\.\d+) \(log 2 = 0\.693\)",
                      text)
    assert first, "the first step's losses"
    total, gan, l1, disc = map(float, first.groups())
    assert abs(disc - math.log(2)) < 0.1 and abs(gan - math.log(2)) < 0.1  # the text: "near log 2"
    assert total == pytest.approx(gan + 100 * l1, abs=0.1) and 0.1 < l1 < 1  # "a few tenths"
    # the optimizer, its settings and the schedule at the paper preset's 80,000 steps
    assert "def paper_optimizer(" in text and "class LinearDecay(" in text
    assert "PAPER_ADAM = {'learning_rate': 0.0002, 'beta_1': 0.5, 'beta_2': 0.999}" in text
    assert "lr_decay: paper preset 0.5 | cpu preset 0.0" in text
    assert "learning rate at step 0: 2.0e-04, 40,000: 2.0e-04, 60,000: 1.0e-04, 80,000: 0.0e+00" in text
    # what moves per step: everything, and Adam's m and v are twice the weights, number for number
    state = {what: (int(tensors), int(numbers.replace(",", "")), int(moved)) for what, tensors, numbers, moved in re.findall(
        r"^(G's weights|D's weights|gen_optimizer's m and v|disc_optimizer's m and v|the two step counts|"
        r"BatchNorm's moving averages) +(\d+) +([\d,]+) +(\d+)$", text, re.MULTILINE)}
    assert len(state) == 6 and all(tensors == moved > 0 for tensors, _, moved in state.values()), state
    for network, optimizer in (("G", "gen_optimizer"), ("D", "disc_optimizer")):
        assert state[f"{optimizer}'s m and v"][1] == 2 * state[f"{network}'s weights"][1]
    assert state["the two step counts"] == (2, 2, 2)


def running(text, kinds):
    flat = " ".join(text.split())  # lines the chapter wrapped to the page's width, as one
    # pix2pix whole on the page (nbval skips the cell's output: losses depend on the CPU): three epochs of fit, D ahead
    # of G by the end, the checkpoint written, restored into fresh networks and optimizers, the two Gs in agreement
    assert "cpu: 128x128, ngf=16, ndf=16, n_layers=2, 300 steps" in text  # the preset the text describes
    epochs = re.findall(r"^steps +(\d+)-(\d+): disc (\d+\.\d+), gen_gan (\d+\.\d+), gen_l1 (\d+\.\d+)$", text, re.MULTILINE)
    assert [(int(a), int(b)) for a, b, *_ in epochs] == [(1, 100), (101, 200), (201, 300)], epochs
    disc, gan = [float(row[2]) for row in epochs], [float(row[3]) for row in epochs]
    assert all(0 < float(value) < 5 for row in epochs for value in row[2:])
    assert disc[-1] < disc[0] and gan[-1] > gan[0]  # the text: D's loss fell while G's adversarial loss rose
    assert abs(disc[0] - math.log(2)) < 0.15 and disc[-1] < 0.35  # "from near log 2 to about 0.2"
    assert "saved runs/07-whole/ckpt-1" in text
    assert "restored: gen_optimizer at step 300 | disc_optimizer at step 300" in text
    agreement = re.search(r"^trained and restored G on a test image: max abs difference (\S+) \(asserted < 1e-5\)$", text,
                          re.MULTILINE)
    assert agreement and float(agreement.group(1)) < 1e-5  # the text: "is 0"
    assert "image/png" in kinds  # input | trained G | restored G | target
    # p2p.train, printed, and its run folder with one progress bar; resuming, and the refusal of a shorter run
    assert "def train(" in text and "runs.open_run(" in text
    assert "application/vnd.jupyter.widget-view+json" in kinds and "0/60" in text
    assert "first call: steps [15, 30, 45, 60]" in text
    assert "run folder: ['checkpoints', 'config.json', 'lock', 'logs', 'metrics.csv', 'samples']" in text
    assert "resuming runs/resume-demo at step 60 of 90" in text
    assert "second call: resumed from the checkpoint at step 60, now at step 90" in text
    assert "metrics.csv steps: [15, 30, 45, 60, 75, 90]" in text
    assert "ValueError: runs/resume-demo has already trained 90 steps, more than the 30 asked for" in flat
    # the book run's losses, early and late
    losses = re.findall(r"^steps +[\d,]+- *[\d,]+: D (\d+\.\d+), G adversarial (\d+\.\d+), L1 (\d+\.\d+)", text, re.MULTILINE)
    assert len(losses) == 2 and all(0 < float(v) < 5 for row in losses for v in row)
    (early_d, early_gan, _), (late_d, late_gan, _) = [[float(v) for v in row] for row in losses]
    assert max(early_d, late_d) < 0.5 * math.log(2) and late_gan > early_gan  # D ahead throughout; G's loss drifts up
    # what longer training buys: the milestones the text quotes, printed from the book run
    assert "book run 'l1-cgan' (" in text
    for row in ("   750 steps          0.130          0.011          0.364",
                "30,000 steps          0.238          0.129          0.407",
                " real photos          0.330          0.225          0.000"):
        assert row in text, row
    # test time: translate printed; three ways of passing test images, and dropout's noise
    for head in ("def translate(", "def _translate_each("):
        assert head in text, head
    measured = {}
    for row in ("one image at a time (the paper)", "pooled batches of 8", "training=False", "one at a time, dropout off"):
        found = re.search(re.escape(row) + r" +(\d\.\d{3}) +(\d\.\d{3}) +(\d\.\d{3}) +(\d\.\d{3})", text)
        assert found, row
        measured[row] = [float(value) for value in found.groups()]  # sharpness, colour spread, colourfulness, l1
    spread = {row: values[1] for row, values in measured.items()}
    # the text: shared or averaged statistics pull the buildings toward the same colours; training=False is closer to
    # the ground truth by L1; dropout off (each image's own statistics) measures as the paper's way does
    assert spread["one image at a time (the paper)"] > spread["pooled batches of 8"] > spread["training=False"]
    assert measured["training=False"][3] < measured["one image at a time (the paper)"][3]
    shift = re.search(r"dropout off moves the paper's four measures by at most (\d\.\d{3})", text)
    assert shift and float(shift.group(1)) < 0.02
    assert max(abs(a - b) for a, b in zip(measured["one at a time, dropout off"],
                                          measured["one image at a time (the paper)"])) < 0.02
    pooled = re.search(r"outputs differ by (\d\.\d+) on average", text)
    assert pooled and float(pooled.group(1)) > 0  # a pooled output depends on its batch-mates
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
    assert re.search(r"^results: preset 'cpu', 4000 steps per run, seeds \[0, 1, 2\], at commit \w{10} on ", text, re.MULTILINE)
    assert re.search(r": \d+ min of wall time in \d processes \(seeds \[0, 1\]: \d+ min", text)  # the rerun's time, per process
    assert re.search(r"the paper preset: 80,000 steps per run; .* 13-18 min per run", text)  # the PyTorch code's speed, quoted
    assert "3 seeds: p < 0.05 needs a t statistic above 4.30" in text  # Student's t, 2 degrees of freedom
    assert "image/png" in kinds and "text/markdown" in kinds  # the samples; the implementations table, as text


def scaling(text, kinds):
    assert "GFLOP per train step" in text and "tutorial step" in text and "image/png" in kinds
    # each committed result's provenance in one line: command | commit | date | machine | TensorFlow
    for command in ("python -m p2p bench --json results/bench.json", "python -m p2p bench --profile 20 "):
        assert re.search(r"^" + re.escape(command) + r".* \| commit \w{10}(\+changes)? \| \d{4}-\d\d-\d\d \| .+ \| "
                         r"TensorFlow \S+$", text, re.MULTILINE), command
    assert "fused Adam" in text and "convolutions" in text  # the committed profile
    # the live rates (nbval skips this cell's output: they depend on the CPU): the same steps, the same speed within 2x
    live = dict(re.findall(r"^\w+ +(p2p|p2p, simultaneous update) +\d+\.\d\d steps/s +(\d+\.\d\d)x the tutorial's step", text,
                           re.MULTILINE))
    assert len(live) == 2 and all(0.5 < float(ratio) < 2 for ratio in live.values()), live
    assert re.search(r"simultaneous +largest .*the same training, up to float rounding: True", text)
    assert "def minimize(" in text and "def loss_scaling(" in text  # the arithmetic the learner's step leaves out
    # at the tutorial's own scale (D's summed loss) the runs differ through Adam's epsilon: more than rounding, still small
    summed = re.search(r"against the tutorial's summed D loss: largest relative difference of a loss (\S+), of the weight "
                       r"updates after 5 steps (\S+)", text)
    assert summed and 1e-4 < float(summed.group(2)) < 0.05 and float(summed.group(1)) < 1e-3
    assert "mixed_float16   layers compute in float16" in text and "LossScaleOptimizer" in text
    assert "mixed_bfloat16  layers compute in bfloat16" in text
    assert "worker 0 finished: exit code 0" in text and "worker 1 finished: exit code 0" in text
    assert "metrics.csv steps: [3, 6]" in text
    # the committed results read: a pass of D, the paper's schedule on this CPU, each lever against the step without it
    assert re.search(r"^paper +256px ngf=64: .* with one pass of D fewer: +\d+\.\d\d in a forward pass of D, \d+% of the step$",
                     text, re.MULTILINE)
    assert re.search(r"^the paper preset's 80,000 steps at p2p's \d+\.\d\d steps/s on this CPU: \d+\.\d hours$", text,
                     re.MULTILINE)
    assert len(re.findall(r"^(paper|cpu) +[\w ,]+ +\d+\.\d\dx  \('.+' / '.+'\)$", text, re.MULTILINE)) == 18
    # halving D's loss under Adam (nbval skips this cell's output: its last digits depend on the CPU's arithmetic)
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
    # sqrt(v) without bias correction, which epsilon is added to
    assert "0.032 |g| (t = 1), 0.141 |g| (t = 20); epsilon 1e-7 is not small against it below |g| = 3e-06 (t = 1), 7e-07" in text


#: The short runs whose rows the chapter "Troubleshooting your data" prints; "Troubleshooting training" prints every other one.
DATA_RUNS = ("baseline", "photos moved 2 px", "photos moved 8 px", "AtoB (wrong direction)")

#: The line the troubleshooting chapters print for the short runs they read: command, steps, commit, date, machine, CPU time.
PROVENANCE = (r"^results: `python -m p2p[ .]troubleshoot\S* [^`]+` \(\d+ steps per run\) at commit \w{10} "
              r"on \d{4}-\d\d-\d\d, .+, \d+ CPU min$")


def troubleshooting_training(text, kinds):
    from p2p.lab.troubleshooting import VARIANTS

    assert "image/png" in kinds and "book run 'l1-cgan' (" in text
    assert re.search(PROVENANCE, text, re.MULTILINE)  # the short runs' provenance, in one line
    for call in ("generator.predict(x)", "generator(x)"):
        largest = re.search(re.escape(call) + r" differs from training=False by at most (\S+)", text)
        assert largest and float(largest.group(1)) < 1e-5  # the same inference, in another graph: rounding at most
    gradients = re.search(r"non-saturating -log D (\d\.\d+), saturating log\(1 - D\) (\d\.\d+)", text)
    assert gradients and float(gradients.group(1)) + float(gradients.group(2)) == pytest.approx(1.0, abs=2e-3)
    for name in VARIANTS:  # every short run has a row of scores, in this chapter or the data one
        if name not in DATA_RUNS or name == "baseline":
            assert re.search(r"^" + re.escape(name) + r"(, [\w ]+)? +-?\d+\.\d{3}", text, re.MULTILINE), name
    # the book run has learned most of the checkerboard away: per unit of sharpness, well below the 600-step runs'
    book = re.search(r"^the book run 'l1-cgan' +\(16 test label maps\): .* checkerboard / sharpness (\d\.\d{3})", text,
                     re.MULTILINE)
    baseline = [float(r) for r in re.search(r"checkerboard / sharpness: baseline, seed by seed (.+)", text).group(1).split(", ")]
    assert book and float(book.group(1)) < 0.75 * min(baseline)
    assert re.search(r"batch 4, InstanceNorm, batches of 4( +\d\.\d{3}){3} +0\.000", text)  # its own statistics
    spreads = dict(re.findall(r"^(G, dropout draws|renderings) +(\d\.\d{3})", text, re.MULTILINE))
    assert float(spreads["G, dropout draws"]) < float(spreads["renderings"])


def troubleshooting_data(text, kinds):
    assert "image/png" in kinds and "book run 'l1-cgan' (" in text
    assert re.search(PROVENANCE, text, re.MULTILINE)  # the short runs' provenance, in one line
    for name in DATA_RUNS:  # the short runs of this chapter have their rows of scores
        assert re.search(r"^" + re.escape(name) + r"(, [\w ]+)? +-?\d+\.\d{3}", text, re.MULTILINE), name
    # the label colours' share of each side (nbval skips this cell's output: its last digit depends on the CPU)
    shares = dict(re.findall(r"direction=(\w+): (\d+)% of the input pixels", text))
    assert int(shares["BtoA"]) > 90 and int(shares["AtoB"]) < 10
    assert "label colours: pixels within 0.15 ([-1, 1] units) of one of the 12 CMP colours" in text
    # question 2: bad files stop the pipeline, named, with the fix; 16-bit and 1-bit images read as 8-bit RGB
    assert "bad-data/truncated/1.jpg: cannot be decoded as an image. Delete or replace it." in text
    assert "bad-data/odd-width/1.jpg: width 255 is odd" in text
    assert "bad-data/unmatched/B: lacks 1 of the files in bad-data/unmatched/A (2.png)" in text
    assert "PIL's convert('RGB') makes 100% of it white" in text and "the 8-bit grey image in each channel: True" in text
    assert "values [0, 255], channels equal: True" in text
    # question 3: the cache budget against the released datasets
    assert "data.CACHE_BUDGET = 2 GiB: 4,375 pairs at 256 px" in text
    cached = dict(re.findall(r"^(\w+) +[\d,]+ +\d+\.\d\d +(cached|decoded on every pass)$", text, re.MULTILINE))
    assert {name for name, way in cached.items() if way == "cached"} == {"facades", "cityscapes", "maps"} and len(cached) == 6
    assert "Generator(100): image_size must be a power of two" in text
    assert "rebuilt(generator, 128, 192): a 128x192 input does not fit this generator" in text and "multiples of 128" in text
    still = re.search(r"still camera +(\d\.\d{3}) +(\d\.\d{3}) +(\d\.\d{3}) +(\d\.\d{3})", text)
    assert still and float(still.group(1)) == float(still.group(3)) == 0.0 < float(still.group(2))  # dropout alone flickers


CHECKS = {
    "01-introduction": introduction, "02-data": data, "03-objective": objective, "04-generator": generator,
    "05-patchgan": patchgan, "06-train-step": train_step, "07-running": running, "08-play": play,
    "09-reproducing": reproducing, "appendix-scaling": scaling, "10-troubleshooting-training": troubleshooting_training,
    "11-troubleshooting-data": troubleshooting_data,
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
        outputs = [output for cell in self.cells for output in cell.test_outputs]
        self.check(*printed(outputs))
        # every number the prose states is one this run printed (or a quotation)
        markdown, _ = prose_numbers.notebook_text(nbformat.read(self.path, as_version=4))
        compared = [output for cell in self.cells if cell.options["check"] for output in cell.test_outputs]
        uncompared = [output for cell in self.cells if not cell.options["check"] for output in cell.test_outputs]
        unprinted = prose_numbers.unprinted(self.path.stem, markdown, prose_numbers.printed_text(compared),
                                            prose_numbers.printed_text(uncompared))
        assert not unprinted, "numbers in the prose that this run did not print:\n" + "\n".join(unprinted)

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
