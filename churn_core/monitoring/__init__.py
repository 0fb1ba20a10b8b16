"""Monitoring: each model's training baseline, what its endpoints captured, drift reports and their schedules."""
