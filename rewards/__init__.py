"""Token-level rewards for end-to-end task-oriented dialogue (seed 004, Eq. 2-4).

Pure Python: importing this package pulls in neither torch nor transformers,
so any trainer can use it.
"""

from rewards.core import INFORMING_ACTS, REWARDS, RewardConfig
from rewards.gold import Gold
from rewards.progress import RewardTracker
from rewards.score import (
    batch_token_rewards,
    generation_reward,
    reward_parts,
    sequence_rewards,
    tod_reward,
    token_pieces,
    token_rewards,
    understanding_reward,
)
from rewards.spans import (
    Target,
    Vocabulary,
    build_target,
    format_belief_state,
    format_dialogue_act,
    parse_belief_state,
    parse_dialogue_act,
    parse_target,
    response_slots,
)
from rewards.trl import TODRewardFunction

__all__ = [
    "INFORMING_ACTS",
    "Gold",
    "REWARDS",
    "RewardConfig",
    "RewardTracker",
    "TODRewardFunction",
    "Target",
    "Vocabulary",
    "batch_token_rewards",
    "build_target",
    "format_belief_state",
    "format_dialogue_act",
    "generation_reward",
    "parse_belief_state",
    "parse_dialogue_act",
    "parse_target",
    "response_slots",
    "reward_parts",
    "sequence_rewards",
    "tod_reward",
    "token_pieces",
    "token_rewards",
    "understanding_reward",
]
