"""Numbers: NumPy evaluation of the IR and finite-difference checks."""
