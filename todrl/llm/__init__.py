"""Chat completions from any OpenAI-compatible endpoint, shared by every LLM feature (`todrl.hints`, `todrl.synth`):
concurrent, retried requests (`client`) answered from an on-disk cache when asked before (`cache`)."""
