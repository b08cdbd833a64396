"""``python -m todrl.demo``: the rating app (seed 004, Sec. 6.3), and the report of what people rated.

    python -m todrl.demo --checkpoint runs/sft/default/best                      # talk to one policy
    python -m todrl.demo --checkpoint SFT --checkpoint RL [--mode side-by-side]  # compare two, blind
    python -m todrl.demo --report ratings.sqlite                                 # means, intervals, PNG

A person picks a MultiWOZ test goal (shown in words), chats, rates every reply
for appropriateness and fluency (1-5) and, at the end, says whether the goal
was achieved. With two checkpoints each new dialogue goes blind to one of them
(the less rated one), or to both side by side in random order. Transcripts
and ratings go to the ratings file as they are given.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from todrl.demo.store import MODES

APP = Path(__file__).with_name("app.py")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m todrl.demo", description=__doc__.split("\n\n")[0].strip("`"))
    parser.add_argument("--checkpoint", type=Path, action="append", help="a todrl checkpoint; give two to compare them")
    parser.add_argument("--mode", choices=MODES, default="blind", help="with two checkpoints: one per dialogue, or both")
    parser.add_argument("--ratings", type=Path, default=Path("ratings.sqlite"), help="where transcripts and ratings go")
    parser.add_argument("--data-dir", type=Path, help="MultiWOZ folder: test goals and database (default: $TODRL_DATA, else the sample)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--report", type=Path, metavar="RATINGS", help="print the per-checkpoint means of a ratings file and plot them")
    parser.add_argument("--plot", type=Path, help="with --report: where the PNG goes (default: beside the ratings file)")
    return parser.parse_args(argv)


def app_command(args: argparse.Namespace) -> list[str]:
    """``streamlit run`` of the page, with todrl's options after ``--``."""
    app_args = [arg for checkpoint in args.checkpoint for arg in ("--checkpoint", str(checkpoint))]
    app_args += ["--ratings", str(args.ratings), "--mode", args.mode]
    if args.data_dir:
        app_args += ["--data-dir", str(args.data_dir)]
    streamlit = ["--server.headless", "true", "--server.address", args.host, "--server.port", str(args.port),
                 "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal"]
    return [sys.executable, "-m", "streamlit", "run", str(APP), *streamlit, "--", *app_args]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        from todrl.demo.report import report

        try:
            print(report(args.report, args.plot))
        except ValueError as error:
            print(f"todrl.demo: {error}", file=sys.stderr)
            return 2
        return 0
    problem = _check(args)
    if problem:
        print(f"todrl.demo: {problem}", file=sys.stderr)
        return 2
    print(f"rating app at http://{args.host}:{args.port} (ratings: {args.ratings})", flush=True)
    command = app_command(args)
    os.execv(command[0], command)  # the app takes this process over, so stopping it stops the app
    return 0


def _check(args: argparse.Namespace) -> str | None:
    if not args.checkpoint:
        return "give --checkpoint (one or two), or --report RATINGS"
    if len(args.checkpoint) > 2:
        return f"{len(args.checkpoint)} checkpoints given; the app compares at most two"
    missing = [str(c) for c in args.checkpoint if not c.is_dir()]
    if missing:
        return f"no such checkpoint directory: {', '.join(missing)}"
    if args.data_dir and not args.data_dir.is_dir():
        return f"{args.data_dir}: no such data folder"
    try:
        import streamlit  # noqa: F401
    except ModuleNotFoundError:
        return "streamlit is not installed; pip install 'todrl[serve]'"
    return None

