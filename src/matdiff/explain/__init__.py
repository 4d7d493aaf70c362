"""Explanations of a derivative for a person: the entry-by-entry view (entrywise.py)."""
