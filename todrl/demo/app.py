"""The rating app's page (Streamlit); start it with ``python -m todrl.demo``, which passes the options after ``--``.

The page keeps no state of its own: the dialogue being rated is named in the
URL (``?dialogue=ID``) and everything else is read back from the ratings file
on each interaction, so a reload shows the same dialogue with its ratings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import streamlit as st
from rewards.spans import format_belief_state, format_dialogue_act

from todrl.data.multiwoz import SAMPLE_PATH
from todrl.data.normalize import normalize_text
from todrl.demo.goals import GoalCard, load_goals
from todrl.demo.store import ASPECTS, Conversation, RatingStore, StoredDialogue
from todrl.serve.policy import DialoguePolicy, SystemTurn

SCALE = [1, 2, 3, 4, 5]
VERDICTS = ["yes", "no"]


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="todrl.demo.app")
    parser.add_argument("--checkpoint", action="append", required=True)
    parser.add_argument("--ratings", required=True)
    parser.add_argument("--mode", default="blind")
    parser.add_argument("--data-dir")
    return parser.parse_args(argv)


@st.cache_resource(show_spinner="Loading the policy ...")
def policy(checkpoint: str, data_dir: str | None) -> DialoguePolicy:
    return DialoguePolicy(checkpoint, data_dir=data_dir)


@st.cache_data(show_spinner="Reading the goals ...")
def goals(data_dir: str | None) -> list[GoalCard]:
    return load_goals(data_dir or SAMPLE_PATH)


def pick_goal(store: RatingStore, args: argparse.Namespace) -> None:
    if "saved" in st.query_params:
        st.success("Dialogue saved. Thank you! Pick another goal to go on.")
    cards = goals(args.data_dir)
    index = st.selectbox("Goal", range(len(cards)), format_func=lambda i: f"{cards[i].dialogue_id}: {cards[i].summary()}")
    st.info(cards[index].text)
    if st.button("Start dialogue", type="primary"):
        dialogue_id = store.start(cards[index].dialogue_id, cards[index].text, args.checkpoint, args.mode)
        st.query_params.clear()
        st.query_params["dialogue"] = str(dialogue_id)
        st.rerun()


def save_rating(store: RatingStore, conversation_id: int, turn: int, aspect: str, key: str) -> None:
    store.rate(conversation_id, turn, aspect, st.session_state[key])


def save_verdict(store: RatingStore, conversation_id: int, key: str) -> None:
    store.judge(conversation_id, st.session_state[key] == "yes")


def describe(structured: dict[str, Any]) -> str:
    """The structured turn in the span grammar the policy writes, with what the database said."""
    found = []
    for domain, result in (structured.get("db") or {}).items():
        entity = result.get("entity") or {}
        first = entity.get("name") or entity.get("id") or entity.get("poi") or entity.get("event") or entity.get("location")
        found.append(f"[{domain}] {result.get('matches')} rows" + (f", first: {first}" if first else ""))
    lines = {
        "belief state": format_belief_state(structured.get("belief_state") or {}),
        "act": format_dialogue_act(structured.get("dialogue_act") or {}),
        "database": "; ".join(found),
        "delexicalized": structured.get("response_delex", ""),
        "unfilled": " ".join(structured.get("unfilled") or []),
    }
    return "\n".join(f"{name:<14}{text or '-'}" for name, text in lines.items())


def show_conversation(store: RatingStore, conversation: Conversation, label: str) -> None:
    st.subheader(label)
    for turn in conversation.turns:
        with st.chat_message("user"):
            st.text(turn.user)
        with st.chat_message("assistant"):
            if turn.response:
                st.text(turn.response)
            else:
                st.caption("(no reply span; the policy wrote:)")
                st.text(turn.structured.get("generation", ""))
            with st.expander("Belief state, act and database"):
                st.code(describe(turn.structured), language=None, wrap_lines=True)
            for column, aspect in zip(st.columns(len(ASPECTS)), ASPECTS):
                key = f"{aspect}-{conversation.id}-{turn.turn}"
                given = getattr(turn, aspect)
                column.radio(aspect.capitalize(), SCALE, index=None if given is None else SCALE.index(given), key=key,
                             horizontal=True, on_change=save_rating, args=(store, conversation.id, turn.turn, aspect, key))


def reply(store: RatingStore, dialogue: StoredDialogue, args: argparse.Namespace, user: str) -> None:
    """Each system of the dialogue answers `user`, continuing from its own last turn."""
    for conversation in dialogue.conversations:
        previous = None
        if conversation.turns:
            last = conversation.turns[-1]
            previous = SystemTurn.from_json(last.structured).as_turn(normalize_text(last.user))
        turn = policy(conversation.checkpoint, args.data_dir).respond(user, previous)
        store.add_turn(conversation.id, user, turn.response, turn.to_json())


def show_dialogue(store: RatingStore, dialogue: StoredDialogue, args: argparse.Namespace) -> None:
    st.markdown("**Your goal**")
    st.info(dialogue.goal)
    many = len(dialogue.conversations) > 1
    for column, conversation in zip(st.columns(len(dialogue.conversations)), dialogue.conversations):
        with column:
            show_conversation(store, conversation, f"System {conversation.position + 1}" if many else "System")
    if any(c.turns for c in dialogue.conversations):
        st.divider()
        for conversation in dialogue.conversations:
            key = f"success-{conversation.id}"
            given = None if conversation.success is None else VERDICTS.index("yes" if conversation.success else "no")
            label = f"Goal achieved with system {conversation.position + 1}?" if many else "Goal achieved?"
            st.radio(label, VERDICTS, index=given, key=key, horizontal=True, on_change=save_verdict,
                     args=(store, conversation.id, key))
        if st.button("Finish dialogue"):
            if any(c.success is None for c in dialogue.conversations):
                st.warning("Say whether the goal was achieved before finishing.")
            else:
                store.finish(dialogue.id)
                st.query_params.clear()
                st.query_params["saved"] = str(dialogue.id)
                st.rerun()
    user = st.chat_input("Your message")
    if user and user.strip():
        with st.spinner("The system is answering ..."):
            reply(store, dialogue, args, user.strip())
        st.rerun()


def main(argv: list[str]) -> None:
    args = options(argv)
    st.set_page_config(page_title="todrl: talk to a trained policy", layout="wide")
    st.title("Talk to a trained policy")
    store = RatingStore(Path(args.ratings))
    requested = st.query_params.get("dialogue", "")
    dialogue = store.dialogue(int(requested)) if requested.isdigit() else None
    if dialogue is None or dialogue.finished:
        pick_goal(store, args)
    else:
        show_dialogue(store, dialogue, args)


if __name__ == "__main__":
    main(sys.argv[1:])
