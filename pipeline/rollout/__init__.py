"""Running policies in the simulation: the policies (experts, random, learned, expert
relabelling), worker processes that run whole episodes, per-episode metrics, recording a
demonstration, filming an episode, and finding a trained policy to roll out."""
