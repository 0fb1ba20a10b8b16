"""The model registry: groups of numbered versions, their approval, aliases, and the rule for what may serve."""
