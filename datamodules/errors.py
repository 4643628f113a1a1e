"""The one exception type for bad user input.

Anything a user can fix (a wrong config key, a missing file, an empty vocabulary, a corrupt
input) raises :class:`UserInputError` with a message that says what to fix. The CLI prints it on
one line and exits with status 2, without a traceback. Bugs raise anything else.
"""


class UserInputError(ValueError):
    """Bad input that the user can fix; the message says how."""
