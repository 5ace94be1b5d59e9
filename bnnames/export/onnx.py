"""The network as an ONNX graph: input `context` (int64, (N, block_size)), output `logits`
(float32, (N, vocab)), N dynamic; metadata `vocab` (a JSON list, index 0 the boundary token ""),
`block_size` and `labels` (a JSON list: empty, labelled models come with issue 21).

The graph is written node by node with `onnx.helper` (no tracing, no torch exporter) in opset 13,
old enough for most runtimes (LayerNormalization, opset 17, is spelled out in its parts).
"""

from __future__ import annotations

import json

import numpy as np

from bnnames import __version__
from bnnames.errors import ConfigError
from bnnames.export.network import Network, Step

OPSET = 13
IR_VERSION = 7  # the IR of opset 13's release: readable by older runtimes


class _Graph:
    """Nodes and initialisers, each value named once."""

    def __init__(self, helper, numpy_helper) -> None:  # noqa: ANN001 (the onnx modules)
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes: list = []
        self.initializers: list = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def constant(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(value, name))
        return name

    def op(self, kind: str, inputs: list[str], output: str | None = None, **attrs: object) -> str:
        output = output or self.name(kind.lower())
        self.nodes.append(self.helper.make_node(kind, inputs, [output], **attrs))
        return output


def _layer_norm(graph: _Graph, x: str, step: Step) -> str:
    """(x - mean) / sqrt(var + eps) * weight + bias over the last axis, as opset 13 spells it."""
    mean = graph.op("ReduceMean", [x], axes=[-1], keepdims=1)
    centred = graph.op("Sub", [x, mean])
    var = graph.op("ReduceMean", [graph.op("Mul", [centred, centred])], axes=[-1], keepdims=1)
    eps = graph.constant("eps", np.array(step.eps, np.float32))
    normed = graph.op("Div", [centred, graph.op("Sqrt", [graph.op("Add", [var, eps])])])
    scaled = graph.op("Mul", [normed, graph.constant("ln_weight", step.arrays["weight"])])
    return graph.op("Add", [scaled, graph.constant("ln_bias", step.arrays["bias"])])


def onnx_bytes(network: Network) -> bytes:
    """The serialised ONNX model of `network`."""
    try:
        from onnx import TensorProto, checker, helper, numpy_helper
    except ImportError:
        raise ConfigError('--format onnx needs the onnx package: pip install "bnnames[export]"') from None
    graph = _Graph(helper, numpy_helper)
    x, positions, width = "context", network.block_size, 0
    for at, step in enumerate(network.steps):
        last = at == len(network.steps) - 1
        out = "logits" if last else None
        if step.kind == "gather":
            width = step.arrays["weight"].shape[1]
            x = graph.op("Gather", [graph.constant("embedding", step.arrays["weight"]), x], out)
        elif step.kind == "merge":
            positions, width = positions // step.size, width * step.size
            shape = [-1, width] if positions == 1 else [-1, positions, width]  # one position left: (N, C)
            x = graph.op("Reshape", [x, graph.constant("shape", np.array(shape, np.int64))], out)
        elif step.kind == "affine":
            width = step.arrays["weight"].shape[1]
            product = graph.op("MatMul", [x, graph.constant("weight", step.arrays["weight"])])
            x = graph.op("Add", [product, graph.constant("bias", step.arrays["bias"])], out)
        elif step.kind == "tanh":
            x = graph.op("Tanh", [x], out)
        elif step.kind == "layer_norm":
            x = graph.op("Identity", [_layer_norm(graph, x, step)], out)
        else:  # network_of makes only the kinds above
            raise ConfigError(f"cannot export a {step.kind} step to ONNX")
    inputs = [helper.make_tensor_value_info("context", TensorProto.INT64, ["N", network.block_size])]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(network.tokens)])]
    model = helper.make_model(
        helper.make_graph(graph.nodes, "bnnames", inputs, outputs, graph.initializers),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="bnnames",
        producer_version=__version__,
        ir_version=IR_VERSION,
    )
    helper.set_model_props(
        model,
        {
            "vocab": json.dumps(list(network.tokens), ensure_ascii=False),
            "block_size": str(network.block_size),
            "labels": json.dumps(list(network.labels), ensure_ascii=False),
        },
    )
    checker.check_model(model)
    return model.SerializeToString()
