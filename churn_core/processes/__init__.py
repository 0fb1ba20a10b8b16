"""Detached processes on this machine: started to outlive the dashboard, found by what they are, stopped."""
