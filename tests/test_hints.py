"""``python -m todrl.hints``: prompts and shots, the HTTP client against real local endpoints (a scripted one for
retries and malformed answers, todrl's own chat server end to end), the on-disk cache, and scoring."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from todrl.data import span_vocabulary
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.evaluate.predictions import load_predictions
from todrl.llm.cache import ResponseCache, request_key
from todrl.hints.cli import main
from todrl.llm.client import ChatClient, EndpointError
from todrl.hints.prompt import PromptStyle, answer_text, read_answer
from todrl.hints.shots import ShotPool, turn_refs

VOCABULARY = span_vocabulary("multiwoz21")
TRAIN = load_multiwoz(SAMPLE_PATH, "train")
TEST = load_multiwoz(SAMPLE_PATH, "test")


def test_shots_share_the_hinted_domain_one_per_dialogue_and_do_not_depend_on_the_pool_order() -> None:
    pool = ShotPool(TRAIN, with_act=True, hinted=True, seed=0)
    shots = pool.select("i need the phone number of the restaurant", "[restaurant] [inform] phone", {"restaurant"}, 3)
    assert len(shots) == 3 and len({s.dialogue.id for s in shots}) == 3
    assert all("restaurant" in s.turn.dialogue_act for s in shots)
    assert [(s.dialogue.id, s.index) for s in shots] == [
        (s.dialogue.id, s.index) for s in ShotPool(TRAIN[::-1], True, True, seed=0).select(
            "i need the phone number of the restaurant", "[restaurant] [inform] phone", {"restaurant"}, 3)]
    assert ShotPool(TRAIN, True, True).select("anything", "", set(), 0) == []


def test_prompt_asks_for_the_reply_under_the_hint_or_for_state_and_reply_without_a_policy() -> None:
    ref = turn_refs(TEST)[2]
    hinted = PromptStyle.of(TRAIN, VOCABULARY, with_act=True, policy=True)
    messages = hinted.messages([hinted.example(turn_refs(TRAIN)[0], "[train] [request] leave")], hinted.block(ref, "[train] [inform] id", None))
    assert [m["role"] for m in messages] == ["system", "user"] and "[value_name]" in messages[0]["content"]
    assert messages[1]["content"].endswith(f"user: {ref.turn.user}\nhint: [train] [inform] id\nreply:")
    assert "Example 1\n" in messages[1]["content"] and "state before" not in messages[1]["content"]

    alone = PromptStyle.of(TRAIN, VOCABULARY, with_act=True, policy=False)
    example = alone.example(turn_refs(TRAIN)[1], "")
    assert "hint:" not in example and "answer: <sos_b> [" in example and example.endswith("<eos_r>")
    assert "state before this turn: [train] destination cambridge day thursday" in alone.block(ref, None, None)


@pytest.mark.parametrize(("content", "response", "state", "well_formed"), [
    ("<sos_b> [hotel] area north <eos_b> <sos_r> [value_name] is in the north . <eos_r>",
     "[value_name] is in the north .", {"hotel": {"area": "north"}}, True),
    ("<sos_b> [hotel] area north", "<sos_b> [hotel] area north", {"hotel": {"area": "north"}}, False),
    ("Sure!\nIt is [value_name].", "Sure! It is [value_name].", {}, False),
    ("", "", {}, False),
    ("<sos_r> <eos_r> <sos_b> ]][[ <eos_b>", "", {}, True),
])
def test_malformed_answers_are_kept_as_they_are(content, response, state, well_formed) -> None:
    answer = read_answer(content, VOCABULARY, policy=False)
    assert (answer.response, answer.state, answer.well_formed) == (response, state, well_formed)


@pytest.mark.parametrize("response", [{}, {"choices": []}, {"choices": [{"message": {"content": None}}]}, {"choices": "x"}])
def test_responses_without_content_read_as_empty(response) -> None:
    assert answer_text(response) == ""


def test_cache_key_is_endpoint_model_and_body() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    key = request_key("http://a/v1/", "m", body)
    assert key == request_key("http://a/v1", "m", dict(reversed(body.items())))
    assert len({key, request_key("http://b/v1", "m", body), request_key("http://a/v1", "m", {**body, "temperature": 0.5})}) == 3


class Scripted(BaseHTTPRequestHandler):
    """A chat endpoint answering from `server.script` (status, headers, body) in order, recording what it got."""

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.server.received.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
        status, headers, body = self.server.script.pop(0)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Scripted)
    server.received, server.script = [], []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def completion(content: str, usage: bool = True) -> str:
    body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    return json.dumps(body | ({"usage": {"prompt_tokens": 40, "completion_tokens": 7}} if usage else {}))


def test_retries_429_and_5xx_then_caches_and_counts_tokens(scripted, tmp_path: Path) -> None:
    scripted.script = [(429, {"retry-after": "0"}, "slow down"), (503, {"retry-after": "0"}, "busy"),
                       (200, {}, "not json"), (200, {}, completion("[value_name] is nice ."))]
    client = ChatClient(f"http://127.0.0.1:{scripted.server_port}/v1", "sk-test", ResponseCache(tmp_path), backoff_s=0)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert answer_text(client.complete_all([body])[0]) == "[value_name] is nice ."
    assert answer_text(client.complete(body)) == "[value_name] is nice ."  # from the cache: the script is spent
    usage = client.usage
    assert (usage.sent, usage.attempts, usage.cached, usage.prompt_tokens, usage.completion_tokens) == (1, 4, 1, 40, 7)
    assert "1 sent (4 HTTP attempts), 1 from the cache" in usage.summary() and len(scripted.received) == 4


def test_a_refused_request_stops_the_run_with_the_servers_message(scripted, tmp_path: Path) -> None:
    scripted.script = [(400, {}, json.dumps({"error": {"message": "context too long"}}))]
    client = ChatClient(f"http://127.0.0.1:{scripted.server_port}/v1", None, ResponseCache(tmp_path), backoff_s=0)
    with pytest.raises(EndpointError, match="HTTP 400: context too long"):
        client.complete_all([{"model": "m", "messages": []}])


def test_no_policy_run_records_garbled_answers_and_scores_them(scripted, tmp_path: Path, capsys) -> None:
    turns = sum(len(d.turns) for d in TEST[:1])
    answers = ["<sos_b> [train] destination cambridge <eos_b> <sos_r> when do you want to leave ? <eos_r>",
               "<sos_b> [train", "I'm sorry,\n\nI can't help."] + ["ok ."] * turns
    scripted.script = [(200, {}, completion(text, usage=False)) for text in answers[:turns]]
    output = tmp_path / "alone.json"
    argv = ["--no-policy", "--data-dir", str(SAMPLE_PATH), "--limit", "1", "--concurrency", "1", "--llm-base-url",
            f"http://127.0.0.1:{scripted.server_port}/v1", "--llm-model", "m", "--output", str(output), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    predicted = load_predictions(output)[TEST[0].id]
    assert [t.response for t in predicted[:3]] == ["when do you want to leave ?", "<sos_b> [train", "I'm sorry, I can't help."]
    assert predicted[0].state == {"train": {"destination": "cambridge"}} and predicted[1].state == {}
    assert result["llm"]["malformed_answers"] == turns - 1 and result["llm"]["without_usage"] == turns
    assert result["standard"]["coverage"]["turns"] == turns and "bleu" in result["standard"]


@pytest.mark.slow
def test_policy_hints_are_written_scored_and_a_rerun_sends_nothing(served, tiny_policy: Path, tmp_path: Path, capsys) -> None:
    base, model = served
    output = tmp_path / "hints.json"
    argv = ["--checkpoint", str(tiny_policy), "--data-dir", str(SAMPLE_PATH), "--limit", "2", "--max-new-tokens", "24",
            "--llm-base-url", base, "--llm-model", model, "--output", str(output)]
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    turns = sum(len(d.turns) for d in TEST[:2])
    assert list(load_predictions(output)) == [d.id for d in TEST[:2]]
    coverage = result["standard"]["coverage"]
    assert (coverage["dialogues"], coverage["turns"]) == (2, turns) and result["dst"]["turns"] == turns
    assert 0 <= result["standard"]["inform"]["total"] <= 100 and result["standard"]["bleu"] >= 0
    assert (result["llm"]["sent"], result["llm"]["cached"]) == (turns, 0)

    # Another process, with another hash seed: every prompt is built the same and answered from the cache.
    rerun = subprocess.run([sys.executable, "-m", "todrl.hints", *argv], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "PYTHONHASHSEED": "7"})
    assert rerun.returncode == 0, rerun.stderr
    assert f"LLM: {turns} requests, 0 sent (0 HTTP attempts), {turns} from the cache" in rerun.stdout


@pytest.mark.slow
def test_no_policy_baseline_runs_against_the_served_model(served, tmp_path: Path, capsys) -> None:
    base, model = served
    output = tmp_path / "alone.json"
    argv = ["--no-policy", "--data-dir", str(SAMPLE_PATH), "--limit", "2", "--shots", "2", "--llm-base-url", base,
            "--llm-model", model, "--output", str(output), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    turns = sum(len(d.turns) for d in TEST[:2])
    assert result["standard"]["coverage"]["turns"] == turns and result["llm"]["mode"] == "no-policy"
    # The served policy answers a prompt with a plain (lexicalized) reply, never the asked-for spans.
    assert result["llm"]["malformed_answers"] == turns
