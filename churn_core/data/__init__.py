"""Datasets: an uploaded churn file validated in memory, typed once, split, stored and recorded."""
