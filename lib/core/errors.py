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


def read_text(path, expected: str) -> str:
    """A whole text file as str: UTF-8 with or without a BOM (Excel, Notepad), any line ends (CRLF/CR -> LF).

    Missing, empty or non-UTF-8 files raise LabError naming the file, the line (and column) and `expected`."""
    from pathlib import Path
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise LabError(f"{path}: file not found; expected {expected}") from None
    if not data.strip():
        raise LabError(f"{where(path, 1)}: empty file; expected {expected}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise LabError(f"{where(path, line)}: byte 0x{data[e.start]:02x} at column {col} is not UTF-8 (the file looks "
                       f"like Latin-1 or Windows-1252: re-save it as UTF-8); expected {expected}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")
