"""churn_core/backends/local/endpoint."""
