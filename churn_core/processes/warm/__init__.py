"""churn_core/processes/warm."""
