"""The synthetic demo data: a call-center taxonomy, LLM-labeled summaries with realistic label noise, and an
unlabeled pool with its hidden gold labels (``python -m callreason.demo --root .`` rewrites the committed files)."""

from callreason.demo.generator import generate_demo_data, make_taxonomy, write_demo_data

__all__ = ["generate_demo_data", "make_taxonomy", "write_demo_data"]
