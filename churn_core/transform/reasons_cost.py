"""What a line's top reason costs with one model, measured here before a user asks for reasons on a file.

Exact TreeSHAP visits every node of every tree for every row, so its cost a row is flat in the rows' values and
grows with the forest: a depth-3 boosting explains thousands of rows a second, a default deep forest tens. The
Batch page multiplies this figure by a file's rows instead of quoting one ratio for every model.
"""

from __future__ import annotations

import time

import numpy as np

from churn_core.paths import entry_module

BUDGET_S = 0.5  # at most about this long measuring; a deep forest's first block already says enough
BLOCK_ROWS = 256  # rows a measured block holds: a transform explains rows in blocks, not one by one


def seconds_per_row(model: dict) -> float | None:
    """Seconds one row's contributions take in this process (``model``: ``model_fn``'s dict), or None when the
    model cannot give reasons (a transform asking for them fails saying why)."""
    explanations, fast_forest = entry_module("explanations"), entry_module("fast_forest")
    try:
        explainer = explanations.explainer_for(model)  # built and proved additive once per loaded model
    except ValueError:  # InvalidInput: the model cannot explain
        return None
    probe = fast_forest.probe_matrix(model["pipeline"], model["schema"], model["compiled"], model["fast"])
    explainer.contributions(probe[:2])  # the per-forest structures are built on first use: not a row's cost
    spent = rows = 0.0
    block = probe
    while spent < BUDGET_S and rows < 4 * BLOCK_ROWS:
        started = time.perf_counter()
        explainer.contributions(block)
        spent += time.perf_counter() - started
        rows += len(block)
        block = np.tile(probe, (max(1, BLOCK_ROWS // len(probe)), 1))  # then blocks as a transform sends them
    return spent / rows
