"""Training: jobs that fit a model on a dataset, and the trained models they leave (schema, evaluation, threshold)."""
