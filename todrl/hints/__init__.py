"""LLM replies guided by a policy's dialogue acts (seed 004, Sec. 6.2): ``python -m todrl.hints``.

A small todrl policy tracks the state and chooses the act; an LLM behind any OpenAI-compatible endpoint writes
the reply from a few-shot prompt with the act as its hint (`prompt`, `shots`). Requests are concurrent, retried
and cached on disk (`todrl.llm`).
"""
