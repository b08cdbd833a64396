"""The human-evaluation app of seed 004 (Sec. 6.3): chat, rate, compare two checkpoints (`python -m todrl.demo`)."""
