"""The catalog: every record the product keeps, in SQLite. The only package that speaks SQL.

``database`` holds the connection and transactions, ``schema`` the tables, and one module per kind of
record holds its statements; ``outcomes`` is the one writer of a job's terminal state.
"""

from churn_core.catalog.database import Catalog, dumps, loads

__all__ = ["Catalog", "dumps", "loads"]
