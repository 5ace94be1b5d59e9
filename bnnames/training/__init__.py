"""How a model is optimised: the readable autograd loop (`loop`), the fast hand-derived step
(`fast/`), the choice between them (`engines`), and when a run has blown up (`divergence`).

The train verb's run (data, resume, final losses) is `run`, and what it does between
segments of steps (validation, previews, diagnostics, TensorBoard, saves) is `hooks`.
"""
