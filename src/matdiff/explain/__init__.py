"""Explanations for a person: the derivation step by step."""
