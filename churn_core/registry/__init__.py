"""churn_core/registry."""
