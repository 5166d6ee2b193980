"""The README's table of the last full run of a profile, generated from what that run left in outputs/:

    python -m lib.running.results_table [--profile cpu] [--outputs DIR] [--write README.md]

One row per run of the profile's plan: its minutes (outputs/timings.json), the stage it spent most of them in
(metrics.json's stage_seconds: load, train, predict or other) and its headline metrics (metrics.json), then the total. `--write` replaces the text between the README's `<!-- results:start -->` / `<!-- results:end -->`
markers, so the table shown is always one run's, never typed by hand."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lib.core import paths
from lib.core.errors import LabError
from lib.running import profiles

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1.5 else f"{v:.1f}"
    return str(v)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except json.JSONDecodeError as e:
        raise LabError(f"{path}:{e.lineno}: damaged JSON ({e.msg}); re-run that run to rewrite it") from None


def dominant_stage(stage_seconds: dict) -> str:
    """'train 71%': the stage that took the largest share of a run's wall time ('' when none was recorded)."""
    total = sum(stage_seconds.values())
    if not total:
        return ""
    name, secs = max(stage_seconds.items(), key=lambda kv: kv[1])
    return f"{name} {100 * secs / total:.0f}%"


def rows(profile: str, out: Path) -> list[tuple[str, float | None, str, str]]:
    """(run, minutes or None when it has not run, dominant stage, headline text) for every run of the profile's
    plan."""
    timings = _read_json(out / "timings.json").get(profile, {})
    table = []
    for nb, run, _ in profiles.RUNS[profile]:
        key = f"{nb}/{run}"
        metrics = _read_json(out / nb / run / "metrics.json")
        mine = metrics.get("profile") == profile
        headline = metrics.get("headline", {}) if mine else {}
        seconds = timings.get(key)
        table.append((key, None if seconds is None else seconds / 60,
                      dominant_stage(metrics.get("stage_seconds") or {}) if mine else "",
                      ", ".join(f"{k} {_fmt(v)}" for k, v in headline.items()) or "not run"))
    return table


def markdown(profile: str, out: Path) -> str:
    table = rows(profile, out)
    lines = ["| run | minutes | most time in | headline metrics |", "|---|---|---|---|"]
    lines += [f"| {k} | {'–' if m is None else f'{m:.1f}'} | {st or '–'} | {h} |" for k, m, st, h in table]
    done = [m for _, m, _, _ in table if m is not None]
    total = f"**{sum(done):.1f}**" + ("" if len(done) == len(table) else f" ({len(table) - len(done)} runs missing)")
    lines.append(f"| **total** | {total} | | |")
    return "\n".join(lines)


def write(readme: Path, text: str) -> None:
    body = readme.read_text()
    if START not in body or END not in body:
        raise LabError(f"{readme}: the markers {START} and {END} are missing; put them where the table goes")
    head, rest = body.split(START, 1)
    readme.write_text(head + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu", choices=sorted(profiles.RUNS))
    ap.add_argument("--outputs", type=Path, default=paths.OUTPUTS)
    ap.add_argument("--write", type=Path, help="the README whose results section is replaced")
    a = ap.parse_args(argv)
    text = markdown(a.profile, a.outputs)
    if a.write:
        write(a.write, text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
