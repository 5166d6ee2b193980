"""User-facing errors: one clear message (file, line, what was expected), no bare traceback."""


class LabError(Exception):
    """A mistake in input or configuration that the user can fix.

    In Jupyter/papermill it is shown as one red line (IPython's `_render_traceback_` hook) instead of a
    traceback; the cell still fails, so papermill and run_all.sh still see the failure.
    """

    def _render_traceback_(self):
        return [f"\033[31mLabError: {self}\033[0m"]


def where(path, line=None) -> str:
    """'file:line' prefix for messages."""
    return f"{path}:{line}" if line is not None else str(path)
