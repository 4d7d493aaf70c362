"""Explanations of a derivative for a person: the derivation step by step (steps.py) and the
entry-by-entry view (entrywise.py)."""
