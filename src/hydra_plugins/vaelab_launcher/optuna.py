"""vaelab's Optuna sweeper: the plugin's ``OptunaSweeper``, resumable, with optional pruning.
``hparams_search=optuna`` selects it (``hydra/sweeper=vaelab_optuna``: conf/hydra/sweeper/vaelab_optuna.yaml).

With the study stored in the sweep dir (``hydra.sweeper.storage``: SQLite), re-running the search
with the same ``hydra.sweep.dir`` continues it: ``n_trials`` counts the study's trials in total,
and the new trials' job folders are numbered after the old ones (job ``i`` is trial ``i``), so no
trial meets another's run dir. The sampler's seed moves on by the trials so far, so the continued
search does not draw its first trials again.

A trial still ``RUNNING`` in the storage whose run dir no process holds (its lock is free: the
sweep was killed) is finished first: run again in its own run dir with its own parameters and
``resume=true``, so it continues its ``last.ckpt`` (or starts over if it had none) and ends with
the numbers of an uninterrupted trial; one that had already ended (its ``status.json`` says
completed or pruned) is told to the study as it ended. So the study reaches ``n_trials`` and no
trial stays ``RUNNING`` without a process.

``hydra.sweeper.pruner`` (``hydra/sweeper/pruner=median`` or ``hyperband``; null = off) lets Optuna
stop unpromising trials: each job re-opens its trial in the stored study (job number = trial
number) and reports ``val/loss`` per epoch (:mod:`vaelab.runs.pruning`); a pruned job records
``pruned`` in its ``status.json`` and the sweeper tells the study ``PRUNED``.

The loop over trials is this class's own rather than the plugin's, which can only tell a study
COMPLETE or FAIL and always starts new trials; the search space, the trials' overrides and the
sampler are the plugin's.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as _PluginOptunaSweeper

from vaelab.errors import UserError
from vaelab.runs.layout import COMPLETED, METRICS, PRUNED, STATUS, read_json
from vaelab.runs.lock import held_by


class OptunaSweeper(_PluginOptunaSweeper):
    """The plugin's Optuna sweeper, continuing the stored study of an earlier run of the search,
    its killed trials included, and telling pruned trials as pruned."""

    def __init__(self, pruner: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pruner = pruner  # instantiated by Hydra; each job builds its own from the config

    def sweep(self, arguments: list[str]) -> None:
        import optuna

        impl = self.sweeper
        if self.pruner is not None and not impl.storage:
            _refuse(
                "hydra.sweeper.pruner needs a stored study: each trial reports its val/loss to it from its own job; "
                "set hydra.sweeper.storage=sqlite:///<file>, or hydra/sweeper/pruner=null"
            )
        space, fixed = self._search_space(arguments)
        done = _stored_trials(impl)
        if done:
            print(f"continuing study {impl.study_name} in {impl.storage}: {done} trial(s) so far, {max(impl.n_trials - done, 0)} to go", flush=True)
            impl.sampler = _reseeded(impl, done)
        study = optuna.create_study(
            study_name=impl.study_name, storage=impl.storage, sampler=impl.sampler, directions=impl._get_directions(), load_if_exists=True
        )
        self._finish_killed_trials(study, space, fixed)
        to_go = max(impl.n_trials - done, 0)
        while to_go > 0:
            trials = [study.ask() for _ in range(min(to_go, impl.n_jobs))]
            self._run(study, [t.number for t in trials], impl._configure_trials(trials, space, fixed))
            to_go -= len(trials)
        _save_best(study, Path(str(self.sweeper.config.hydra.sweep.dir)))

    def _search_space(self, arguments: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The plugin's search space (``hydra.sweeper.params`` and the command line's sweeps) and
        fixed overrides; a grid sampler gets its grid, and ``n_trials`` at most the grid's size."""
        import optuna
        from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

        impl = self.sweeper
        impl._process_searchspace_config()
        space_from_overrides, fixed = create_params_from_overrides([*impl._parse_sweeper_params_config(), *arguments])
        space = dict(impl.search_space_distributions or {})
        space.update(space_from_overrides)
        if isinstance(impl.sampler, functools.partial) and impl.sampler.func == optuna.samplers.GridSampler:
            grid = {name: impl._to_grid_sampler_choices(d) for name, d in space.items()}
            impl.sampler = impl.sampler(grid)
            size = 1
            for choices in grid.values():
                size *= len(choices)
            impl.n_trials = min(impl.n_trials, size)
        for name in fixed:
            space.pop(name, None)
        return space, fixed

    def _finish_killed_trials(self, study: Any, space: dict[str, Any], fixed: dict[str, Any]) -> None:
        """Finish every trial left ``RUNNING`` by a sweep that is gone (its run dir unlocked): told
        as it ended when its job had ended, else run again with its parameters and ``resume=true``."""
        from optuna.trial import TrialState

        sweep_dir = Path(str(self.sweeper.config.hydra.sweep.dir))
        metric = str(self.sweeper.config.get("optimized_metric") or "val_loss_min")
        again: list[Any] = []
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            run_dir = sweep_dir / str(trial.number)
            holder = held_by(run_dir)
            if holder is not None:
                print(f"trial {trial.number} is running in another process (pid {holder}, {run_dir}): left to it", flush=True)
                continue
            status = read_json(run_dir / STATUS).get("status")
            if status in (COMPLETED, PRUNED) and (run_dir / METRICS).is_file():
                print(f"trial {trial.number} ended ({status}) before its sweep was killed: recorded as such", flush=True)
                _tell(study, trial.number, run_dir, metric)
            elif set(trial.params) != set(space):
                print(f"trial {trial.number} was killed before its parameters were drawn: recorded as failed", flush=True)
                study.tell(trial.number, state=TrialState.FAIL)
            else:
                again.append(trial)
        for start in range(0, len(again), self.sweeper.n_jobs):
            batch = again[start : start + self.sweeper.n_jobs]
            # the trial's own parameters, in the search space's order as when it was first launched
            overrides = [tuple(f"{k}={v}" for k, v in {**{k: t.params[k] for k in space}, **fixed, "resume": "true"}.items()) for t in batch]
            for trial, line in zip(batch, overrides):
                shown = " ".join(o for o in line if o.split("=", 1)[0] in trial.params)
                print(f"trial {trial.number} was killed (status {read_json(sweep_dir / str(trial.number) / STATUS).get('status', 'none')}): "
                      f"continuing it in {sweep_dir / str(trial.number)} with {shown}", flush=True)  # fmt: skip
            for numbers, lines in _consecutive([t.number for t in batch], overrides):
                self._run(study, numbers, lines)

    def _run(self, study: Any, numbers: list[int], overrides: list[Any]) -> None:
        """Launch the jobs of trials ``numbers`` (consecutive: job number = trial number) and tell
        the study how each ended: COMPLETE with its objective, PRUNED, or FAIL."""
        from optuna.trial import TrialState

        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
        returns = self.sweeper.launcher.launch(overrides, initial_job_idx=numbers[0])
        failures = 0
        for number, ret in zip(numbers, returns):
            run_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir)) if ret.hydra_cfg is not None else None
            if run_dir is not None and read_json(run_dir / STATUS).get("status") == PRUNED:
                study.tell(number, state=TrialState.PRUNED)
                continue
            try:
                value = float(ret.return_value)  # a failed job raises its exception here, or returned None
            except Exception as exc:  # the job's own failure, of any kind: recorded, the search goes on
                print(f"trial {number} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                study.tell(number, state=TrialState.FAIL)
                failures += 1
                continue
            _tell_value(study, number, value)
        if failures / len(returns) > self.sweeper.max_failure_rate:
            for ret in returns:
                ret.return_value  # noqa: B018 - raises the first failed job's exception, as the plugin does


def _consecutive(numbers: list[int], overrides: list[Any]) -> list[tuple[list[int], list[Any]]]:
    """``numbers`` (ascending) cut into runs of consecutive numbers, each with its overrides: one
    launch gives its jobs consecutive numbers."""
    groups: list[tuple[list[int], list[Any]]] = []
    for number, line in zip(numbers, overrides):
        if groups and groups[-1][0][-1] + 1 == number:
            groups[-1][0].append(number)
            groups[-1][1].append(line)
        else:
            groups.append(([number], [line]))
    return groups


def _tell(study: Any, number: int, run_dir: Path, metric: str) -> None:
    """Tell the study how a job that ended before its sweep was killed ended, from its run dir."""
    from optuna.trial import TrialState

    if read_json(run_dir / STATUS).get("status") == PRUNED:
        study.tell(number, state=TrialState.PRUNED)
    else:
        _tell_value(study, number, float(read_json(run_dir / METRICS).get(metric, float("nan"))))


def _tell_value(study: Any, number: int, value: float) -> None:
    """COMPLETE with ``value``; a grid sampler that has run its grid stops the study from within
    ``tell`` (a RuntimeError the plugin ignores too)."""
    import math

    from optuna.trial import TrialState

    if not math.isfinite(value):
        study.tell(number, state=TrialState.FAIL)
        return
    try:
        study.tell(number, values=[value])
    except RuntimeError as exc:
        if "`Study.stop` is supposed to be invoked inside an objective function or a callback." not in str(exc):
            raise


def _save_best(study: Any, sweep_dir: Path) -> None:
    """``<sweep dir>/optimization_results.yaml``, as the plugin writes it: the best trial's
    parameters and value (the Pareto front for several objectives); nothing when no trial completed."""
    from omegaconf import OmegaConf
    from optuna.trial import TrialState

    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return
    if len(study.directions) < 2:
        best = study.best_trial
        results: dict[str, Any] = {"name": "optuna", "best_params": best.params, "best_value": best.value}
    else:
        results = {"name": "optuna", "solutions": [{"params": t.params, "values": t.values} for t in study.best_trials]}
    OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")


def _refuse(message: str) -> None:
    from vaelab.config.validate import exit_with

    exit_with(UserError(message))


def _stored_trials(impl: Any) -> int:
    """How many trials the stored study holds (0 for a new search or an in-memory study)."""
    import optuna

    if not impl.storage:
        return 0
    try:
        return len(optuna.load_study(study_name=impl.study_name, storage=impl.storage).trials)
    except KeyError:  # no such study yet: a new search
        return 0


def _reseeded(impl: Any, done: int) -> Any:
    """The study's sampler seeded with ``seed + done``: a sampler built again from the same seed
    would draw its first random trials again, so a continued search would repeat the trials it
    already ran. Deterministic still (the same stored study continues the same way); the new
    trials are not those an uninterrupted search would have drawn."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    sampler = OmegaConf.select(impl.config, "hydra.sweeper.sampler")
    if sampler is None or OmegaConf.select(sampler, "seed") is None:
        return impl.sampler  # unseeded (or a grid): nothing repeats by construction
    return instantiate(sampler, seed=int(sampler.seed) + done)
