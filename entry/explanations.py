"""Per-customer reasons: each original column's signed push on one prediction, exactly additive.

For every explained row, ``base + sum(contributions) == output`` (checked on probe rows before the
explainer is used, to 1e-9), in the space the model adds up in: churn probability for a random
forest (it averages its trees' probabilities), log-odds for gradient boosting and logistic
regression. One-hot columns are one player, their source column (``Contract``, not
``Contract_Month-to-month``); a missing value the pipeline imputed is credited to its column as
the median or most common value it became.

ONE method per kind of model, whatever the path (a one-row request, a 10,000-row JSON or CSV body,
``score_batch``, a transform job, either backend): a customer's reasons never depend on the rows
they were explained with. All numpy (nothing to install, here or in the SageMaker container):

* ``tree_shap`` (random forest, gradient boosting and every other tree ensemble the registry marks
  as a forest or boosting): exact path-dependent TreeSHAP. Without categorical columns these are the
  numbers of ``shap.TreeExplainer(model, feature_perturbation="tree_path_dependent")`` (to ~1e-12).
  With categorical columns each original column's one-hot columns form ONE player, so the numbers
  are the exact group Shapley value of the same path-dependent game (the game whose players are the
  original columns); they are NOT ``shap.TreeExplainer``'s per-one-hot-column values summed per
  column, which differ. Computed per tree edge in O(nodes x quadrature points) per row, rows
  vectorised through the trees in bounded blocks (the edge form of Linear TreeShap, Yu et al. 2022);
* ``linear_shap`` (logistic regression): ``coef x (x - training mean)`` summed over a column's
  encoded columns (the transformed training mean is stored with the model at training time).
"""


from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

import algorithms
import fast_forest
from input_errors import InvalidInput

PROBABILITY = "probability"
LOG_ODDS = "log_odds"
TREE_SHAP = "tree_shap"
LINEAR_SHAP = "linear_shap"
EFFECT_WORK_UNITS = 20000000  # at most this much TreeSHAP work (nodes x quadrature points x rows) for those rows
EFFECT_MIN_ROWS = 30  # ... but never fewer rows than this (a default 100-tree forest on the reference CSV: ~0.9 CPU-s)
EFFECT_ROWS = 500  # held-out rows behind "which values raise risk" (exact TreeSHAP on each: ~5-15 ms a row for a
# deep 100-tree forest, paid once at training time)
ADDITIVITY_TOLERANCE = 1e-9
NO_REASONS = "this model cannot explain its predictions"  # the words the dashboard recognises


def owners_of(pre, feature_index):
    """For each column the fitted ColumnTransformer outputs, the index of its original feature."""
    owners = []
    for name, trans, cols in pre.transformers_:
        if name == "remainder" or trans == "drop":
            if trans == "drop" or len(cols) == 0:
                continue
            raise ValueError("a passthrough remainder is not supported")
        steps = [s[1] for s in getattr(trans, "steps", [(None, trans)])]
        last = steps[-1]
        idx = [feature_index[c] for c in cols]
        if type(last).__name__ == "OneHotEncoder":
            for i, cats in zip(idx, last.categories_):
                owners.extend([i] * len(cats))
        else:
            owners.extend(idx)
    return np.asarray(owners, dtype=np.intp)


def _dense(X):
    if hasattr(X, "toarray"):
        X = X.toarray()
    return np.ascontiguousarray(X, dtype=np.float64)


def background_mean(pipeline, x_train):
    """Mean of the transformed training matrix: stored with a logistic regression at training time."""
    return _dense(pipeline.named_steps["pre"].transform(x_train)).mean(axis=0)


# ----------------------------------------------------------------------------- flattened trees


class _Forest(object):
    """All trees of an ensemble as flat node arrays (ids offset per tree).

    ``value`` is each node's expectation in output units (already multiplied by the tree's scale:
    1/n_trees for a forest, learning_rate for boosting), recomputed bottom-up as the cover-weighted
    mean of its children's values, as TreeSHAP does (for boosting the stored inner-node values are
    residual means, not the line-searched leaf values)."""

    def __init__(self, trees, scales, owners, n_owners):
        counts = [t.node_count for t in trees]
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.intp)
        self.roots = offsets
        self.left = np.concatenate([np.where(t.children_left >= 0, t.children_left + o, -1)
                                    for t, o in zip(trees, offsets)]).astype(np.intp)
        self.right = np.concatenate([np.where(t.children_right >= 0, t.children_right + o, -1)
                                     for t, o in zip(trees, offsets)]).astype(np.intp)
        self.is_leaf = self.left < 0
        feature = np.concatenate([np.maximum(t.feature, 0) for t in trees]).astype(np.intp)
        self.feature = feature
        self.threshold = np.concatenate([t.threshold for t in trees]).astype(np.float64)
        self.cover = np.concatenate([t.weighted_n_node_samples for t in trees]).astype(np.float64)
        values = []
        for t, scale in zip(trees, scales):
            v = np.asarray(t.value, dtype=np.float64)[:, 0, :]
            if v.shape[1] >= 2:  # classifier tree: class-1 fraction (sklearn < 1.4 stores weighted counts)
                total = v.sum(axis=1)
                total[total == 0.0] = 1.0
                v = v[:, 1] / total
            else:  # regression tree (gradient boosting)
                v = v[:, 0]
            values.append(v * scale)
        value = np.concatenate(values)

        n = len(value)
        parent = np.full(n, -1, dtype=np.intp)
        inner = np.flatnonzero(~self.is_leaf)
        parent[self.left[inner]] = inner
        parent[self.right[inner]] = inner
        self.parent = parent
        depth = np.zeros(n, dtype=np.intp)
        frontier = self.roots[~self.is_leaf[self.roots]]
        d = 0
        while frontier.size:
            d += 1
            kids = np.concatenate([self.left[frontier], self.right[frontier]])
            depth[kids] = d
            frontier = kids[~self.is_leaf[kids]]
        self.max_depth = d
        for level in range(d - 1, -1, -1):  # cover-weighted expectations, deepest inner nodes first
            nodes = inner[depth[inner] == level]
            lo, hi = self.left[nodes], self.right[nodes]
            cl, cr = self.cover[lo], self.cover[hi]
            tot = cl + cr
            tot[tot == 0.0] = 1.0
            value[nodes] = (cl * value[lo] + cr * value[hi]) / tot
        self.value = value
        self.base = float(value[self.roots].sum())

        self.n_owners = n_owners
        self._owners = owners
        self._paths = {}

    def leaf_value_sum(self, X):
        """Sum over trees of the leaf value each row reaches (the model output minus GB's init)."""
        n = X.shape[0]
        out = np.zeros(n)
        rows = np.repeat(np.arange(n, dtype=np.intp), len(self.roots))
        node = np.tile(self.roots, n)
        done = self.is_leaf[node]
        np.add.at(out, rows[done], self.value[node[done]])
        rows, node = rows[~done], node[~done]
        while rows.size:
            go_left = X[rows, self.feature[node]] <= self.threshold[node]
            node = np.where(go_left, self.left[node], self.right[node])
            done = self.is_leaf[node]
            out += np.bincount(rows[done], weights=self.value[node[done]], minlength=n)
            rows, node = rows[~done], node[~done]
        return out

    # ------------------------------------------------- TreeSHAP, edge formulation (O(nodes * q))

    CHUNK_NODES = 24000  # trees are processed in groups of about this many nodes (cache-sized work arrays)

    def work_per_row(self) -> int:
        """TreeSHAP's work for one row (nodes x quadrature points, summed over tree groups): what a row costs."""
        return int(sum(E["n"] * E["q"] for E in self._prepare_edges(self._owners)))

    def _prepare_edges(self, owners):
        """Per group of trees, the structure ``treeshap`` needs; built on first use, cached per grouping."""
        key = b"E" + owners.tobytes()
        if key not in self._paths:
            chunks, group, size = [], [], 0
            counts = np.diff(np.r_[self.roots, len(self.value)])
            for tree, count in enumerate(counts):
                group.append(tree)
                size += int(count)
                if size >= self.CHUNK_NODES:
                    chunks.append(self._edge_chunk(owners, np.asarray(group)))
                    group, size = [], 0
            if group:
                chunks.append(self._edge_chunk(owners, np.asarray(group)))
            self._paths[key] = chunks
        return self._paths[key]

    def _edge_chunk(self, owners, trees):
        """Nodes of these trees renumbered breadth-first (roots, then each inner node's two
        children side by side, level by level): every level is a contiguous slice."""
        roots = self.roots[trees]
        order = [roots]
        bounds = [(0, len(roots))]
        frontier = roots[~self.is_leaf[roots]]
        inner_old = []
        while frontier.size:
            inner_old.append(frontier)
            kids = np.column_stack((self.left[frontier], self.right[frontier])).ravel()
            start = bounds[-1][1]
            bounds.append((start, start + len(kids)))
            order.append(kids)
            frontier = kids[~self.is_leaf[kids]]
        old = np.concatenate(order)               # new id -> old id
        n = len(old)
        new_of = np.zeros(len(self.value), dtype=np.intp)
        new_of[old] = np.arange(n)
        inner = new_of[np.concatenate(inner_old)] if inner_old else np.zeros(0, dtype=np.intp)
        n_roots = len(roots)
        parent = np.full(n, -1, dtype=np.intp)
        parent[n_roots:] = np.repeat(inner, 2)    # kids of inner[k]: n_roots + 2k (left), n_roots + 2k + 1
        feature = self.feature[old]
        player = np.full(n, -1, dtype=np.intp)
        player[n_roots:] = owners[feature[parent[n_roots:]]]
        cover = self.cover[old]
        ratio = np.ones(n)
        with np.errstate(divide="ignore", invalid="ignore"):
            pc = cover[parent[n_roots:]]
            ratio[n_roots:] = np.where(pc > 0, cover[n_roots:] / pc, 0.0)
        # nearest ancestor edge on the same player; n (a sentinel slot holding 1s) when none
        n_players = int(owners.max()) + 1
        prev = np.full(n, n, dtype=np.intp)
        z = np.ones(n + 1)
        distinct = np.zeros(n, dtype=np.intp)
        last = np.full((n_roots, n_players), n, dtype=np.intp)   # per node of the current level
        level_nodes = np.arange(n_roots)
        for a, b in bounds[1:]:
            kids = np.arange(a, b)
            par = parent[kids]
            table = last[np.searchsorted(level_nodes, par)]
            pl = player[kids]
            prev[kids] = table[np.arange(len(kids)), pl]
            z[kids] = ratio[kids] * z[prev[kids]]
            distinct[kids] = distinct[par] + (prev[kids] == n)
            table[np.arange(len(kids)), pl] = kids
            last, level_nodes = table, kids
        q = max(1, (int(distinct.max()) + 1) // 2)  # Gauss-Legendre, exact up to degree 2q-1
        t, w = np.polynomial.legendre.leggauss(q)
        t, w = (t + 1.0) / 2.0, w / 2.0
        from scipy import sparse  # a scikit-learn dependency: always installed

        has = np.flatnonzero(prev < n)
        below = sparse.csr_matrix((np.ones(len(has)), (prev[has], has)), shape=(n, n))
        is_leaf = self.is_leaf[old]
        leaf_v = np.where(is_leaf, self.value[old], 0.0)
        edges = np.arange(n - n_roots)
        gather = sparse.csr_matrix((np.ones(len(edges)), (player[n_roots:], edges)), shape=(n_players, len(edges)))
        return {"n": n, "n_roots": n_roots, "bounds": bounds[1:], "parent": parent, "prev": prev, "gather": gather,
                "z": z, "zt": np.outer(z, 1.0 - t),  # F = z (1 - t) + o t
                "player": player[n_roots:], "feature": feature[inner], "threshold": self.threshold[old][inner],
                "leaf_v": leaf_v[:, None], "below": below, "t": t, "w": w, "q": q}

    WORK_ELEMENTS = 1 << 18  # floats per (nodes x rows x quadrature points) work array (~2 MB: cache-friendly)
    MIN_BLOCK = 4  # rows per block at least (big forests: fewer Python passes a row; ~7 MB a work array)

    def treeshap(self, X, owners=None, n_out=None):
        """Exact path-dependent TreeSHAP in O(nodes * q) numpy work per row, many rows at once.

        For an edge e (entering node c from a split on player i) let z_e / o_e be the products of
        the cover fractions / of the followed-indicators over ALL edges of player i on the path down
        to and including e, and F_e(t) = z_e + (o_e - z_e) t. P_c(t) = product over the players on
        the path to c of their latest F; H_c(t) = sum over leaves l below c of v_l P_l(t). The
        leaves below c whose last split on i is e add, to phi_i, (o_e - z_e) * integral_0^1 S_e/F_e,
        where S_e = H_c - (H of the next edges on player i below c). The integrand is a polynomial
        of degree < the number of distinct players on a path, so q-point Gauss-Legendre is exact
        (the edge form of Linear TreeShap, Yu et al. 2022). Rows go through every tree level as one
        (nodes, rows, q) array, in row blocks that bound the work arrays' memory."""
        if owners is None:
            owners, n_out = self._owners, self.n_owners
        X = np.asarray(X, dtype=np.float64)
        out = np.zeros((X.shape[0], n_out))
        for E in self._prepare_edges(owners):
            n, n_roots, z, prev, parent = E["n"], E["n_roots"], E["z"], E["prev"], E["parent"]
            t, w, bounds, q = E["t"], E["w"], E["bounds"], E["q"]
            block = max(self.MIN_BLOCK, self.WORK_ELEMENTS // ((n + 1) * q))
            for s in range(0, X.shape[0], block):
                rows = X[s:s + block]
                r = rows.shape[0]
                go_left = (rows[:, E["feature"]] <= E["threshold"]).T      # (inner nodes, rows)
                o = np.ones((n + 1, r))                                   # slot n: the "no earlier edge" sentinel
                o[n_roots:n] = np.stack((go_left, ~go_left), axis=1).reshape(-1, r)
                for a, b in bounds:                                       # AND along the player's earlier edges
                    o[a:b] *= o[prev[a:b]]
                F = o[:, :, None] * t                                     # F = z (1 - t) + o t; row n is all ones
                F += E["zt"][:, None, :]
                P = np.empty_like(F)
                P[:n_roots] = 1.0
                for a, b in bounds:                                       # P_c = P_parent * F_c / F_prev(c)
                    np.multiply(P[parent[a:b]], F[a:b], out=P[a:b])
                    P[a:b] /= F[prev[a:b]]
                H = P                                                     # P -> H in place: leaves v*P, inner 0
                H[:n] *= E["leaf_v"][:, :, None]
                for a, b in reversed(bounds):                             # children pairs -> their parent
                    H[parent[a:b:2]] = H[a:b:2] + H[a + 1:b:2]
                S = E["below"].dot(H[:n].reshape(n, r * q)).reshape(n, r, q)
                np.subtract(H[:n], S, out=S)
                S = S[n_roots:]
                S /= F[n_roots:n]
                integral = S.reshape(-1, q).dot(w).reshape(S.shape[0], r)  # 2-D: BLAS (a 3-D dot is ~10x slower)
                term = (o[n_roots:n] - z[n_roots:n, None]) * integral     # (edges, rows)
                part = E["gather"].dot(term)                              # (players, rows)
                out[s:s + r, :part.shape[0]] += part.T
        return out

# ----------------------------------------------------------------------------- the explainer


class Explainer(object):
    """Built once per loaded model; ``contributions`` of encoded rows (what the model sees)."""

    def __init__(self, pipeline, features: List[str], background=None):
        pre = pipeline.named_steps["pre"]
        self.model = pipeline.steps[-1][1]
        self.features = list(features)
        self.owners = owners_of(pre, dict((f, i) for i, f in enumerate(self.features)))
        k, width = len(self.features), len(self.owners)
        if getattr(self.model, "n_features_in_", width) != width:
            raise ValueError("transformed width %d != model width %d" % (width, self.model.n_features_in_))
        if list(getattr(self.model, "classes_", [0, 1])) != [0, 1]:
            raise ValueError("binary 0/1 classifiers only")
        entry = algorithms.for_model(self.model)  # the registry says how this kind of model is explained
        kind = entry.explainer if entry is not None else None
        self.forest = None
        if kind == algorithms.EXPLAIN_FOREST:
            trees = [e.tree_ for e in self.model.estimators_]
            self.space = PROBABILITY
            self.forest = _Forest(trees, [1.0 / len(trees)] * len(trees), self.owners, k)
            self.base = self.forest.base
        elif kind == algorithms.EXPLAIN_BOOSTING:
            trees = [e.tree_ for e in self.model.estimators_[:, 0]]
            self.space = LOG_ODDS
            self.forest = _Forest(trees, [float(self.model.learning_rate)] * len(trees), self.owners, k)
            zero = np.zeros((1, width))  # the init's raw prediction, from the model itself
            init = float(self.model.decision_function(zero)[0] - self.forest.leaf_value_sum(zero)[0])
            self.base = init + self.forest.base
        elif kind == algorithms.EXPLAIN_LINEAR:
            if background is None:
                raise ValueError("this logistic regression was trained without its training mean; retrain it")
            self.space = LOG_ODDS
            self.coef = np.asarray(self.model.coef_, dtype=np.float64).ravel()
            self.mean = np.asarray(background, dtype=np.float64).ravel()
            self.base = float(self.model.intercept_[0] + self.coef.dot(self.mean))
            self.agg = np.zeros((width, k))
            self.agg[np.arange(width), self.owners] = 1.0
        else:
            raise ValueError("no explainer for %s" % type(self.model).__name__)
        self.method = LINEAR_SHAP if self.forest is None else TREE_SHAP  # one method per model, any request size

    def contributions(self, X):
        """X: (n, width) encoded rows. Returns (n, n_features) contributions in ``self.space``; a row's
        numbers do not depend on the rows it is explained with."""
        X = _dense(X)
        if self.forest is None:
            return ((X - self.mean) * self.coef).dot(self.agg)
        X32 = X.astype(np.float32).astype(np.float64)  # scikit-learn trees compare float32 features
        return self.forest.treeshap(X32)

    def model_output(self, X):
        X = _dense(X)
        if self.space == PROBABILITY:
            return self.model.predict_proba(X)[:, 1]
        return self.model.decision_function(X)

    def check(self, X) -> float:
        """Max |base + sum(contributions) - model output| over rows."""
        target = self.model_output(X)
        return float(np.abs(self.base + self.contributions(X).sum(axis=1) - target).max())

    def reasons(self, X, top: int, values: Optional[List[List[Any]]] = None) -> List[Dict[str, Any]]:
        """One dict per row: the ``top`` largest pushes (with the customer's value), the rest summed in
        ``other``, so that base + sum of shown + other == output."""
        method = self.method
        contrib = self.contributions(X)
        out = []
        for r, row in enumerate(contrib):
            order = np.argsort(-np.abs(row), kind="stable")
            shown = []
            for i in order[:top]:
                item = {"feature": self.features[i], "contribution": round(float(row[i]), 9)}
                if values is not None:
                    value = values[i][r]
                    item["value"] = None if isinstance(value, float) and value != value else value
                shown.append(item)
            out.append({"space": self.space, "method": method, "base": round(self.base, 9),
                        "output": round(self.base + float(row.sum()), 9), "reasons": shown,
                        "other": round(float(row[order[top:]].sum()), 9)})
        return out


def effects(pipeline, features: List[str], kinds: Dict[str, str], x_test, encoded, background=None,
            limit: int = EFFECT_ROWS) -> List[Dict[str, Any]]:
    """Which values raise churn risk, per feature, from the held-out customers' contributions (the same
    method that explains a single customer): for a number, whether higher values push up or down (the
    correlation of the value with its push); for a category, the values with the largest and smallest
    mean push."""
    explainer = Explainer(pipeline, features, background)
    if explainer.forest is not None:  # a training job's chart must not cost minutes on a big forest
        limit = min(limit, max(EFFECT_MIN_ROWS, EFFECT_WORK_UNITS // max(explainer.forest.work_per_row(), 1)))
    X = encoded[:limit]
    contrib = explainer.contributions(X)
    out = []
    for i, name in enumerate(features):
        column = x_test[name].iloc[: len(X)]
        push = contrib[:, i]
        entry: Dict[str, Any] = {"feature": name, "mean_abs_push": round(float(np.abs(push).mean()), 6),
                                 "space": explainer.space}
        if kinds[name] == "numeric":
            values = column.to_numpy(dtype=float)
            ok = ~np.isnan(values)
            spread = values[ok].std() * push[ok].std() if ok.sum() > 2 else 0.0
            corr = float(np.mean((values[ok] - values[ok].mean()) * (push[ok] - push[ok].mean())) / spread) \
                if spread > 0 else 0.0
            entry.update(direction="higher raises risk" if corr > 0.1 else "higher lowers risk" if corr < -0.1
                         else "no single direction", correlation=round(corr, 3))
        else:
            means = {}
            for value in column.dropna().unique():
                mask = (column == value).to_numpy()
                means[str(value)] = float(push[mask].mean())
            ranked = sorted(means.items(), key=lambda kv: -kv[1])
            entry.update(raises=ranked[0][0] if ranked and ranked[0][1] > 0 else None,
                         lowers=ranked[-1][0] if ranked and ranked[-1][1] < 0 else None,
                         by_value={k: round(v, 6) for k, v in ranked})
        out.append(entry)
    return sorted(out, key=lambda e: -e["mean_abs_push"])


def held_out_effects(pipeline, dataset: dict, x_train, x_test) -> List[Dict[str, Any]]:
    """``effects`` for a freshly trained model, or [] (an evaluation chart never fails a training job)."""
    try:
        features = [f["name"] for f in dataset["features"]]
        kinds = dict((f["name"], f["kind"]) for f in dataset["features"])
        encoded = _dense(pipeline.named_steps["pre"].transform(x_test.iloc[:EFFECT_ROWS]))
        return effects(pipeline, features, kinds, x_test, encoded, background_mean(pipeline, x_train))
    except Exception:  # noqa: BLE001
        return []


def explainer_for(model: dict) -> "Explainer":
    """The model's explainer, built once per loaded model (``model_fn``'s dict) and proved additive on
    probe rows before any use; InvalidInput with the cause when the model cannot explain."""
    cache = model.setdefault("explainer", {})
    if "ready" not in cache:
        try:
            probe = fast_forest.probe_matrix(model["pipeline"], model["schema"], model["compiled"], model["fast"])
            cache["ready"] = attach(model["pipeline"], model["compiled"]["features"], probe, model.get("background"))
        except Exception as err:  # reasons are refused with the cause, never guessed
            cache["ready"] = None
            cache["why"] = "%s: %s" % (type(err).__name__, err)
    if cache["ready"] is None:
        raise InvalidInput("%s (%s); retrain it to get reasons." % (NO_REASONS, cache.get("why")))
    return cache["ready"]


def reasons_for(model: dict, checked) -> List[Dict[str, Any]]:
    """The reasons a request asked for (``"explain": n``), JSON or CSV body, any number of rows: one method
    per model, so a customer's reasons do not depend on the request they came in."""
    explainer = explainer_for(model)
    encoded = fast_forest.encode(checked, model["pipeline"], model["fast"])
    return explainer.reasons(encoded, checked.explain, values=checked.columns)


def top_reason_texts(explainer: "Explainer", encoded, columns: list) -> List[str]:
    """Each row's strongest push in words (``Contract = Month-to-month (+5.9 pts)``), for the "top reason"
    column of batch results; the same contributions a one-row request gets."""
    contributions = explainer.contributions(encoded)
    top = np.abs(contributions).argmax(axis=1) if len(contributions) else np.zeros(0, dtype=np.intp)
    pushes = contributions[np.arange(len(top)), top]
    return [reason_text({"feature": explainer.features[i], "contribution": float(c), "value": columns[i][r]},
                        explainer.space) for r, (i, c) in enumerate(zip(top.tolist(), pushes.tolist()))]


# ---- words (churn_core/reasons.py uses these too: one way to say a reason) ----------------------------


def value_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "blank"
    if isinstance(value, float):
        return "%g" % value
    return str(value)


def push_text(contribution: float, space: str) -> str:
    """``+12.3 pts`` (probability) or ``+0.41 log-odds``: the size and sign of one push."""
    if space == PROBABILITY:
        return "%+.1f pts" % (100 * contribution)
    return "%+.2f log-odds" % contribution


def reason_label(reason: Dict[str, Any]) -> str:
    """``Contract = Month-to-month``: the original column and this customer's value."""
    return "%s = %s" % (reason["feature"], value_text(reason.get("value"))) if "value" in reason else reason["feature"]


def reason_text(reason: Dict[str, Any], space: str) -> str:
    """``Contract = Month-to-month (+12.3 pts)``."""
    return "%s (%s)" % (reason_label(reason), push_text(reason["contribution"], space))


def attach(pipeline, features: List[str], probe, background=None) -> Optional[Explainer]:
    """An explainer proved additive on the probe rows, or None (reasons are then refused, never guessed)."""
    explainer = Explainer(pipeline, features, background)
    error = explainer.check(probe)
    if error > ADDITIVITY_TOLERANCE:
        raise ValueError("contributions disagree with the model by %g" % error)
    return explainer
