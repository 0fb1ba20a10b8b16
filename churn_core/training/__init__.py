"""churn_core/training."""
