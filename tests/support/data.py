"""Paths and rows the tests share: the project root, the reference CSV and the seed's request row."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_CSV = ROOT.parent / "shared" / "data" / "telecom_churn.csv"
SEED_ROW = [128, 1, 1, 2.70, 1, 265.1, 110, 89.0, 9.87, 10.0]
