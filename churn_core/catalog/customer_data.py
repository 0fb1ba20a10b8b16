"""What the catalog knows about where a dataset's customer rows went: its models, their transforms, the
endpoints that served them (the questions ``churn_core.data.lifecycle`` asks; the files are its business)."""

from __future__ import annotations

from churn_core.catalog.database import Catalog


def _marks(values) -> str:
    return ", ".join("?" for _ in values)


def dataset_of_models(catalog: Catalog) -> dict[str, str]:
    """Every trained model or training job → the dataset it was trained on (tuning trials included)."""
    rows = catalog.query("SELECT name, dataset FROM jobs UNION SELECT name, dataset FROM models")
    return {r["name"]: r["dataset"] for r in rows}


def models_of_dataset(catalog: Catalog, dataset: str) -> list[str]:
    rows = catalog.query("SELECT name FROM jobs WHERE dataset = ? UNION SELECT name FROM models WHERE dataset = ?",
                         (dataset, dataset))
    return sorted(r["name"] for r in rows)


def jobs(catalog: Catalog) -> list[dict]:
    """Training jobs (and trials) with their dataset, for their input folders."""
    return catalog.query("SELECT name, dataset, status, created_at FROM jobs")


def transforms(catalog: Catalog, models: list[str] | None = None) -> list[dict]:
    """Transform jobs (of ``models`` when given) with the keys of their files."""
    sql = ("SELECT name, model, status, input_key, output_key, errors_key, rows_in, rows_scored, rows_failed, "
           "created_at FROM transforms")
    if models is None:
        return catalog.query(sql)
    if not models:
        return []
    return catalog.query(f"{sql} WHERE model IN ({_marks(models)})", tuple(models))


def endpoints_serving(catalog: Catalog, models: list[str]) -> list[str]:
    """Endpoints (live or deleted) that served any of ``models``, from the endpoints and their history."""
    if not models:
        return []
    args = tuple(models) * 2
    rows = catalog.query(f"SELECT endpoint AS name FROM endpoint_history WHERE model IN ({_marks(models)}) "
                         f"UNION SELECT name FROM endpoints WHERE model IN ({_marks(models)})", args)
    return sorted(r["name"] for r in rows)


def capturing_endpoints(catalog: Catalog) -> dict[str, float]:
    """Live endpoints → their capture share (0: off)."""
    return {r["name"]: float(r["capture_percent"] or 0)
            for r in catalog.query("SELECT name, capture_percent FROM endpoints")}


def served_models(catalog: Catalog) -> dict[str, set[str]]:
    """Every endpoint (live or deleted) → the models it served."""
    served: dict[str, set[str]] = {}
    for r in catalog.query("SELECT endpoint AS name, model FROM endpoint_history "
                           "UNION SELECT name, model FROM endpoints"):
        served.setdefault(r["name"], set()).add(r["model"])
    return served
