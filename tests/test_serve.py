"""`python -m todrl.serve`: a real server on 127.0.0.1 over a tiny SFT checkpoint, spoken to with the `openai` client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from rewards.spans import build_target
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.format import build_examples
from todrl.serve.app import main
from todrl.serve.launch import free_port, running
from todrl.serve.policy import DialoguePolicy, SystemTurn

pytestmark = pytest.mark.slow  # a served checkpoint; whole corpora

MAX_TURNS = 4


@pytest.fixture(scope="module")
def server(tiny_policy: Path):
    port = free_port()
    args = ["--checkpoint", str(tiny_policy), "--port", str(port), "--max-turns", str(MAX_TURNS), "--batch-wait-ms", "100"]
    base = f"http://127.0.0.1:{port}/v1"
    with running("todrl.serve", args, f"{base}/models"):
        yield base, str(tiny_policy)


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[0], api_key="unused", max_retries=0, timeout=120)


def _chat(client: openai.OpenAI, model: str, messages: list[dict], **options):
    return client.chat.completions.create(model=model, messages=messages, **options)


def test_lists_the_served_model(client, server):
    assert [m.id for m in client.models.list()] == [server[1]]


def test_reply_carries_its_turn_and_the_next_request_carries_it_back(client, server):
    model = server[1]
    first = _chat(client, model, [{"role": "user", "content": "I need a cheap restaurant in the centre."}])
    message = first.choices[0].message
    turn = message.todrl
    assert message.role == "assistant" and message.content == turn["response"]
    assert set(turn) >= {"belief_state", "dialogue_act", "db", "response_delex", "unfilled"}
    assert first.todrl == {"history": "carried", "rederived_turns": 0, "batch_sizes": [1]}

    history = [{"role": "user", "content": "I need a cheap restaurant in the centre."},
               {"role": "assistant", "content": message.content, "todrl": turn},
               {"role": "user", "content": "What is the phone number?"}]
    carried = _chat(client, model, history)
    assert carried.todrl["history"] == "carried" and carried.todrl["rederived_turns"] == 0

    # A plain chat UI drops the field: the server re-derives the first turn, says so, and lands on the same reply.
    plain = _chat(client, model, [{k: v for k, v in m.items() if k != "todrl"} for m in history])
    assert plain.todrl["history"] == "rederived" and plain.todrl["rederived_turns"] == 1 and "re-derived" in plain.todrl["note"]
    assert plain.choices[0].message.todrl == carried.choices[0].message.todrl


def test_streamed_reply_is_the_same_reply(client, server):
    messages = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "i want a train to cambridge"}]
    whole = _chat(client, server[1], messages).choices[0].message
    chunks = list(_chat(client, server[1], messages, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == whole.content
    assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].choices[0].delta.todrl == whole.todrl


def test_eight_concurrent_requests_are_batched(client, server):
    users = [f"i need a hotel with {n} stars in the north" for n in range(8)]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda u: _chat(client, server[1], [{"role": "user", "content": u}]), users))
    assert all(r.choices[0].message.todrl is not None for r in replies)
    assert max(r.todrl["batch_sizes"][0] for r in replies) > 1


USER = {"role": "user", "content": "hello"}


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"messages": []}, "no user message"),
        ({"messages": [{"role": "system", "content": "be nice"}]}, "no user message"),
        ({"messages": [USER, {"role": "assistant", "content": "hi"}]}, "the user speaks next"),
        ({"messages": [{"role": "user", "content": "  "}]}, "messages[0]: the user message is empty"),
        ({"model": "gpt-4o"}, "unknown model 'gpt-4o'"),
        ({"messages": [USER, {"role": "assistant", "content": "hi"}] * MAX_TURNS + [USER]}, "history too long: 5 user turns, at most 4"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": "hello"}, "messages"),
        ({"messages": [{"role": "robot", "content": "beep"}]}, "messages.0.role"),
        ({"messages": [USER], "stream": "yes"}, "stream"),
        ({"messages": [USER], "n": 2}, "n=2"),
        ({"messages": [USER], "kb": [{"poi": "chevron"}]}, "only In-Car policies read a knowledge base"),
        ({"messages": [USER, {"role": "assistant", "content": "hi", "todrl": {"belief_state": []}}, USER]},
         "messages[1].todrl: 'belief_state' must map domains"),
    ],
)
def test_bad_requests_get_a_400_naming_the_problem(client, server, request_fields, message):
    body = {"model": server[1], "messages": [USER], **request_fields}
    with pytest.raises(openai.BadRequestError) as caught:
        client.post("/chat/completions", cast_to=object, body=body)
    assert caught.value.status_code == 400 and message in caught.value.body["message"]


def test_malformed_json_is_a_400_and_the_server_lives_on(client, server):
    request = urllib.request.Request(f"{server[0]}/chat/completions", data=b"{not json", headers={"content-type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=30)
    assert caught.value.code == 400 and "JSON" in json.loads(caught.value.read())["error"]["message"]
    assert [m.id for m in client.models.list()] == [server[1]]


def test_sources_are_the_training_sources_and_replies_are_filled_from_the_database(tiny_policy):
    dialogue = next(d for d in load_multiwoz(SAMPLE_PATH, "train") if d.id == "sng0566")
    policy = DialoguePolicy(tiny_policy)
    first, second = dialogue.turns[:2]
    sent_back = json.loads(json.dumps(SystemTurn(first.belief_state, first.dialogue_act, first.system_delex).to_json()))
    assert policy.source(second.user, SystemTurn.from_json(sent_back).as_turn(first.user)) == build_examples([dialogue])[1].source

    # The gold target of that turn: its state names zizzi cambridge; the real reply gives the venue's phone.
    turn = policy.read(build_target(second.belief_state, second.dialogue_act, second.system_delex))
    assert turn.response == second.system
    assert "zizzi cambridge" in turn.response and "01223365599" in turn.response
    assert turn.unfilled == [] and turn.db["restaurant"]["matches"] == 1


def test_a_checkpoint_that_cannot_be_served_is_a_clear_error(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert main(["--checkpoint", str(tmp_path)]) == 2
    errors = capsys.readouterr().err
    assert "nowhere: no such checkpoint directory" in errors and f"{tmp_path}: not a loadable model directory" in errors


@pytest.mark.usefixtures("fresh_accelerator_state")
def test_an_adapter_run_is_served_merged_from_its_best_checkpoint(tmp_path):
    from todrl.adapters import AdapterConfig
    from todrl.sft import SFTConfig, train

    train(SFTConfig(output_dir=str(tmp_path), max_steps=2, batch_size=8, vocab_size=400, max_target_length=16,
                    adapter=AdapterConfig(type="lora")))
    policy = DialoguePolicy(tmp_path)
    assert policy.checkpoint == tmp_path / "best" and policy.max_new_tokens == 16
    assert not any("lora" in name for name, _ in policy.model.named_parameters())
    assert isinstance(policy.respond("hello", None), SystemTurn)
