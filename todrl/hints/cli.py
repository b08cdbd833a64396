"""``python -m todrl.hints``: LLM replies guided by a policy's dialogue acts (seed 004, Sec. 6.2, Table 4).

    python -m todrl.hints --checkpoint runs/rl/default/best --llm-base-url http://localhost:8000/v1 \\
        --llm-model meta-llama/Llama-3.1-8B-Instruct --dataset multiwoz21 --split test --output hints.json
    python -m todrl.hints --no-policy ...      # the LLM alone writes state and reply from the examples

For every turn of the split the policy writes its belief state and dialogue act; the act is the hint of a
few-shot prompt (`todrl.hints.prompt`, examples chosen by `todrl.hints.shots`) from which any OpenAI-compatible
chat endpoint writes the delexicalized reply. The predictions (state from the policy, reply from the LLM) are
written in the standard format and scored as ``python -m todrl.evaluate`` scores them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rewards.spans import Vocabulary, parse_target

from todrl.config import parse_args_with_config
from todrl.data import default_data_dir, load_dialogues, span_vocabulary
from todrl.data.errors import DataError
from todrl.data.records import Dialogue
from todrl.evaluate import cli as evaluate_cli
from todrl.evaluate.predictions import PredictedTurn, Predictions, dump_predictions
from todrl.format import uses_acts
from todrl.llm.client import ChatClient, EndpointError, Usage
from todrl.hints.prompt import PromptStyle, answer_text, read_answer
from todrl.hints.shots import ShotPool, TurnRef, hint_domains, hint_text, turn_refs


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m todrl.hints", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    policy = parser.add_mutually_exclusive_group(required=True)
    policy.add_argument("--checkpoint", type=Path, help="todrl policy (SFT or RL) whose states and acts guide the LLM")
    policy.add_argument("--no-policy", action="store_true", help="baseline: the LLM alone writes state and reply")
    parser.add_argument("--dataset", choices=("multiwoz21", "incar"), default="multiwoz21")
    parser.add_argument("--data-dir", type=Path,
                        help="corpus folder; none = $TODRL_DATA/<corpus>, else ../shared/data/<corpus>")
    parser.add_argument("--split", default="test", help="split answered and scored")
    parser.add_argument("--limit", type=int, help="only the first N dialogues")
    parser.add_argument("--shot-split", default="train",
                        help="split the examples come from (the offline MultiWOZ data has no train: use val)")
    parser.add_argument("--shots", type=int, default=3, help="examples per prompt (k)")
    parser.add_argument("--seed", type=int, default=0, help="order that breaks ties between equally similar examples")
    parser.add_argument("--history-turns", type=int, default=3, help="earlier exchanges shown before each turn")
    parser.add_argument("--llm-base-url", required=True,
                        help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    parser.add_argument("--llm-model", required=True, help="model name the endpoint serves")
    parser.add_argument("--llm-key-env", default="OPENAI_API_KEY",
                        help="environment variable holding the API key; unset = no key (local servers)")
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--max-tokens", type=int, default=256, help="longest answer")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--retries", type=int, default=6, help="retries of a request on connection errors, 429 and 5xx")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one request may take")
    parser.add_argument("--batch-size", type=int, default=32, help="policy: turns decoded together")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="policy: greedy decoding length cap")
    parser.add_argument("--output", type=Path, required=True, help="where to write the predictions")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    args = parse_args_with_config(parser, argv)
    for flag, low in (("limit", 1), ("shots", 0), ("history_turns", 0), ("max_tokens", 1), ("concurrency", 1),
                      ("retries", 0), ("timeout", 1e-3), ("batch_size", 1), ("max_new_tokens", 1)):
        if getattr(args, flag) is not None and getattr(args, flag) < low:
            parser.error(f"--{flag.replace('_', '-')} must be at least {low}, got {getattr(args, flag)}")
    if args.checkpoint is not None and not args.checkpoint.is_dir():
        parser.error(f"--checkpoint {args.checkpoint}: no such model directory")
    if args.output.is_dir():
        parser.error(f"--output {args.output}: is a directory; name the predictions file to write")
    return args


def policy_turns(args: argparse.Namespace, dialogues: list[Dialogue], data_dir: Path, vocabulary: Vocabulary,
                 with_act: bool) -> tuple[list[PredictedTurn], list[str], list[set[str]]]:
    """The policy's predicted turns, hints and hinted domains, in `turn_refs` order; generated as
    ``python -m todrl.evaluate --checkpoint`` generates them, in the format the policy was trained in."""
    import torch  # only a policy needs torch and transformers

    from todrl.evaluate.generate import predict_dialogues
    from todrl.instruct import checkpoint_format, inference_format
    from todrl.models import ModelLoadError, load_merged

    try:
        model, tokenizer = load_merged(args.checkpoint)
    except ModelLoadError as error:
        raise ValueError(str(error)) from None
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    form = inference_format(checkpoint_format(args.checkpoint), args.dataset, data_dir, vocabulary, dialogues)
    predictions, texts = predict_dialogues(model, tokenizer, dialogues, vocabulary, progress=True,
                                           shortest_first=True, form=form, batch_size=args.batch_size,
                                           max_new_tokens=args.max_new_tokens)
    targets = [parse_target(text, vocabulary) for text in texts]
    return ([turn for d in dialogues for turn in predictions[d.id]],
            [hint_text(t.dialogue_act, t.belief_state, with_act) for t in targets],
            [hint_domains(t.dialogue_act, t.belief_state, with_act) for t in targets])


def prompt_bodies(args: argparse.Namespace, refs: list[TurnRef], hints: list[str], domains: list[set[str]],
                  style: PromptStyle, shots: ShotPool) -> list[dict[str, Any]]:
    """One chat request per turn: the instruction, the turn's examples, its history and (with a policy) its hint."""
    bodies = []
    for ref, hint, hinted in zip(refs, hints, domains):
        examples = [style.example(shot, shots.gold_hint(shot.turn))
                    for shot in shots.select(ref.turn.user, hint, hinted, args.shots)]
        bodies.append({"model": args.llm_model, "messages": style.messages(examples, style.block(ref, hint, None)),
                       "temperature": args.temperature, "max_tokens": args.max_tokens})
    return bodies


def read_answers(refs: list[TurnRef], policy: list[PredictedTurn] | None, responses: list[dict[str, Any]],
                 vocabulary: Vocabulary) -> tuple[Predictions, int]:
    """Predictions (the reply from the LLM, the state from the policy when there is one) and how many answers
    were not in the form asked for."""
    predictions: Predictions = {ref.dialogue.id: [] for ref in refs}
    malformed = 0
    for index, (ref, response) in enumerate(zip(refs, responses)):
        answer = read_answer(answer_text(response), vocabulary, policy is not None)
        malformed += not answer.well_formed
        state = policy[index].state if policy is not None else answer.state
        predictions[ref.dialogue.id].append(PredictedTurn(response=answer.response, state=state))
    return predictions, malformed


def run(args: argparse.Namespace) -> tuple[dict[str, Any], Usage]:
    """Answer, write and score the split: the result `python -m todrl.evaluate --json` gives, plus `llm`."""
    data_dir = args.data_dir or default_data_dir(args.dataset)
    dialogues = load_dialogues(args.dataset, data_dir, args.split)[: args.limit]
    answered = {d.id for d in dialogues}
    try:
        pool = [d for d in load_dialogues(args.dataset, data_dir, args.shot_split) if d.id not in answered]
    except DataError as error:
        raise ValueError(f"{error} (--shot-split names the split the examples come from)") from None
    vocabulary = span_vocabulary(args.dataset, data_dir)
    with_act, refs = uses_acts(dialogues), turn_refs(dialogues)
    if args.no_policy:
        policy, hints, domains = None, [""] * len(refs), [set()] * len(refs)
    else:
        policy, hints, domains = policy_turns(args, dialogues, data_dir, vocabulary, with_act)

    style = PromptStyle.of(pool, vocabulary, with_act, policy is not None, args.history_turns)
    bodies = prompt_bodies(args, refs, hints, domains, style, ShotPool(pool, with_act, policy is not None, args.seed))
    key = os.environ.get(args.llm_key_env)
    if not key:
        print(f"note: ${args.llm_key_env} is not set; requests go without an API key", file=sys.stderr)
    client = ChatClient(args.llm_base_url, key, retries=args.retries, timeout_s=args.timeout)
    predictions, malformed = read_answers(refs, policy, client.complete_all(bodies, args.concurrency), vocabulary)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    dump_predictions(predictions, args.output)
    print(f"wrote {args.output}", file=sys.stderr)

    scoring = evaluate_cli.parse_args(["--predictions", str(args.output), "--dataset", args.dataset,
                                       "--data-dir", str(data_dir), "--split", args.split])
    result = evaluate_cli.score(scoring, evaluate_cli.corpus_scorer(scoring), predictions, args.output)
    llm = asdict(client.usage) | {"answers": len(refs), "malformed_answers": malformed,
                                  "mode": "no-policy" if args.no_policy else "policy"}
    return result | {"llm": llm}, client.usage


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result, usage = run(args)
    except EndpointError as error:
        print(f"error: {error} (the answers received are cached: a rerun resumes there)", file=sys.stderr)
        return 2
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    llm = result["llm"]
    malformed = f"{llm['malformed_answers']} of {llm['answers']} answers not in the form asked for, scored as they are"
    text = "\n".join([evaluate_cli.summary(result), usage.summary(), malformed])
    print(json.dumps(result, indent=2) if args.json else text)
    return 0
