"""How messages show what they name: values quoted and shortened, counts, sizes, column letters.

Every message (upload validation, monitoring, transforms, the pages' counts) words these the same way, whichever
check raises it.
"""

from __future__ import annotations

MAX_LISTED = 5  # how many offending values / rows / lines a message names
MB = 1024 * 1024


def fmt_mb(n: int) -> str:
    value = n / MB
    if value >= 1:
        text = f"{value:.1f}"
        return (text[:-2] if text.endswith(".0") else text) + " MB"
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return f"{text} MB ({plural(n, 'byte')})"


def show(value: str, limit: int = 40) -> str:
    """A value as a message shows it: quoted, shortened."""
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    return repr(value)


def list_names(names, limit: int = 20) -> str:
    names = list(names)
    shown = ", ".join(show(n, 60) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA, as a spreadsheet labels columns."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def noun(n: int, word: str, many: str | None = None) -> str:
    """The noun in the number ``n`` asks for: ``column`` for one, ``columns`` (or ``many``) otherwise."""
    return word if n == 1 else many or word + "s"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,200 customers``: every count the product words, in the right number."""
    return f"{n:,} {noun(n, word, many)}"


def lacks_features(what: str, missing) -> str:
    """The one sentence every path (endpoint, transform, monitoring, evaluation) starts a missing-feature refusal
    with, so a file lacking a column reads the same wherever it is scored."""
    missing = list(missing)
    return f"{what} lacks the model's feature {noun(len(missing), 'column')} {', '.join(missing)}"
