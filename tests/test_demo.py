"""`python -m todrl.demo`: the ratings file, the report, and a person's whole dialogue driven in headless Chromium."""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path

import pytest

from todrl.data.errors import DataError
from todrl.data.multiwoz import SAMPLE_PATH
from todrl.demo.cli import main
from todrl.demo.goals import load_goals
from todrl.demo.report import summarize
from todrl.demo.store import RatingStore
from todrl.serve.launch import free_port, running

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


def test_blind_dialogues_go_to_the_less_rated_checkpoint_and_side_by_side_to_both(tmp_path):
    store = RatingStore(tmp_path / "r.sqlite")
    rng = random.Random(0)
    blind = [store.dialogue(store.start("sng0073", "goal", ["A", "B"], "blind", rng)) for _ in range(6)]
    assert sorted(d.conversations[0].checkpoint for d in blind) == ["A"] * 3 + ["B"] * 3
    both = store.dialogue(store.start("sng0073", "goal", ["A", "B"], "side-by-side", rng))
    assert sorted(c.checkpoint for c in both.conversations) == ["A", "B"]
    with pytest.raises(ValueError, match="fluency rating must be 1-5, got 7"):
        store.rate(both.conversations[0].id, 0, "fluency", 7)


def _rated(path: Path) -> None:
    store = RatingStore(path)
    for checkpoint, scores, verdicts in (("sft", [(4, 3), (5, 4)], [True, True, False]), ("rl", [(2, 2)], [True])):
        for index, success in enumerate(verdicts):
            conversation = store.dialogue(store.start(f"g{index}", "goal", [checkpoint], "blind")).conversations[0]
            store.judge(conversation.id, success)
            if index == 0:
                for appropriateness, fluency in scores:
                    turn = store.add_turn(conversation.id, "hi", "hello", {})
                    store.rate(conversation.id, turn, "appropriateness", appropriateness)
                    store.rate(conversation.id, turn, "fluency", fluency)


def test_report_gives_means_with_intervals_and_a_plot(tmp_path, capsys):
    _rated(tmp_path / "r.sqlite")
    summary = summarize(tmp_path / "r.sqlite")
    # appropriateness 4 and 5: sd 0.707, standard error 0.5, half-width 1.96 * 0.5 = 0.98
    assert (summary["sft"]["appropriateness"].low, summary["sft"]["appropriateness"].high) == pytest.approx((3.52, 5.48))
    # 2 successes in 3: Wilson 95% interval [0.2077, 0.9385] (as statsmodels' proportion_confint(2, 3, method="wilson"))
    success = summary["sft"]["success"]
    assert (success.n, success.mean, success.low, success.high) == pytest.approx((3, 2 / 3, 0.2077, 0.9385), abs=1e-4)
    assert summary["rl"]["fluency"].n == 1 and summary["rl"]["fluency"].low == summary["rl"]["fluency"].high == 2
    assert main(["--report", str(tmp_path / "r.sqlite"), "--plot", str(tmp_path / "r.png")]) == 0
    out = capsys.readouterr().out
    assert "| sft | 4.50 [3.52, 5.48] (n=2) | 3.50 [2.52, 4.48] (n=2) | 0.67 [0.21, 0.94] (n=3) |" in out
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")


def test_bad_invocations_are_clear_errors(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a database")
    assert main(["--report", str(tmp_path / "missing.sqlite")]) == 2
    assert main(["--report", str(tmp_path / "notes.txt")]) == 2
    assert main([]) == 2
    assert main(["--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert main(["--checkpoint", str(tmp_path)] * 3) == 2
    errors = capsys.readouterr().err
    for expected in ("missing.sqlite: no such ratings file", "notes.txt: not a ratings file", "give --checkpoint",
                     "no such checkpoint directory", "3 checkpoints given"):
        assert expected in errors


def test_goals_are_shown_in_words_and_a_goal_without_words_is_an_error(tmp_path):
    cards = load_goals(SAMPLE_PATH)
    assert len(cards) == 10 and not any("<" in card.text for card in cards)
    (tmp_path / "data.json").write_text('{"SNG1.json": {"goal": {"taxi": {}}, "log": []}}')
    (tmp_path / "testListFile.txt").write_text("SNG1.json\n")
    with pytest.raises(DataError, match="dialogue sng1.*no 'message'"):
        load_goals(tmp_path)


def _chromium() -> str:
    """The system browser; outside CI its absence skips the browser test, in CI it fails it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright  # noqa: F401
    except ModuleNotFoundError:
        found = None
    if found is None:
        message = "Chromium and the playwright package are needed (apt-get install chromium; pip install -e '.[test]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _until(condition, timeout_s: float = 60.0):
    """Poll the ratings file: the app writes each rating as it is given, not at the end."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("the ratings file never showed what was entered")
        time.sleep(0.2)
    return value


@pytest.mark.slow
def test_a_person_talks_rates_and_finishes_a_dialogue_in_the_browser(request, data_dir, tmp_path):
    """TODRL_DEMO_CHECKPOINT picks another checkpoint, TODRL_DEMO_SCREENSHOT where the screenshot goes
    (docs/img/demo.png was taken this way, with the embedded default SFT checkpoint)."""
    chromium = _chromium()
    from playwright.sync_api import expect, sync_playwright

    checkpoint = os.environ.get("TODRL_DEMO_CHECKPOINT") or str(request.getfixturevalue("tiny_policy"))
    ratings, port = tmp_path / "ratings.sqlite", free_port()
    args = ["--checkpoint", checkpoint, "--ratings", str(ratings), "--data-dir", str(data_dir / "multiwoz21"), "--port", str(port)]
    store = RatingStore(ratings)
    goal = load_goals(data_dir / "multiwoz21")[1]
    turns = [("i am looking for a cheap restaurant in the centre .", 4, 3), ("what is the phone number ?", 2, 5)]
    shown = []
    with running("todrl.demo", args, f"http://127.0.0.1:{port}/_stcore/health"), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1700})
        page.goto(f"http://127.0.0.1:{port}", timeout=120_000)
        page.get_by_role("combobox", name="Goal").click(timeout=120_000)
        page.get_by_role("option").nth(1).click()
        expect(page.get_by_text(goal.text)).to_be_visible()
        page.get_by_role("button", name="Start dialogue").click()
        for index, (user, appropriateness, fluency) in enumerate(turns):
            page.get_by_test_id("stChatInputTextArea").fill(user)
            page.get_by_test_id("stChatInputTextArea").press("Enter")
            expect(page.get_by_test_id("stChatMessage")).to_have_count(2 * index + 2, timeout=120_000)
            shown.append(page.get_by_test_id("stChatMessage").nth(2 * index + 1).inner_text())
            for aspect, score in (("Appropriateness", appropriateness), ("Fluency", fluency)):
                page.get_by_role("radiogroup", name=aspect).nth(index).get_by_text(str(score), exact=True).click()
                _until(lambda a=aspect.lower(), s=score, i=index: getattr(store.dialogue(1).conversations[0].turns[i], a) == s)
        page.get_by_role("radiogroup", name="Goal achieved?").get_by_text("yes", exact=True).click()
        _until(lambda: store.dialogue(1).conversations[0].success is True)
        page.get_by_text("Belief state, act and database").first.click()
        expect(page.get_by_text("belief state").first).to_be_visible()
        page.screenshot(path=os.environ.get("TODRL_DEMO_SCREENSHOT") or str(tmp_path / "demo.png"), full_page=True)
        page.get_by_role("button", name="Finish dialogue").click()
        expect(page.get_by_text("Dialogue saved")).to_be_visible(timeout=60_000)
        browser.close()

    dialogue = store.dialogue(1)
    conversation = dialogue.conversations[0]
    assert dialogue.finished and dialogue.goal == goal.text and conversation.checkpoint == checkpoint
    assert [(t.user, t.appropriateness, t.fluency) for t in conversation.turns] == turns
    for turn, text in zip(conversation.turns, shown):
        assert (turn.response or turn.structured["generation"]) in text
