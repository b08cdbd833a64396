"""Reinforcement learning for the TOD policy: PPO and NLPO with token-level rewards."""
