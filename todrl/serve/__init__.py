"""Talk to a trained policy over HTTP: an OpenAI-compatible chat server (`python -m todrl.serve`)."""
