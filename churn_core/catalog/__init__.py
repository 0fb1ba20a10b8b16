"""churn_core/catalog."""
