"""churn_core/monitoring."""
