"""churn_core/decisions."""
