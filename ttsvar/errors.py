"""One exception type for every mistake a user can fix: callers (CLI, ComfyUI nodes) show its
message as is, without a traceback from deep inside torch."""


class TTSVarError(ValueError):
    """A bad input, a missing file or an impossible request, with a message that says what to do."""


class MissingWeightsError(TTSVarError, FileNotFoundError):
    """A weight file or folder is not where it should be."""

    def __init__(self, what: str, searched: str, hint: str):
        super().__init__(f"{what} not found (looked in {searched}). {hint}")
