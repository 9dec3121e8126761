"""The one exception type users see.

Every error caused by user input (a bad file, an unknown environment, a wrong flag)
is raised as :class:`TrirlError` with a single line naming what is wrong and how to
fix it. The CLI prints that line and exits with status 2 -- no traceback.
"""


class TrirlError(Exception):
    """A user-facing error whose message is one line: what, where, and the fix."""


class Interrupted(TrirlError):
    """The user stopped a run (Ctrl-C) after its state was saved; not a failure of input.
    The CLI prints the message without "error" and exits with status 130 (SIGINT)."""
