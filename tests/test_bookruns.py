"""Book runs: the shipped models load by name, carry their provenance, and show the paper's lessons."""

import hashlib
import json
import os
import shutil

import pytest

from p2p import config as configs
from p2p import data, runs
from p2p.__main__ import main
from p2p.inference import translate
from p2p.lab import bookruns, evaluate, facades, variants


@pytest.mark.parametrize("name", list(bookruns.BOOK_RUNS))
def test_every_book_run_is_shipped_with_its_provenance(name):
    folder = bookruns.folder(name)
    provenance = json.loads((folder / "provenance.json").read_text())
    assert provenance["command"].startswith(f"python -m p2p bookruns {name}")  # the control at batch 10: --steps 30000
    assert provenance["steps"] > 0
    assert provenance["train_seconds"] > 0 and len(provenance["commit"]) >= 40
    config = variants.read(folder)  # a variant's settings too (the L1 runs: gan_weight 0)
    expected = variants.configure("book", steps=provenance["steps"], precision="float32", **bookruns.get(name).options)
    assert config == expected
    assert configs.read(folder) == configs.resolve(
        "book", **{k: v for k, v in expected.to_dict().items() if k != "variant"})  # the core reads its architecture
    steps = sorted(k for k in bookruns.milestones(name) if k != "truth")
    assert steps[-1] == provenance["steps"] and len(steps) >= 5
    samples = bookruns.samples(name)
    assert samples["inputs"].shape == samples[f"step_{steps[-1]}"].shape == (bookruns.SAMPLES, 128, 128, 3)
    assert (folder / "discriminator.npz").exists() == bookruns.get(name).keep_discriminator
    assert runs.read_metrics(folder / "metrics.csv")["step"][-1] == provenance["steps"]
    assert name in bookruns.describe(name) and provenance["command"] in bookruns.describe(name)


def test_the_shipped_weights_stay_small():
    size = sum(f.stat().st_size for f in bookruns.SHIPPED.rglob("*") if f.is_file())
    assert size < 60e6


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    root = facades.make_facades(tmp_path_factory.mktemp("facades-128"), size=128, progress=False)
    return data.example_batch(root / "test", facades.SPLITS["test"], image_size=128)


@pytest.fixture(scope="module")
def measured(test_split):
    """Each book run's measures on the whole test split, translated one image at a time, and the real photos'."""
    inputs, targets = test_split
    truth = {**evaluate.blur_measures(targets, targets), "window_contrast": evaluate.window_contrast(targets, inputs)}
    results = {"truth": truth}
    for name in bookruns.BOOK_RUNS:
        generator, _ = bookruns.load(name, verbose=False)
        outputs = translate(generator, inputs)
        results[name] = {**evaluate.blur_measures(outputs, targets), "window_contrast": evaluate.window_contrast(outputs, inputs)}
    return results


@pytest.mark.slow  # translates the test split with every book run
def test_l1_cgan_is_sharp_and_l1_alone_is_blurred(measured):
    truth, l1, cgan = measured["truth"], measured["l1"], measured["l1-cgan"]
    assert cgan["sharpness"] >= 0.7 * truth["sharpness"]
    assert cgan["sharpness"] >= 1.5 * l1["sharpness"]
    assert l1["l1"] < cgan["l1"]  # L1 alone is closest in L1, which it minimises


@pytest.mark.slow  # translates the test split with every book run
def test_the_shipped_milestones_are_what_the_models_give(measured):
    for name in bookruns.BOOK_RUNS:
        saved = bookruns.milestones(name)
        final = saved[max(k for k in saved if k != "truth")]
        for key in ("sharpness", "colour_spread", "l1"):  # dropout draws differ; the measures barely move
            assert final[key] == pytest.approx(measured[name][key], rel=0.1, abs=0.005)


@pytest.mark.slow  # translates the test split with every book run
def test_the_encoder_decoder_draws_the_layout_not_one_average_facade(measured):
    contrast = {name: measures["window_contrast"] for name, measures in measured.items()}
    assert contrast["encoder-decoder"] > 0.25  # its windows are dark where the label map puts them
    assert contrast["l1-cgan"] > contrast["encoder-decoder"] and contrast["l1"] > contrast["encoder-decoder-l1"]  # skips help
    assert contrast["encoder-decoder-l1"] < 0.5 * contrast["encoder-decoder"]  # with L1 alone it draws an average facade


@pytest.mark.slow  # trains a book run
def test_a_book_run_retrains_and_exports_at_any_preset(tmp_path):
    out = bookruns.train_book_run("l1-cgan", work=tmp_path / "work", out=tmp_path / "book", preset="tiny", steps=4,
                                  progress=False)
    assert set(bookruns.milestones("l1-cgan", out.parent)) == {1, 2, 4, "truth"}
    generator, config = runs.load_generator(out)
    assert config.preset == "tiny" and config.steps == 4 and generator.input_shape[1] == 32
    assert bookruns.load_discriminator("l1-cgan", out.parent).output_shape[1:3] == (14, 14)
    assert "--preset tiny --steps 4" in bookruns.describe("l1-cgan", out.parent)
    again = bookruns.train_book_run("l1-cgan", work=tmp_path / "work", out=tmp_path / "book", preset="tiny", steps=4,
                                    progress=False)  # finished: nothing is trained again
    assert json.loads((again / "provenance.json").read_text())["steps"] == 4


def test_an_unknown_book_run_names_the_known_ones():
    with pytest.raises(ValueError, match="l1, l1-cgan, encoder-decoder, encoder-decoder-l1"):
        bookruns.load("l2")


# The shipped runs are read-only unless asked (issue 28) --------------------------------------------------------------


def _hashes(folder):
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.rglob("*"))
            if f.is_file()}


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A copy of the shipped book run l1 in place of p2p/lab/trained (which the test checks is left alone), and its hashes."""
    real_folder = bookruns.SHIPPED
    real = _hashes(real_folder)
    copy = tmp_path / "package" / "trained"
    shutil.copytree(bookruns.SHIPPED / "l1", copy / "l1")
    monkeypatch.setattr(bookruns, "SHIPPED", copy)
    yield copy, _hashes(copy)
    assert _hashes(real_folder) == real


def test_the_shipped_runs_are_refused_as_a_place_to_write_before_anything_runs(shipped, tmp_path, capsys):
    # Before: `bookruns l1 --preset tiny --steps 4` trained and replaced the shipped l1 with a 32 px toy.
    copy, hashes = shipped
    tiny = ["bookruns", "l1", "--preset", "tiny", "--steps", "4"]
    for args, named in (([*tiny, "--work", tmp_path / "work", "--out", copy], f"{copy}: holds the shipped book runs"),
                        ([*tiny, "--work", tmp_path / "work", "--out", copy / "l1" / ".."], "--replace-shipped"),
                        ([*tiny, "--work", copy / "work"], f"{copy / 'work'}: lies in the shipped book runs"),
                        ([*tiny, "--work", tmp_path / "work", "--out", tmp_path, "--replace-shipped"], "without --out")):
        assert main([*map(str, args)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and named in err and len(err.splitlines()) == 1, err
    assert _hashes(copy) == hashes and not (tmp_path / "work").exists() and not (copy / "work").exists()
    (tmp_path / "mine" / "l1").mkdir(parents=True)  # a folder of the user's where the export would go
    (tmp_path / "mine" / "l1" / "notes.txt").write_text("mine")
    assert main([*map(str, tiny), "--work", str(tmp_path / "work"), "--out", str(tmp_path / "mine")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'mine' / 'l1'}: exists, and is not a book run's export"), err
    assert os.listdir(tmp_path / "mine" / "l1") == ["notes.txt"] and not (tmp_path / "work").exists()


@pytest.mark.slow  # trains a book run at the tiny preset
def test_retraining_writes_beside_its_work_and_into_the_shipped_runs_only_with_replace_shipped(shipped, tmp_path, capsys):
    copy, hashes = shipped
    tiny = ["bookruns", "l1", "--preset", "tiny", "--steps", "4", "--work", str(tmp_path / "work")]
    assert main(tiny) == 0
    assert _hashes(copy) == hashes
    assert runs.load_generator(tmp_path / "work" / "trained" / "l1")[1].preset == "tiny"
    assert main([*tiny, "--replace-shipped"]) == 0  # finished: exported again, into the shipped folder as asked
    assert runs.load_generator(copy / "l1")[1].preset == "tiny"
