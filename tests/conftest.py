"""Test-wide settings.

The suite checks correctness, not speed (speed is measured in benchmarks/), so its requests get
a generous wall-clock budget: a loaded CI machine must not turn a slow correct answer into a
LimitError. tests/test_hostile.py runs under the default limits, which it passes explicitly.
"""

import matdiff

matdiff.limits(seconds=600.0)
