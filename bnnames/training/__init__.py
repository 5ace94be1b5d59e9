"""How a model is optimised: the readable autograd loop (`loop`), the fast hand-derived step
(`fast/`), the choice between them (`engines`), and when a run has blown up (`divergence`).

The train verb itself (data, resume, periodic saves, final losses) is `bnnames.train`.
"""
