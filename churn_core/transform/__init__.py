"""churn_core/transform."""
