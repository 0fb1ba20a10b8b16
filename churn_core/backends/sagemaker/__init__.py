"""The SageMaker backend: S3, training and transform jobs, tuning, model packages and real-time endpoints."""
