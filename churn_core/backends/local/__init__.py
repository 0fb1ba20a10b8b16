"""churn_core/backends/local."""
