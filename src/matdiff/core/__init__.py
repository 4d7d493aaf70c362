"""The core IR (nodes and the primitive table), differentiation and simplification."""
