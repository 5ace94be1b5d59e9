"""The network as one self-contained web page: the template `page.html`, the sampler `page.js`
and the weights (float32, base64) inlined, so it works offline and from file://.

The page's sampler (see page.js) runs the same folded network in float64 JavaScript and draws
names conditioned on its form's constraints, exactly where the contexts fit a table.
"""

from __future__ import annotations

import base64
import html
import json
from importlib.resources import files

from bnnames import __version__
from bnnames.errors import ConfigError
from bnnames.export.network import Network

PAGE_MAX_PARAMETERS = 4_000_000  # 16 MB of float32 weights (about 21 MB of page): beyond, a phone struggles


def page_html(network: Network, title: str) -> str:
    """The page for `network`, titled `title`."""
    if network.parameters > PAGE_MAX_PARAMETERS:
        raise ConfigError(
            f"this model has {network.parameters:,} parameters ({4 * network.parameters / 1e6:.1f} MB as float32), "
            f"too many for a web page (at most {PAGE_MAX_PARAMETERS:,}): export it as --format onnx instead"
        )
    folder = files("bnnames.export")
    template = folder.joinpath("page.html").read_text(encoding="utf-8")
    script = folder.joinpath("page.js").read_text(encoding="utf-8")
    model = json.dumps(_model_json(network), ensure_ascii=False).replace("</", "<\\/")  # never ends the <script>
    replacements = {
        "{{TITLE}}": html.escape(title),
        "{{VERSION}}": html.escape(__version__),
        "{{PARAMETERS}}": f"{network.parameters:,}",
        "{{MODEL}}": model,
        "{{SCRIPT}}": script,
    }
    for key, value in replacements.items():  # SCRIPT and MODEL last: nothing in them is replaced again
        template = template.replace(key, value)
    return template


def _model_json(network: Network) -> dict[str, object]:
    steps = []
    for step in network.steps:
        entry: dict[str, object] = {"kind": step.kind, "size": step.size, "eps": step.eps}
        entry["arrays"] = {name: _base64(a) for name, a in step.arrays.items()}
        if "weight" in step.arrays:
            entry["shape"] = list(step.arrays["weight"].shape)
        steps.append(entry)
    return {
        "tokens": list(network.tokens),
        "block_size": network.block_size,
        "labels": list(network.labels),
        "steps": steps,
    }


def _base64(array) -> str:  # noqa: ANN001 (a float32 numpy array)
    return base64.b64encode(array.astype("<f4").tobytes()).decode("ascii")
