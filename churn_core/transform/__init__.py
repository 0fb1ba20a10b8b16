"""Batch transform jobs: a whole file scored by a trained model into the bucket, on either backend."""
