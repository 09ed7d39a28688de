"""Training runs: resuming says so, and a run is never silently handed back longer than asked for."""

import pytest

from p2p import runs, training


def test_resuming_is_announced_and_fewer_steps_are_refused(facades_root, tmp_path, capsys):
    run = tmp_path / "run"
    training.train(facades_root, run, "tiny", steps=4, log_every=2, checkpoint_every=2, progress=False)
    assert "resuming" not in capsys.readouterr().out
    model = training.train(facades_root, run, "tiny", steps=6, log_every=2, checkpoint_every=2, progress=False)
    assert f"resuming {run} at step 4 of 6" in capsys.readouterr().out
    assert int(model.gen_optimizer.iterations.numpy()) == 6
    with pytest.raises(ValueError, match="has already trained 6 steps, more than the 4 asked for"):
        training.train(facades_root, run, "tiny", steps=4, log_every=2, checkpoint_every=2, progress=False)
    same = training.train(facades_root, run, "tiny", steps=6, log_every=2, checkpoint_every=2, progress=False)
    assert int(same.gen_optimizer.iterations.numpy()) == 6  # asked for what it has: loaded, not trained
    odd = training.train(facades_root, tmp_path / "odd", "tiny", steps=5, log_every=2, checkpoint_every=2, progress=False)
    again = training.train(facades_root, tmp_path / "odd", "tiny", steps=5, log_every=2, checkpoint_every=2, progress=False)
    assert int(again.gen_optimizer.iterations.numpy()) == int(odd.gen_optimizer.iterations.numpy()) >= 5  # the same command again


def test_compact_weights_round_trip(tmp_path):
    from p2p.models import Generator

    generator = Generator(32, 8)
    runs.save_weights_to(generator, tmp_path / "g.npz")
    again = Generator(32, 8)
    runs.set_weights_from(again, tmp_path / "g.npz")
    for a, b in zip(generator.get_weights(), again.get_weights()):
        assert abs(a - b).max() <= 1e-3 * max(abs(a).max(), 1)  # float16: three significant digits
    with pytest.raises(ValueError, match="do not fit"):
        runs.set_weights_from(Generator(64, 8), tmp_path / "g.npz")
