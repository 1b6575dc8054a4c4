"""The one exception type for problems the user can fix (bad input, missing files)."""


class UserError(Exception):
    """Bad input: the message says what is wrong and what to do; the CLI prints it and exits 2."""


class TamperedFile(UserError):
    """A checkpoint or weights file that would run code when loaded: moved aside, never loaded; runs stop."""


def reason(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name if it has none), for a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__
