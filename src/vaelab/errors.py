"""The one exception type for mistakes a user can fix (bad config value, missing data, bad file).

Entry points catch it and print its message as a single line with a non-zero exit, instead of a
traceback; programming errors keep their tracebacks.
"""


class UserError(Exception):
    """A problem in the user's input; the message names the key or file and how to fix it."""
