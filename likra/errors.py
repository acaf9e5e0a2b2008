"""The one error type for user mistakes."""


class LikraError(Exception):
    """A mistake in the user's input (file, line, option): the CLI prints it on one line and exits non-zero.

    Anything else that escapes is a bug in Likra and may show a traceback.
    """
