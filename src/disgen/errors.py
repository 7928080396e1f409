"""The one exception type for errors a user can cause, and :func:`plural` for the messages.

Its message names the file or value at fault and says what to do. The CLI prints it without a
traceback and exits with status 2.
"""


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` and ``noun`` as a message says them: "1 step", "2 steps" ("1 class", "2 classes" with
    ``nouns``)."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def brief(text: str, limit: int = 200) -> str:
    """Another library's message, shortened for one line of ours: its first sentence (torch's
    "Weights only load failed. ... two options ..." runs to a page), cut at a word with "..."
    where that is still over ``limit`` characters, never mid-word."""
    first = (str(text).strip().splitlines() or [""])[0]
    sentence = first.split(". ", 1)[0].rstrip(".")
    if len(sentence) <= limit:
        return sentence
    return sentence[:limit].rsplit(" ", 1)[0].rstrip(",;:") + "..."


class DisgenError(Exception):
    """A problem with the user's input, files or environment, explained for the user."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) or SIGTERM stopped the command; the message says how a training run goes on.

    A KeyboardInterrupt, so code that lets Ctrl-C through (atomic writes remove their temp file,
    the last checkpoint stays intact) treats SIGTERM alike. ``signum`` gives the exit status,
    128 + the signal's number, as a shell reports a process the signal ended.
    """

    def __init__(self, message: str = "", signum: int = 2):
        super().__init__(message)
        self.signum = signum
