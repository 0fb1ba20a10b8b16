"""Hyperparameter tuning: a search over an algorithm's ranges, each trial a training job, ranked by an objective."""
