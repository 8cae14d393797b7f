"""The base of every error a user can cause and fix (bad input, missing tools, a lost board).

The ``codesign`` command prints such an error as one line and exits with its
``exit_code`` (2 unless the class says otherwise); any other exception is a bug and keeps
its traceback (exit 1). :data:`EXIT_CODES` lists every exit status (``codesign --help``
prints it).
"""

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_TOOLS_MISSING = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143

EXIT_CODES = ((EXIT_OK, "done"),
              (1, "a bug (a traceback: please report it)"),
              (EXIT_BAD_INPUT, "bad input or an unusable file, folder, package or board "
                               "(one line on stderr)"),
              (EXIT_TOOLS_MISSING, "build-overlay: project written, but Vitis HLS / Vivado "
                                   "are missing or the wrong version"),
              (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
              (EXIT_TERMINATED, "terminated (SIGTERM)"))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that every clean-up (``finally``, staging
    folders) runs as it does for Ctrl-C."""


class CodesignError(Exception):
    """An error the user can act on; its message says what was wrong and what to do."""

    exit_code = EXIT_BAD_INPUT


class FileProblem(CodesignError):
    """A file that cannot be used: ``path`` names it, ``reason`` says why."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
