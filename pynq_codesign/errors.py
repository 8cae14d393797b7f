"""The base of every error a user can cause and fix (bad input, missing tools, a lost board).

The ``codesign`` command prints such an error as one line and exits with status 2; any
other exception is a bug and keeps its traceback.
"""


class CodesignError(Exception):
    """An error the user can act on; its message says what was wrong and what to do."""

    exit_code = 2


class FileProblem(CodesignError):
    """A file that cannot be used: ``path`` names it, ``reason`` says why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
