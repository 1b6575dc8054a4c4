"""The one exception type for problems the user can fix (bad input, missing files)."""


class UserError(Exception):
    """Bad input: the message says what is wrong and what to do; the CLI prints it and exits 2."""
