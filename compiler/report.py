"""`dgc report`: where a compiled model's flash, RAM and MACs go, as JSON and as one HTML page.

`build(res)` turns a CompileResult into the report dict (schema below, stable: keys are only
ever added, `schema` changes when one changes meaning); `render_html(report)` draws it as one
self-contained HTML file (inline SVG from matplotlib, no script, no network).

Schema "dgc-report/1":
  schema, dgc_version, model (C name), target {name, triple, cpu, part, ram_limit, flash_limit}
  totals (bytes unless said):
    flash        code + read-only data + initialised data of the object (= text + rodata + data)
    text, rodata, data, bss   the object's allocated sections, measured from the object file
    weight_bytes the constant tensors of the compiled graph (as stored: int8 weights 1 byte each)
    ram          arena + stack (+ data + bss, 0 for generated code)
    arena        <NAME>_ARENA_SIZE; arena_lower_bound: most buffer bytes live at one op
    stack        <NAME>_STACK_SIZE, the computed bound of <name>_run
    macs         multiply-accumulates of convolutions and matrix products
    fits_ram, fits_flash   against the target's default budget (null when it has none)
  stack {entry, bound, deepest_path, frames}
  layers [ per ONNX node of the compiled graph, in execution order:
    name, op, inputs/outputs [{name, shape, dtype}], macs, weight_bytes (its constant inputs),
    activation_bytes (its outputs), fused_into (node whose loops compute it, or null),
    buffers [{offset, size, start, end}] (arena buffers it allocates; start/end index op_nodes) ]
  op_nodes   ONNX node of each op position in the model function (lifetimes index it)
"""

from __future__ import annotations

import html
import importlib.metadata
import io

import numpy as np

from .errors import UsageError
from .macs import node_macs, shapes_of

SCHEMA = "dgc-report/1"


def _version() -> str:
    try:
        return importlib.metadata.version("dgc")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _tensor(name, shapes, dtypes) -> dict:
    dt = dtypes.get(name)
    return {"name": name, "shape": list(shapes.get(name, ())), "dtype": dt}


def _nbytes(shape, dtype) -> int:
    return int(np.prod(shape, dtype=np.int64)) * (np.dtype(dtype).itemsize if dtype else 0)


def build(res) -> dict:
    """The report of a CompileResult (compiled to an object)."""
    if res.object is None or res.loaded is None:
        raise UsageError("a report needs a complete compile (no --stop-after)")
    lm = res.loaded
    t, g = res.target, lm.model.graph
    shapes = {**shapes_of(lm.model), **{k: tuple(v) for k, v in lm.shapes.items()},
              **{k: tuple(np.shape(v)) for k, v in lm.consts.items()}}
    dtypes = {**{k: np.dtype(v).name for k, v in lm.dtypes.items()},
              **{k: np.asarray(v).dtype.name for k, v in lm.consts.items()}}
    consts = set(lm.consts)
    by_node: dict[str, list] = {}
    for b in res.buffers:
        by_node.setdefault(b.node, []).append({"offset": b.offset, "size": b.size, "start": b.start, "end": b.end})
    layers = []
    for n in g.node:
        name = n.name or n.output[0]
        op = n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
        ins = [i for i in n.input if i]
        layers.append({
            "name": name, "op": op,
            "inputs": [_tensor(i, shapes, dtypes) for i in ins],
            "outputs": [_tensor(o, shapes, dtypes) for o in n.output if o],
            "macs": node_macs(n, shapes),
            "weight_bytes": sum(_nbytes(shapes.get(i, ()), dtypes.get(i)) for i in ins if i in consts),
            "activation_bytes": sum(_nbytes(shapes.get(o, ()), dtypes.get(o)) for o in n.output if o),
            "fused_into": res.fused_into.get(name),
            "buffers": by_node.get(name, []),
        })
    fp = res.footprint
    used = {i for n in g.node for i in n.input}
    weights = sum(int(np.asarray(v).nbytes) for k, v in lm.consts.items() if k in used)
    return {
        "schema": SCHEMA,
        "dgc_version": _version(),
        "model": res.name,
        "target": {"name": t.name, "triple": t.triple, "cpu": t.cpu, "part": t.part or None,
                   "ram_limit": t.ram_bytes or None, "flash_limit": t.flash_bytes or None},
        "totals": {
            "flash": fp["flash"], "text": fp["text"], "rodata": fp["rodata"], "data": fp["data"], "bss": fp["bss"],
            "weight_bytes": weights, "ram": fp["ram"], "arena": res.arena_size,
            "arena_lower_bound": res.arena_lower_bound, "stack": res.spec.stack_size,
            "macs": sum(layer["macs"] for layer in layers),
            "fits_ram": fp["ram"] <= t.ram_bytes if t.ram_bytes else None,
            "fits_flash": fp["flash"] <= t.flash_bytes if t.flash_bytes else None,
        },
        "stack": res.stack.to_json(),
        "layers": layers,
        "op_nodes": list(res.op_nodes),
    }


# ---- HTML ----------------------------------------------------------------------------------------

def _plt():
    try:
        import matplotlib
    except ImportError:
        raise UsageError("the HTML report draws its plots with matplotlib",
                         hint="pip install 'dgc[report]' (or write --json only)") from None
    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.hashsalt": "dgc", "svg.fonttype": "none", "font.size": 9})
    import matplotlib.pyplot as plt

    return plt


def _svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    fig.clf()
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _occupancy(plt, rep) -> str:
    """Arena occupancy: each buffer a rectangle over its lifetime (x) at its offset (y)."""
    layers = [layer for layer in rep["layers"] if layer["buffers"]]
    fig, ax = plt.subplots(figsize=(10, 4.2))
    cmap = plt.get_cmap("tab20")
    top = max([rep["totals"]["arena"]] + [1]) / 1024
    for k, layer in enumerate(layers):
        for b in layer["buffers"]:
            ax.broken_barh([(b["start"], b["end"] - b["start"] + 1)], (b["offset"] / 1024, b["size"] / 1024),
                           facecolors=cmap(k % 20), edgecolors="black", linewidth=0.3)
            if b["size"] / 1024 >= 0.06 * top:  # name the big ones on their rectangle
                ax.text(b["start"] + 0.5, (b["offset"] + b["size"] / 2) / 1024, layer["name"], fontsize=7,
                        va="center", clip_on=True)
    ops = rep["op_nodes"]
    spans = [(b["start"], b["end"]) for layer in layers for b in layer["buffers"]]
    lo = min((a for a, _ in spans), default=0)
    hi = max((b for _, b in spans), default=len(ops)) + 1
    ax.axhline(top, color="crimson", linewidth=1)
    ax.text(lo, top, f" arena {rep['totals']['arena']:,} B (lower bound {rep['totals']['arena_lower_bound']:,} B)",
            va="bottom", color="crimson")
    ticks = _ticks(ops, lo, hi)
    ax.set_xticks([p for p, _ in ticks], [n for _, n in ticks], rotation=60, ha="right", fontsize=7)
    ax.set_xlim(lo, hi)
    ax.set_ylim(0, top * 1.12)
    ax.set_xlabel("op sequence (ticks: where each ONNX node's ops begin)")
    ax.set_ylabel("arena offset (KiB)")
    ax.set_title("Arena occupancy: which tensor sits where, over time")
    return _svg(fig)


def _ticks(ops: list[str], lo: int, hi: int, most: int = 40) -> list[tuple[int, str]]:
    """A tick where each ONNX node's ops begin within [lo, hi) (hoisted constants lie before)."""
    firsts, seen = [], set()
    for p in range(lo, min(hi, len(ops))):
        n = ops[p]
        if n and n not in seen and n != "-":
            seen.add(n)
            firsts.append((p, n))
    step = max(1, -(-len(firsts) // most))
    return firsts[::step]


def _bars(plt, rep) -> str:
    """Per layer: MACs, and weight / activation bytes."""
    layers = rep["layers"]
    names = [layer["name"] for layer in layers]
    x = np.arange(len(layers))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(10, 5.4), sharex=True)
    a1.bar(x, [layer["macs"] / 1e6 for layer in layers], color="#3b7dd8")
    a1.set_ylabel("MMACs")
    a1.set_title("Per layer: multiply-accumulates and bytes")
    w = [layer["weight_bytes"] / 1024 for layer in layers]
    a = [layer["activation_bytes"] / 1024 for layer in layers]
    a2.bar(x - 0.2, w, width=0.4, label="weights (flash)", color="#e8913a")
    a2.bar(x + 0.2, a, width=0.4, label="output activations", color="#4aa564")
    a2.set_ylabel("KiB")
    a2.legend(loc="upper right")
    step = max(1, -(-len(names) // 60))
    a2.set_xticks(x[::step], names[::step], rotation=60, ha="right", fontsize=7)
    return _svg(fig)


def _fmt(n) -> str:
    return f"{n:,}" if isinstance(n, int) else html.escape(str(n))


def render_html(rep: dict) -> str:
    plt = _plt()
    t, tot = rep["target"], rep["totals"]

    def fits(v):
        return "n/a" if v is None else ("yes" if v else "<b style='color:crimson'>NO</b>")

    summary = [
        ("flash (measured from the object)", f"{_fmt(tot['flash'])} B = code {_fmt(tot['text'])} + read-only data "
                                             f"{_fmt(tot['rodata'])} + data {_fmt(tot['data'])}"),
        ("weights in the compiled graph", f"{_fmt(tot['weight_bytes'])} B"),
        ("RAM", f"{_fmt(tot['ram'])} B = arena {_fmt(tot['arena'])} + stack {_fmt(tot['stack'])}"),
        ("arena lower bound", f"{_fmt(tot['arena_lower_bound'])} B (most buffer bytes live at one op)"),
        ("stack, deepest path", html.escape(" → ".join(rep["stack"]["deepest_path"]))),
        ("MACs", _fmt(tot["macs"])),
        (f"fits {html.escape(t['part'] or t['name'])}", f"RAM {fits(tot['fits_ram'])}, flash {fits(tot['fits_flash'])}"),
    ]
    rows = []
    for layer in rep["layers"]:
        def ts(ts_):
            return "<br>".join(f"{html.escape(x['name'])} {x['dtype'] or ''}{x['shape']}" for x in ts_)
        bufs = "<br>".join(f"@{b['offset']:,} +{b['size']:,} [{b['start']}..{b['end']}]" for b in layer["buffers"])
        rows.append(f"<tr><td>{html.escape(layer['name'])}</td><td>{html.escape(layer['op'])}</td>"
                    f"<td>{ts(layer['inputs'])}</td><td>{ts(layer['outputs'])}</td>"
                    f"<td class=n>{_fmt(layer['macs'])}</td><td class=n>{_fmt(layer['weight_bytes'])}</td>"
                    f"<td class=n>{_fmt(layer['activation_bytes'])}</td><td>{bufs}</td>"
                    f"<td>{html.escape(layer['fused_into'] or '')}</td></tr>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>dgc report: {html.escape(rep['model'])} on {html.escape(t['name'])}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; vertical-align: top; }}
td.n {{ text-align: right; font-variant-numeric: tabular-nums; }}
th {{ background: #f0f0f0; }}
svg {{ max-width: 100%; height: auto; }}
</style></head><body>
<h1>{html.escape(rep['model'])} on {html.escape(t['name'])}</h1>
<p>{html.escape(t['triple'])}, -mcpu={html.escape(t['cpu'])}; dgc {html.escape(rep['dgc_version'])}</p>
<table>{''.join(f'<tr><th>{k}</th><td>{v}</td></tr>' for k, v in summary)}</table>
<h2>Arena occupancy</h2>
{_occupancy(plt, rep)}
<h2>Layers</h2>
{_bars(plt, rep)}
<table><tr><th>node</th><th>op</th><th>inputs</th><th>outputs</th><th>MACs</th><th>weight B</th>
<th>activation B</th><th>arena buffers @offset +bytes [first..last op]</th><th>fused into</th></tr>
{''.join(rows)}
</table>
</body></html>
"""
    plt.close("all")
    return page
