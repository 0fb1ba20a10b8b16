"""The warm process: the heavy imports done once, then detached processes forked from it on demand."""
