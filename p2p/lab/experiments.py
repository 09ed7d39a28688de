"""One resumable runner for the book's experiments: the ablations, the troubleshooting runs and the book runs.

An experiment is a results folder holding results.json and one run folder per training run
(out/runs/<run>). Each `Job` is trained with `p2p.training.train` (so it resumes from its
checkpoint and has its metrics.csv), then measured, and results.json is rewritten, whole, after
every job, with the provenance and the wall and CPU time spent so far; a job already in it is
skipped. Jobs that share a run folder train it further, step count by step count (the book runs'
milestones). Explained in the appendix "Run folders".
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm.auto import tqdm

from p2p import training
from p2p.config import Config
from p2p.lab import records, variants
from p2p.runtime import files, resume


@dataclasses.dataclass(frozen=True)
class Job:
    """One training run to measure: its key in results.json, its run folder's name, its settings and data."""

    key: str
    run: str
    config: Config
    data_dir: Path
    until: int | None = None  # stop the run at this step (its schedule still spans config.steps)


class Experiment:
    """A results folder: `results` is its results.json, saved by `save`; `run` trains and measures the jobs not yet in it."""

    def __init__(self, out, settings: dict, *, command: str, growing: tuple[str, ...] = ()):
        """Open (or start) the experiment in `out`; refuse a results.json that is not one of this command's (`read_results`),
        or was made with other `settings` (but the `growing` ones: seeds), before anything is written."""
        self.out = Path(out)
        self.path = self.out / "results.json"
        self.kind = command.removeprefix("python -m p2p ").split()[0]  # ablate, troubleshoot, bookruns
        self.results = read_results(self.path, self.kind) if self.path.exists() else {}
        saved = self.results.get("config", settings)
        # a setting added to Config since: the experiment ran with its value of before
        saved = {**{k: v for k, v in resume.ADDED_SETTINGS.items() if k in settings}, **saved}
        if changed := differences(saved, settings, ignore=growing):
            raise ValueError(f"{self.path}: made with other settings ({changed}): use another --out, or delete it")
        self.out.mkdir(parents=True, exist_ok=True)
        self.results["kind"] = self.kind
        self.results["config"] = {**settings, **{k: saved.get(k, settings.get(k)) for k in growing}}
        self.results["provenance"] = records.provenance(command=command)
        for key in ("wall_seconds", "cpu_seconds"):
            self.results.setdefault(key, 0.0)
        self.results.setdefault("runs", {})
        self._clocks = (time.monotonic(), time.process_time())

    def save(self) -> None:
        """Add the time spent since the last save, then write results.json whole."""
        now = (time.monotonic(), time.process_time())
        self.results["wall_seconds"] += now[0] - self._clocks[0]
        self.results["cpu_seconds"] += now[1] - self._clocks[1]
        self._clocks = now
        files.write_json(self.path, self.results)

    def run(self, jobs: Iterable[Job], measure: Callable, *, desc: str = "runs", progress: bool = True,
            log_every: int = 50, checkpoint_every: int = 1000) -> dict:
        """Train each job not yet in results["runs"], store measure(job, model) under its key, and save after each."""
        jobs = list(jobs)
        for job in tqdm(jobs, desc=desc, unit="run", disable=not progress):
            if job.key in self.results["runs"]:
                continue
            started = (time.monotonic(), time.process_time())
            model = training.train(job.data_dir, self.out / "runs" / job.run, job.config, build=variants.build_model,
                                   until=job.until, log_every=log_every, checkpoint_every=checkpoint_every,
                                   progress=progress)
            self.results["runs"][job.key] = {**measure(job, model), "train_wall_seconds": time.monotonic() - started[0],
                                             "train_cpu_seconds": time.process_time() - started[1]}
            self.save()
        return self.results


def read_results(path, kind: str) -> dict:
    """The results.json at `path` of an experiment of `kind` (ablate, troubleshoot, bookruns); ValueError naming it if not.

    It must be a JSON object with "config" and "runs", and made by that command ("kind"; files
    written before "kind" was recorded are taken by their settings, which `Experiment` compares).
    """
    path, fix = Path(path), f"`python -m p2p {kind}`: give another --out, or move it away"
    try:
        results = json.loads(path.read_text())
    except ValueError as err:  # not JSON, or not text
        raise ValueError(f"{path}: unreadable as JSON ({err}), so not the results of {fix}") from None
    if not (isinstance(results, dict) and isinstance(results.get("config"), dict) and isinstance(results.get("runs"), dict)):
        raise ValueError(f'{path}: no "config" and "runs", so not the results of {fix}')
    if results.get("kind", kind) != kind:
        raise ValueError(f"{path}: the results of `python -m p2p {results['kind']}`, not of {fix}")
    return results


def differences(saved: dict, settings: dict, *, ignore=(), labels=("there", "now")) -> str:
    """The settings that differ between `saved` and `settings`, for a message: "steps 3 there, 4 now; ..." ("" if none)."""
    def shown(values, key):
        return json.dumps(values[key], default=str) if key in values else "unset"

    unset = object()
    keys = [key for key in {**saved, **settings} if key not in ignore and saved.get(key, unset) != settings.get(key, unset)]
    return "; ".join(f"{key} {shown(saved, key)} {labels[0]}, {shown(settings, key)} {labels[1]}" for key in keys)
