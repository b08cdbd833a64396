"""Synthetic labelled dialogues (seeds 003 and 001): ``python -m todrl.synth schema|simulate``.

Labels come from the plan, never from the text: a scenario sampled from the MultiWOZ schema and database
(`scenario`) becomes a turn-by-turn logic flow (`flow`: rules, or an LLM in `llm`), whose belief states, acts and
requests are accumulated as the flow says; a realizer (`templates`, or an LLM) only writes the words. Deterministic
validators (`validate`) check every turn, a failing turn is regenerated, a dialogue that keeps failing is dropped
and counted by reason; dialogues are appended to resumable JSONL (`corpus`), which `--dataset synthetic` reads.
"""
