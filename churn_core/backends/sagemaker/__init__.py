"""churn_core/backends/sagemaker."""
