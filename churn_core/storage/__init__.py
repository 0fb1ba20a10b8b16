"""churn_core/storage."""
