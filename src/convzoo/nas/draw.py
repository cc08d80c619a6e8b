"""A PNG of a NASNet cell's graph (matplotlib only): inputs h_i and h_{i-1} on the left, one column per block
(its two operations and their combination), the concatenated output on the right."""

from __future__ import annotations

from pathlib import Path

from convzoo.models.nasnet_genotype import OPERATIONS, CellGenotype


def cell_layout(cell: CellGenotype) -> tuple[dict[str, tuple[float, float]], list[tuple[str, str]]]:
    """Node positions {name: (x, y)} and edges (source, target) of ``cell``: states "h_i", "h_i-1", "block k",
    operation nodes "k.left"/"k.right", and "output"."""
    states = ["h_i", "h_i-1"] + [f"block {k}" for k in range(len(cell.blocks))]
    nodes = {"h_i": (0.0, 1.0), "h_i-1": (0.0, -1.0)}
    edges = []
    for k, block in enumerate(cell.blocks):
        x = 2.0 * k + 1.5
        for side, (_, state), y in zip(("left", "right"), block, (1.0, -1.0)):
            nodes[f"{k}.{side}"] = (x, y + (0.3 if k % 2 else -0.3))
            edges += [(states[state], f"{k}.{side}"), (f"{k}.{side}", f"block {k}")]
        nodes[f"block {k}"] = (x + 0.9, 0.0 + (0.6 if k % 2 else -0.6))
    nodes["output"] = (2.0 * len(cell.blocks) + 1.5, 0.0)
    edges += [(states[i], "output") for i in cell.concat]
    return nodes, edges


def draw_cell(cell: CellGenotype, path: str | Path, title: str = "") -> Path:
    """Draw ``cell`` into the PNG file ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nodes, edges = cell_layout(cell)
    labels = {name: name for name in nodes}
    for k, block in enumerate(cell.blocks):
        for side, (op, _) in zip(("left", "right"), block):
            labels[f"{k}.{side}"] = op
        labels[f"block {k}"] = f"block {k}\n{'concat' if cell.combination(k) == 'concat' else 'add'}"
    labels["output"] = "concat\n(output)"
    fig, ax = plt.subplots(figsize=(2.0 + 1.6 * len(cell.blocks), 4.0))
    for source, target in edges:
        (x0, y0), (x1, y1) = nodes[source], nodes[target]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops={"arrowstyle": "->", "color": "0.45", "shrinkA": 14, "shrinkB": 14, "lw": 1})
    for name, (x, y) in nodes.items():
        op = "." in name
        color = "#cfe2f3" if op else ("#f4cccc" if name.startswith("h_") or name == "output" else "#fff2cc")
        ax.text(x, y, labels[name], ha="center", va="center", fontsize=7,
                bbox={"boxstyle": "round,pad=0.3", "fc": color, "ec": "0.3"})
    ax.set_xlim(-0.8, max(x for x, _ in nodes.values()) + 0.8)
    ax.set_ylim(-1.8, 1.8)
    ax.axis("off")
    ops = sorted({op for block in cell.blocks for op, _ in block})
    legend = [f"{op}: {OPERATIONS[op]}" for op in ops]
    lines = ["; ".join(legend[i:i + 3]) for i in range(0, len(legend), 3)]
    ax.set_title("\n".join(([title] if title else []) + lines), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
