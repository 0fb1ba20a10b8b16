"""Endpoints: deploy, invoke, score one customer or a file, update and split traffic, delete."""
