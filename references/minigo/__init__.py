"""Minigo (9x9 Go by self-play reinforcement learning): the rules engine and the SGF reader so far."""
