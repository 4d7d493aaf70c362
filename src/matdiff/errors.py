"""The one error type matdiff raises for bad input, with where and how to fix it."""

from __future__ import annotations

import re
import unicodedata

MAX_MESSAGE = 400  # characters of str(err): a message is one line a person reads
POINTER_WINDOW = 60  # characters of the source shown either side of the column


class MatdiffError(Exception):
    """Bad input: says what is wrong, where (a column of the source text) and how to fix it.

    ``str(err)`` is one line, at most MAX_MESSAGE characters, with control characters escaped;
    :meth:`pointer` adds the source line with a caret under the column.
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
        return shorten(printable(f"{where}{self.message}{hint}"), MAX_MESSAGE)

    def at_call(self, fn: str, source: str) -> MatdiffError:
        """This error pointed at the first call ``fn(`` in ``source`` (for errors found after
        parsing, where positions are gone)."""
        found = re.search(rf"\b{re.escape(fn)}\s*\(", source)
        if self.column is not None or found is None:
            return self
        return MatdiffError(self.message, column=found.start() + 1, source=source,
                            hint=self.hint)

    def pointer(self) -> str:
        """The source line and a caret under the offending column, for terminals (a window
        around the column of a long line)."""
        if self.source is None or self.column is None or "\n" in self.source:
            return ""
        start = max(0, self.column - 1 - POINTER_WINDOW)
        before = printable(self.source[start:self.column - 1])
        after = printable(self.source[self.column - 1:self.column - 1 + POINTER_WINDOW])
        lead = "..." if start else ""
        tail = "..." if self.column - 1 + POINTER_WINDOW < len(self.source) else ""
        return f"  {lead}{before}{after}{tail}\n  {' ' * (len(lead) + len(before))}^"


def printable(text: str) -> str:
    """``text`` with control and other invisible characters escaped (\\x1b, \\u200b): they
    must not act on the terminal that shows a message."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    if c == " ":
        return c
    code = ord(c)
    if unicodedata.category(c) == "Zs":
        return " "
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 \
        else f"\\U{code:08x}"


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
