"""The ablation runner: the paper's patch sizes matched by share of the image, and a tiny-budget run that resumes."""

import json
import math
import re

import pytest

from p2p.__main__ import main
from p2p.config import get_preset
from p2p.lab import ablate, facades


def test_patch_depths_match_the_share_of_the_image():
    assert ablate.patch_depths(256) == {"1x1": 0, "16x16": 1, "70x70": 3, "286x286": 5}
    assert ablate.patch_depths(128) == {"1x1": 0, "16x16": 1, "70x70": 2, "286x286": 4}


def test_every_table_row_has_a_variant():
    preset = get_preset("cpu")
    names = set(ablate.variants(preset))
    for table, rows in ablate.table_rows(preset).items():
        assert set(rows) == set(ablate.PAPER[table]) - {"ground truth"}
        assert set(rows.values()) <= names


def test_table_2_has_the_papers_per_class_accuracy():
    assert [row[1] for row in ablate.PAPER["generator"].values()] == [0.12, 0.09, 0.18, 0.20]


def test_the_t_test_matches_the_closed_forms_for_one_and_two_degrees_of_freedom():
    for t in (0.3, 1.0, 4.303, 12.706):
        assert ablate.t_test_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), abs=1e-6)
        assert ablate.t_test_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), abs=1e-6)
    assert ablate.t_test_p(12.706, 1) == pytest.approx(0.05, abs=1e-4)  # the textbook 5% critical values
    assert ablate.t_test_p(4.303, 2) == pytest.approx(0.05, abs=1e-4)


def _results(scores: dict[str, list[float]]) -> dict:
    return {"runs": {f"{name} / seed {seed}": {"variant": name, "seed": seed, "per_pixel_acc": score}
                     for name, seed_scores in scores.items() for seed, score in enumerate(seed_scores)}}


def test_differences_are_paired_by_seed():
    # b beats a by exactly 0.01 on every seed, while the seeds themselves differ by 0.2: a paired test must see it
    results = _results({"a": [0.5, 0.7, 0.9], "b": [0.51, 0.71, 0.91]})
    d = ablate.paired_difference(results, "b", "a")
    assert d["mean"] == pytest.approx(0.01) and d["se"] == pytest.approx(0.0, abs=1e-9) and d["significant"]
    noisy = ablate.paired_difference(_results({"a": [0.5, 0.7, 0.9], "b": [0.55, 0.68, 0.9]}), "b", "a")
    assert noisy["n"] == 3 and noisy["se"] > 0 and not noisy["significant"]
    one_seed = ablate.paired_difference(_results({"a": [0.5], "b": [0.6]}), "b", "a")
    assert one_seed["mean"] == pytest.approx(0.1) and not one_seed["significant"]


@pytest.mark.slow  # trains every ablation variant
def test_a_tiny_ablation_runs_scores_and_resumes(tmp_path):
    results = ablate.run_ablations(tmp_path, "tiny", steps=3, seeds=(0,), segmenter_steps=5, progress=False)
    assert len(results["runs"]) == len(ablate.variants(get_preset("tiny")))
    for summary in results["variants"].values():
        assert set(summary) == set(ablate.SCORES)
        assert 0 <= summary["per_pixel_acc"]["mean"] <= 1 and summary["per_pixel_acc"]["std"] >= 0
    assert {"commit", "date", "machine"} <= set(results["provenance"]) and results["wall_seconds"] > 0
    assert (tmp_path / "samples" / "L1+cGAN.png").exists()
    loss_table = ablate.format_table(results, "loss")
    assert "ground truth" in loss_table and "0.66 0.23 0.17" in loss_table  # the paper's L1+cGAN row beside ours
    assert "70x70 (n_layers=1)" in ablate.format_table(results, "discriminator")
    pairs = ablate.orderings(results, "loss")
    assert any((p["better"], p["worse"]) == ("L1+cGAN", "GAN") for p in pairs)
    assert len(pairs) == 10  # 5 rows, all ranked apart by the paper
    assert "PSNR (dB)" in ablate.format_table(results, "loss", ablate.IMAGE_SCORES)

    # an interrupted ablation: drop one finished run; the rerun redoes that one only
    saved = json.loads((tmp_path / "results.json").read_text())
    kept = dict(saved["runs"])
    del saved["runs"]["GAN / seed 0"]
    (tmp_path / "results.json").write_text(json.dumps(saved))
    again = ablate.run_ablations(tmp_path, "tiny", steps=3, seeds=(0,), segmenter_steps=5, progress=False)
    assert set(again["runs"]) == set(kept)
    assert again["runs"]["L1 / seed 0"] == kept["L1 / seed 0"]
    with pytest.raises(ValueError, match=r"made with other settings \(steps 3 there, 4 now\)"):
        ablate.run_ablations(tmp_path, "tiny", steps=4, seeds=(0,), segmenter_steps=5, progress=False)


class _Trained(Exception):
    """Raised where an ablation would start its work: the results folder was accepted."""


@pytest.fixture
def accepted(monkeypatch):
    """Stops run_ablations (and run_troubleshooting) once its results folder is accepted, before it makes data."""
    def make_facades(*args, **kwargs):
        raise _Trained
    monkeypatch.setattr(facades, "make_facades", make_facades)


def _tiny_settings(**changed):
    return {"preset": "tiny", "image_size": 32, "steps": 3, "segmenter_steps": 5, "patch_depths": ablate.patch_depths(32),
            "seeds": [0], **changed}


def _files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("content, why", [
    ('{"accuracy": 0.9}', 'no "config" and "runs"'),
    ("[1, 2]", 'no "config" and "runs"'),
    ("my notes", "unreadable as JSON"),
    (json.dumps({"kind": "troubleshoot", "config": {"preset": "tiny"}, "runs": {}}),
     "the results of `python -m p2p troubleshoot`"),
], ids=["a user's JSON", "a list", "not JSON", "troubleshoot's"])
def test_a_results_json_that_is_not_an_ablations_is_refused_naming_it(tmp_path, accepted, content, why):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'results.json'}: ") + ".*" + re.escape(why) + ".*" +
                       re.escape("`python -m p2p ablate`: give another --out, or move it away")) as raised:
        ablate.run_ablations(tmp_path, "tiny", steps=3, seeds=(0,), segmenter_steps=5, progress=False)
    assert "\n" not in str(raised.value) and _files(tmp_path) == {"results.json": content.encode()}  # nothing written
    with pytest.raises(ValueError, match=re.escape(why)):
        ablate.merge_results(tmp_path, tmp_path)


def test_changed_settings_are_named_with_both_values(tmp_path, accepted, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"kind": "ablate", "config": _tiny_settings(), "runs": {}}))
    before = _files(tmp_path)
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'results.json'}: made with other settings (steps 3 there, "
                                                   "4 now; segmenter_steps 5 there, 6 now): use another --out, or delete it")):
        ablate.run_ablations(tmp_path, "tiny", steps=4, seeds=(0,), segmenter_steps=6, progress=False)
    assert main(["ablate", "--out", str(tmp_path), "--preset", "tiny", "--steps", "4", "--segmenter-steps", "5"]) == 2
    assert capsys.readouterr().err.endswith(f"error: {tmp_path / 'results.json'}: made with other settings (steps 3 there, "
                                            "4 now): use another --out, or delete it\n")
    assert _files(tmp_path) == before
    with pytest.raises(_Trained):  # the same settings (more seeds may be added) resume it
        ablate.run_ablations(tmp_path, "tiny", steps=3, seeds=(0, 1), segmenter_steps=5, progress=False)


def test_results_written_before_kinds_were_recorded_still_resume(tmp_path, accepted):
    (tmp_path / "results.json").write_text(json.dumps({"config": _tiny_settings(), "runs": {}, "provenance": {}}))
    with pytest.raises(_Trained):
        ablate.run_ablations(tmp_path, "tiny", steps=3, seeds=(0,), segmenter_steps=5, progress=False)
