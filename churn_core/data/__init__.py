"""churn_core/data."""
