"""vaelab's Optuna sweeper: the plugin's ``OptunaSweeper``, resumable. ``hparams_search=optuna``
points ``hydra.sweeper._target_`` at this class.

With the study stored in the sweep dir (``hydra.sweeper.storage``: SQLite), re-running the search
with the same ``hydra.sweep.dir`` continues it: ``n_trials`` counts the study's trials in total,
and the new trials' job folders are numbered after the old ones (job ``i`` is trial ``i``), so no
trial meets another's run dir. The sampler's seed moves on by the trials so far, so the continued
search does not draw its first trials again.
"""

from __future__ import annotations

from typing import Any

from hydra_plugins.hydra_optuna_sweeper.optuna_sweeper import OptunaSweeper as _PluginOptunaSweeper


class OptunaSweeper(_PluginOptunaSweeper):
    """The plugin's Optuna sweeper, continuing the stored study of an earlier run of the search."""

    def sweep(self, arguments: list[str]) -> Any:
        import optuna

        impl = self.sweeper
        done = 0
        if impl.storage:
            try:
                done = len(optuna.load_study(study_name=impl.study_name, storage=impl.storage).trials)
            except KeyError:  # no such study yet: a new search
                done = 0
        if done:
            print(f"continuing study {impl.study_name} in {impl.storage}: {done} trial(s) so far, {max(impl.n_trials - done, 0)} to go", flush=True)
            impl.sampler = _reseeded(impl, done)
        # the trials still to run, numbered after the stored ones
        impl.n_trials = max(impl.n_trials - done, 0)
        impl.job_idx = done
        return super().sweep(arguments)


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
