"""trirl: Trust Region Inverse Reinforcement Learning on MuJoCo MJX."""

__version__ = "0.1.0"
