"""Decisions on probabilities: the campaign plan, the decision threshold, evaluation on new data, reasons."""
