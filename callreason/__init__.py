"""Hierarchical call-reason classification pipeline."""
