"""The one exception type for errors a user can cause.

Its message names the file or value at fault and says what to do. The CLI prints it without a
traceback and exits with status 2.
"""


class DisgenError(Exception):
    """A problem with the user's input, files or environment, explained for the user."""
