"""The fast training path: a hand-derived step for the MLP, optionally compiled.

`bnnames.training.loop.train_steps` stays the readable autograd reference; everything here is
tested against it and falls back to it for any model the fast step does not cover.
"""
