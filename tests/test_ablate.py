"""The ablation runner: the paper's patch sizes matched by share of the image, and a tiny-budget run that resumes."""

import json

import pytest

from p2p import ablate, presets


def test_patch_depths_match_the_share_of_the_image():
    assert ablate.patch_depths(256) == {"1x1": 0, "16x16": 1, "70x70": 3, "286x286": 5}
    assert ablate.patch_depths(128) == {"1x1": 0, "16x16": 1, "70x70": 2, "286x286": 4}


def test_every_table_row_has_a_variant():
    preset = presets.get("cpu")
    names = set(ablate.variants(preset))
    for table, rows in ablate.table_rows(preset).items():
        assert set(rows) == set(ablate.PAPER[table]) - {"ground truth"}
        assert set(rows.values()) <= names


@pytest.mark.slow  # trains every ablation variant
def test_a_tiny_ablation_runs_scores_and_resumes(tmp_path):
    results = ablate.run_ablations(tmp_path, "tiny", steps=3, seeds=(0,), segmenter_steps=5, progress=False)
    assert len(results["runs"]) == len(ablate.variants(presets.get("tiny")))
    for summary in results["variants"].values():
        assert set(summary) == set(ablate.SCORES)
        assert 0 <= summary["per_pixel_acc"]["mean"] <= 1 and summary["per_pixel_acc"]["std"] >= 0
    assert {"commit", "date", "machine"} <= set(results["provenance"]) and results["wall_seconds"] > 0
    assert (tmp_path / "samples" / "L1+cGAN.png").exists()
    loss_table = ablate.format_table(results, "loss")
    assert "ground truth" in loss_table and "0.66 0.23 0.17" in loss_table  # the paper's L1+cGAN row beside ours
    assert "70x70 (n_layers=1)" in ablate.format_table(results, "discriminator")
    pairs = ablate.orderings(results, "loss")
    assert ("L1+cGAN", "GAN", pairs[0][2]) in pairs or any(p[:2] == ("L1+cGAN", "GAN") for p in pairs)
    assert len(pairs) == 10  # 5 rows, all ranked apart by the paper

    # an interrupted ablation: drop one finished run; the rerun redoes that one only
    saved = json.loads((tmp_path / "results.json").read_text())
    kept = dict(saved["runs"])
    del saved["runs"]["GAN / seed 0"]
    (tmp_path / "results.json").write_text(json.dumps(saved))
    again = ablate.run_ablations(tmp_path, "tiny", steps=3, seeds=(0,), segmenter_steps=5, progress=False)
    assert set(again["runs"]) == set(kept)
    assert again["runs"]["L1 / seed 0"] == kept["L1 / seed 0"]
    with pytest.raises(ValueError, match="other settings"):
        ablate.run_ablations(tmp_path, "tiny", steps=4, seeds=(0,), segmenter_steps=5, progress=False)
