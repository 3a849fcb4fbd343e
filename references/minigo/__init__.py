"""Minigo (9x9 Go by self-play reinforcement learning): rules, SGF, network, search, self-play."""
