"""churn_core/endpoints."""
