"""The next configuration of a local tuning job, chosen by Optuna (TPE for "bayesian", random sampling).

Stateless on purpose: every suggestion rebuilds an in-memory Optuna study from the trials the catalog
holds (finished ones with their objective or as failed, running ones as running, so TPE's
"constant liar" keeps parallel trials apart) and asks it once. A tuning process that restarts, or a
second one, therefore continues from exactly what is recorded; nothing lives only in memory.

Reproducible: trial ``n`` is asked from a sampler seeded from ``(seed, n)``. With the random strategy
its configuration depends on nothing else, so the same seed gives the same configurations whatever
the results, the timing or a restart; TPE's also depend on the results recorded before it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

from churn_core.tuning.ranges import Range

STRATEGIES = ("bayesian", "random")


@dataclass(frozen=True)
class Observed:
    """One trial as the sampler sees it."""

    params: dict
    state: str  # "complete" | "fail" | "running"
    value: float | None = None


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def distributions(ranges: list[Range]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    result: dict[str, Any] = {}
    for r in ranges:
        if r.kind == "categorical":
            result[r.name] = CategoricalDistribution(list(r.values))
        elif r.kind == "integer":
            result[r.name] = IntDistribution(int(r.low), int(r.high), log=r.scale == "log")
        else:
            result[r.name] = FloatDistribution(float(r.low), float(r.high), log=r.scale == "log")
    return result


def startup_trials(max_trials: int) -> int:
    """Random trials before TPE models the results: a quarter of the budget, 2 to 10 (Optuna's default is 10)."""
    return max(2, min(10, max_trials // 4))


def trial_seed(seed: int, number: int) -> int:
    """The sampler seed of trial ``number`` of a search seeded ``seed``: independent streams per (seed, trial), so
    searches with neighbouring seeds do not share configurations (``seed + number`` would shift one sequence)."""
    import numpy as np

    return int(np.random.SeedSequence([int(seed) % (2**32), int(number)]).generate_state(1)[0])


def sampler(strategy: str, seed: int, max_trials: int):
    optuna = _optuna()
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant_liar is marked experimental
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=startup_trials(max_trials))


def suggest(ranges: list[Range], strategy: str, seed: int, direction: str, number: int, max_trials: int,
            history: list[Observed] = ()) -> dict:
    """The tuned values of trial ``number`` (0-based), given what the earlier trials gave."""
    optuna = _optuna()
    from optuna.trial import TrialState, create_trial

    dists = distributions(ranges)
    study = optuna.create_study(direction=direction, sampler=sampler(strategy, trial_seed(seed, number), max_trials))
    if strategy != "random":  # a random sample ignores history: skip rebuilding it
        states = {"complete": TrialState.COMPLETE, "fail": TrialState.FAIL, "running": TrialState.RUNNING}
        for seen in history:
            params = {k: v for k, v in seen.params.items() if k in dists}
            if set(params) != set(dists):
                continue
            state = states["fail"] if seen.state == "complete" and seen.value is None else states[seen.state]
            try:
                study.add_trial(create_trial(params=params, distributions=dists, state=state,
                                             value=seen.value if state == TrialState.COMPLETE else None))
            except ValueError:
                continue  # a value outside these ranges: not evidence for them
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trial = study.ask(dists)
    return {name: _plain(trial.params[name]) for name in dists}


def _plain(value: Any) -> Any:
    """JSON-friendly Python numbers (Optuna may hand back numpy scalars)."""
    if hasattr(value, "item"):
        return value.item()
    return value


__all__ = ["Observed", "STRATEGIES", "suggest", "distributions", "sampler", "startup_trials"]
