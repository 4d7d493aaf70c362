"""The one error type matdiff raises for bad input, with where and how to fix it."""

from __future__ import annotations

import re


class MatdiffError(Exception):
    """Bad input: says what is wrong, where (a column of the source text) and how to fix it.

    ``str(err)`` is one line; :meth:`pointer` adds the source line with a caret under the column.
    """

    def __init__(self, message: str, *, column: int | None = None, source: str | None = None,
                 hint: str | None = None):
        self.message = message
        self.column = column  # 1-based column in ``source``
        self.source = source
        self.hint = hint
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"at column {self.column}: " if self.column is not None else ""
        hint = f" ({self.hint})" if self.hint else ""
        return f"{where}{self.message}{hint}"

    def at_call(self, fn: str, source: str) -> MatdiffError:
        """This error pointed at the first call ``fn(`` in ``source`` (for errors found after
        parsing, where positions are gone)."""
        found = re.search(rf"\b{re.escape(fn)}\s*\(", source)
        if self.column is not None or found is None:
            return self
        return MatdiffError(self.message, column=found.start() + 1, source=source,
                            hint=self.hint)

    def pointer(self) -> str:
        """The source line and a caret under the offending column, for terminals."""
        if self.source is None or self.column is None or "\n" in self.source:
            return ""
        return f"  {self.source}\n  {' ' * (self.column - 1)}^"
