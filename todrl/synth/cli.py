"""Synthetic labelled dialogues: ``python -m todrl.synth schema|simulate --output DIR``.

``schema`` (seed 003): scenarios from the MultiWOZ schema and database, a logic flow per dialogue (``--planner
rules|llm``), words for it (``--realizer templates|llm``). ``simulate`` (seed 001): an LLM user with a sampled goal
talks to an LLM agent whose declared state is queried against the database. Both validate every turn, regenerate
failing ones, drop and count what keeps failing, and append to ``DIR/dialogues.jsonl``; a rerun resumes. LLM runs
make ``--concurrency`` dialogues at once, each with its own RNG, so the corpus does not depend on their order.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from todrl.data.db import MultiWozDB
from todrl.data.errors import DataError
from todrl.data.multiwoz import SAMPLE_PATH
from todrl.llm.cache import ResponseCache
from todrl.llm.client import ChatClient, EndpointError
from todrl.synth.compose import Composer, RulePlanner, TemplateRealizer
from todrl.synth.corpus import CorpusWriter
from todrl.synth.scenario import LEVELS, Ontology
from todrl.synth.stats import plot, summary


def _levels(text: str) -> tuple[int, ...]:
    levels = tuple(int(part) for part in text.split(",") if part.strip())
    if not levels or any(level not in LEVELS for level in levels):
        raise argparse.ArgumentTypeError(f"levels are among {', '.join(map(str, LEVELS))}, got {text!r}")
    return levels


def _at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return parse


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m todrl.synth", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--output", type=Path, required=True, help="corpus folder (dialogues.jsonl, rejected.jsonl)")
    common.add_argument("--dialogues", type=_at_least(1), default=50, help="dialogues to attempt in all (a rerun adds the missing ones)")
    common.add_argument("--seed", type=_at_least(0), default=0, help="each dialogue draws from (seed, index)")
    common.add_argument("--levels", type=_levels, default=LEVELS, help="complexity levels (domains per dialogue), in turn")
    common.add_argument("--retries", type=_at_least(0), default=3, help="regenerations of a failing flow or turn before a drop")
    common.add_argument("--data-dir", type=Path, default=SAMPLE_PATH,
                        help="MultiWOZ folder with db/ and schema_2.2.json (the sample shipped with todrl by default)")
    common.add_argument("--plot", type=Path, help="save the slot-value and length histograms to this PNG")
    common.add_argument("--llm-base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    common.add_argument("--llm-model", help="model name the endpoint serves")
    common.add_argument("--llm-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    common.add_argument("--temperature", type=float, default=0.7, help="LLM: sampling temperature")
    common.add_argument("--max-tokens", type=_at_least(1), default=512, help="LLM: length cap of one answer")
    common.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    common.add_argument("--concurrency", type=_at_least(1), default=8,
                        help="LLM: dialogues generated at once (each appended when done; the reader sorts by id)")
    schema = commands.add_parser("schema", parents=[common], help="schema -> scenario -> logic flow -> utterances",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    schema.add_argument("--planner", choices=("rules", "llm"), default="rules",
                        help="who plans each turn's intention and slot-values: rules (no LLM) or the LLM")
    schema.add_argument("--realizer", choices=("templates", "llm"), default="templates",
                        help="who writes the utterances: templates (no LLM) or the LLM")
    schema.add_argument("--mutations", type=_at_least(0), default=2,
                        help="LLM: most dynamic-complexity rounds per flow; dialogue i gets i mod (N+1) of them")
    simulate = commands.add_parser("simulate", parents=[common], help="LLM user and LLM agent over the endpoint",
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    simulate.add_argument("--max-turns", type=_at_least(1), default=12, help="user turns before a dialogue is cut")
    # The first help a user reads lists every command's options with their defaults.
    parser.epilog = "\n".join(command.format_help() for command in (schema, simulate))
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    args = parser.parse_args(argv)
    uses_llm = args.command == "simulate" or args.planner == "llm" or args.realizer == "llm"
    if uses_llm and not (args.llm_base_url and args.llm_model):
        parser.error("the LLM planner, realizer and simulate need --llm-base-url and --llm-model")
    for name in ("db", "schema_2.2.json"):
        if not (args.data_dir / name).exists():
            parser.error(f"--data-dir {args.data_dir}: no {name} there")
    return args


def client_for(args: argparse.Namespace) -> ChatClient:
    key = os.environ.get(args.llm_key_env)
    return ChatClient(args.llm_base_url, key, ResponseCache(), timeout_s=args.timeout)


def composer_for(args: argparse.Namespace, db: MultiWozDB, ontology: Ontology):
    """The generator a command line asks for."""
    from todrl.synth.llm import LLMPlanner, LLMRealizer, Sampling

    client = client_for(args) if args.command == "simulate" or "llm" in (args.planner, args.realizer) else None
    sampling = Sampling(args.llm_model, args.temperature, args.max_tokens) if client else None
    if args.command == "simulate":
        from todrl.synth.simulate import Simulator

        return Simulator(db, ontology, client, sampling, args.retries, args.levels, args.max_turns), client
    planner = LLMPlanner(client, sampling, ontology, args.mutations) if args.planner == "llm" else RulePlanner()
    realizer = LLMRealizer(client, sampling) if args.realizer == "llm" else TemplateRealizer()
    return Composer(db, ontology, planner, realizer, args.retries, args.llm_model if client else None, args.levels), client


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    db = MultiWozDB(args.data_dir / "db")
    ontology = Ontology.read(db, args.data_dir / "schema_2.2.json")
    writer = CorpusWriter(args.output)
    accepted, rejected = writer.finished()
    done = {r["id"] for r in accepted + rejected}
    generator, client = composer_for(args, db, ontology)
    todo = [i for i in range(args.dialogues) if _dialogue_id(args, i) not in done]
    print(f"{len(done)} dialogues already in {args.output}; {len(todo)} to go", file=sys.stderr)
    pool = ThreadPoolExecutor(args.concurrency if client is not None else 1)
    try:
        futures = [pool.submit(generator.compose, _dialogue_id(args, index), args.seed, index) for index in todo]
        for future in as_completed(futures):
            record = future.result()
            writer.append(record)
            (rejected if "reason" in record else accepted).append(record)
    except EndpointError as error:
        print(f"error: {error} (the finished dialogues are kept: a rerun resumes)", file=sys.stderr)
        return 2
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        pool.shutdown(cancel_futures=True)
        print(summary(accepted, rejected))
        if client is not None:
            print(client.usage.summary())
    if args.plot:
        plot(accepted, args.plot)
        print(f"histograms saved to {args.plot}")
    return 0


def _dialogue_id(args: argparse.Namespace, index: int) -> str:
    return f"{args.command}-{args.seed}-{index:05d}"
