"""churn_core/tuning."""
