"""The algorithms a churn model can be: one entry each, read by every path that needs to know one.

An ``Algorithm`` holds its estimator builder, its hyperparameters (form default, bounds, help), its
default tuning ranges, the short name job names use and how its predictions are explained. The Train
and Tune forms, ``hyperparameters.clean``, job names, ``train.py``'s command line, the pipeline and the
explainer all read this registry, so adding an algorithm is one ``register(...)`` here (and its tests).
``OPTIONS`` is the training script's spelling of every hyperparameter, shared by the algorithms.

Python 3.9, imports nothing of the project; scikit-learn is imported only when a model is built.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

EXPLAIN_FOREST = "forest"  # trees whose probabilities are averaged: pushes in probability
EXPLAIN_BOOSTING = "boosting"  # trees summed into log-odds, each scaled by the learning rate
EXPLAIN_LINEAR = "linear"  # coefficient x (value - training mean), in log-odds
EXPLAINERS = (EXPLAIN_FOREST, EXPLAIN_BOOSTING, EXPLAIN_LINEAR)


@dataclass(frozen=True)
class Param:
    """One hyperparameter of one algorithm, as the form shows it and ``hyperparameters.clean`` checks it."""

    name: str
    kind: str  # "int" | "float" | "choice" | "optional_int"
    default: Any
    help: str
    low: Optional[float] = None
    high: Optional[float] = None
    choices: tuple = ()
    label: str = ""  # the form's words; ``name`` is the technical name (scikit-learn's, SageMaker's)
    choice_labels: tuple = ()  # the form's words for ``choices``, in the same order

    def choice_text(self, choice: str) -> str:
        return dict(zip(self.choices, self.choice_labels)).get(choice, choice)

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def named(self) -> str:
        """Both names, for messages read by analysts and API users alike: ``Number of trees (n_estimators)``."""
        return "%s (%s)" % (self.label, self.name) if self.label else self.name

    @property
    def range_text(self) -> str:
        if self.kind == "choice" or self.low is None:
            return ""
        return "%g to %g" % (self.low, self.high) + (", empty = no limit" if self.kind == "optional_int" else "")


@dataclass(frozen=True)
class Option:
    """One option of ``train.py``'s command line: its spellings, the script's default and its rule.

    Rules: ``whole`` (a whole number >= ``minimum``, <= ``maximum`` if set), ``optional_whole`` (the
    same, or none), ``positive`` (a number > 0), ``choice`` (none or one of ``choices``), ``column``
    (a column name, not empty). The script checks more loosely than the form: it also serves API users."""

    flags: Tuple[str, ...]
    default: Optional[str]
    rule: str
    minimum: int = 1
    maximum: Optional[int] = None
    choices: Tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.flags[0][2:].replace("-", "_")


# The script validates every option whatever the algorithm, in this order; ``target`` is the dataset's.
OPTIONS: Tuple[Option, ...] = (
    Option(("--n_estimators", "--n-estimators", "--estimator", "--estimators"), "100", "whole"),
    Option(("--max_depth", "--max-depth"), "None", "optional_whole"),
    Option(("--min_samples_leaf", "--min-samples-leaf"), "1", "whole"),
    Option(("--learning_rate", "--learning-rate"), "0.1", "positive"),
    Option(("--class_weight", "--class-weight"), "none", "choice", choices=("balanced",)),
    Option(("--random_state", "--random-state"), "42", "whole", minimum=0, maximum=2**32 - 1),
    Option(("--target",), None, "column"),
    Option(("--C", "--c"), "1.0", "positive"),
    Option(("--max_iter", "--max-iter"), "1000", "whole"),
    Option(("--cv_folds", "--cv-folds"), "0", "whole", minimum=0, maximum=20),
)


@dataclass(frozen=True)
class Algorithm:
    """Everything the product knows about one algorithm."""

    name: str
    label: str
    short: str  # in job names: churn-rf-2026-...
    help: str
    model_class: str  # the fitted estimator's class name: how a loaded model finds its entry
    build: Callable[[Any], Any]  # train.py's parsed hyperparameters -> the unfitted estimator
    params: Tuple[Param, ...]
    ranges: Dict[str, Any] = field(default_factory=dict)  # the Tune form's default search space
    explainer: str = EXPLAIN_FOREST
    scale_numeric: bool = False  # standardise numeric columns before the estimator (linear models)
    weights_by_sample: bool = False  # class_weight="balanced" reaches fit() as sample weights


REGISTRY: Dict[str, Algorithm] = {}


def register(algorithm: Algorithm) -> Algorithm:
    """Add ``algorithm`` to the registry (after the ones before it: forms list them in this order)."""
    known = set(o.name for o in OPTIONS)
    unknown = [p.name for p in algorithm.params if p.name not in known]
    if unknown:
        raise ValueError("%s: hyperparameter(s) %s have no option in OPTIONS; add them there."
                         % (algorithm.name, ", ".join(unknown)))
    if algorithm.explainer not in EXPLAINERS:
        raise ValueError("%s: explainer must be one of %s." % (algorithm.name, ", ".join(EXPLAINERS)))
    REGISTRY[algorithm.name] = algorithm
    return algorithm


def names() -> Tuple[str, ...]:
    return tuple(REGISTRY)


def get(name: str) -> Optional[Algorithm]:
    return REGISTRY.get(name)


def for_model(model: Any) -> Optional[Algorithm]:
    """The entry of a fitted estimator (by its class name), or None for an estimator of no entry."""
    kind = type(model).__name__
    for algorithm in REGISTRY.values():
        if algorithm.model_class == kind:
            return algorithm
    return None


class View(Mapping):
    """A read-only mapping algorithm name -> ``pick(algorithm)``, read from the registry at each access
    (so the dashboard's tables are the registry, not copies of it)."""

    def __init__(self, pick: Callable[[Algorithm], Any]) -> None:
        self._pick = pick

    def __getitem__(self, name: str) -> Any:
        return self._pick(REGISTRY[name])

    def __iter__(self) -> Iterator[str]:
        return iter(list(REGISTRY))

    def __len__(self) -> int:
        return len(REGISTRY)


def default_ranges(algorithm: Algorithm) -> Dict[str, Any]:
    """A copy of the algorithm's default search space, the caller's to change."""
    return copy.deepcopy(algorithm.ranges)


# --------------------------------------------------------------------------- the product's algorithms


_SEED = Param("random_state", "int", 42, "The same seed gives the same model on the same data.", 0, 2**31 - 1,
              label="Random seed")
_CLASS_WEIGHT = Param(
    "class_weight",
    "choice",
    "none",
    "'balanced' counts each churner as much as the more numerous stayers; finds more churners (recall).",
    choices=("none", "balanced"),
    label="Weight of churners",
    choice_labels=("as in the data (none)", "balanced"),
)

_CV_FOLDS = Param(
    "cv_folds", "int", 0,
    "Also fit the model this many times inside the training split (k-fold), so every training customer gets a "
    "probability from a model that did not see them: tuning ranks trials by it and the campaign planner picks its "
    "threshold on it, leaving the test split for reporting only. 0 = off (faster).",
    0, 20, label="Cross-validation folds",
)


def _random_forest(args: Any) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(
        n_estimators=args.n_estimators,
        max_depth=args.max_depth,
        min_samples_leaf=args.min_samples_leaf,
        class_weight=args.class_weight,
        random_state=args.random_state,
        n_jobs=-1,
    )


def _gradient_boosting(args: Any) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    return GradientBoostingClassifier(
        n_estimators=args.n_estimators,
        learning_rate=args.learning_rate,
        max_depth=args.max_depth if args.max_depth is not None else 3,
        min_samples_leaf=args.min_samples_leaf,
        random_state=args.random_state,
    )


def _logistic_regression(args: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=args.C, max_iter=args.max_iter, class_weight=args.class_weight,
                              random_state=args.random_state)


register(Algorithm(
    name="random_forest",
    label="Random forest",
    short="rf",
    help="Many decision trees voting; a strong default that needs little tuning.",
    model_class="RandomForestClassifier",
    build=_random_forest,
    params=(
        Param("n_estimators", "int", 100, "More trees are steadier but slower.", 1, 2000, label="Number of trees"),
        Param("max_depth", "optional_int", None, "How many questions deep a tree may grow.", 1, 100,
              label="Maximum tree depth"),
        Param("min_samples_leaf", "int", 1, "Fewest customers a tree's final group may hold; higher smooths the "
              "model.", 1, 500, label="Fewest customers per leaf"),
        _CLASS_WEIGHT,
        _SEED,
        _CV_FOLDS,
    ),
    ranges={
        "n_estimators": {"min": 20, "max": 300, "scale": "log"},
        "max_depth": {"min": 3, "max": 30},
        "min_samples_leaf": {"min": 1, "max": 50, "scale": "log"},
        "class_weight": ["none", "balanced"],
    },
    explainer=EXPLAIN_FOREST,
))

register(Algorithm(
    name="gradient_boosting",
    label="Gradient boosting",
    short="gb",
    help="Trees added one after another, each fixing the last; often the most accurate.",
    model_class="GradientBoostingClassifier",
    build=_gradient_boosting,
    params=(
        Param("n_estimators", "int", 100, "Trees added one after another.", 1, 2000, label="Boosting rounds"),
        Param("learning_rate", "float", 0.1, "How much each tree corrects; lower needs more rounds.", 0.001, 1.0,
              label="Learning rate"),
        Param("max_depth", "optional_int", 3, "Depth of each tree (small trees work best).", 1, 20,
              label="Tree depth"),
        Param("min_samples_leaf", "int", 1, "Fewest customers a tree's final group may hold.", 1, 500,
              label="Fewest customers per leaf"),
        _CLASS_WEIGHT,  # reaches fit() as balanced sample weights
        _SEED,
        _CV_FOLDS,
    ),
    ranges={
        "n_estimators": {"min": 30, "max": 400, "scale": "log"},
        "learning_rate": {"min": 0.01, "max": 0.3, "scale": "log"},
        "max_depth": {"min": 2, "max": 6},
        "min_samples_leaf": {"min": 1, "max": 50, "scale": "log"},
        "class_weight": ["none", "balanced"],
    },
    explainer=EXPLAIN_BOOSTING,
    weights_by_sample=True,
))

register(Algorithm(
    name="logistic_regression",
    label="Logistic regression",
    short="lr",
    help="A linear model with readable coefficients; fast, a good baseline.",
    model_class="LogisticRegression",
    build=_logistic_regression,
    params=(
        Param("C", "float", 1.0, "Higher lets the model follow the data more closely, lower keeps it simpler "
              "(the inverse of the regularisation strength).", 0.0001, 1000.0, label="Flexibility"),
        Param("max_iter", "int", 1000, "Steps the fitting may take before it gives up.", 10, 100000,
              label="Maximum fitting steps"),
        _CLASS_WEIGHT,
        _SEED,
        _CV_FOLDS,
    ),
    ranges={
        "C": {"min": 0.001, "max": 100.0, "scale": "log"},
        "class_weight": ["none", "balanced"],
    },
    explainer=EXPLAIN_LINEAR,
    scale_numeric=True,
))
