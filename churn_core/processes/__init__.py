"""churn_core/processes."""
