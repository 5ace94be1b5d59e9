"""Exports of a trained model for use outside Python: an ONNX graph and a self-contained web page.

Both start from the same description of the folded eval-mode network (`network.Network`), so a
model either exports to both or to neither, with one message saying why.
"""
