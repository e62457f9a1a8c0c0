"""The report: report.md from sections, metrics.json, and the figures (PNG grids, curves).

Composable: the eval suite, the demo and anyone else hand `write_report` a list of Sections
(markdown + figure paths); each figure writer returns its path. Every figure carries its
provenance (config name, seed and a hash of the full config) in a footer line and in the PNG's
metadata, and report.md names them too, with config.json written beside it.

    prov = provenance(config, seed=config.eval.seed)
    grid = image_grid(f"{out}/t2i.png", [("a red circle.", [img1, img2])], "T2I samples", prov)
    write_report(out, [Section("Samples", "...", [grid])], metrics={...}, config=config)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import textwrap
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


@dataclasses.dataclass
class Section:
  """One report section: a title, markdown body and PNG paths (shown after the body)."""
  title: str
  body: str = ""
  figures: Sequence[str] = ()


def config_json(config) -> str:
  return config.to_json(sort_keys=True) if hasattr(config, "to_json") else json.dumps(
      config, sort_keys=True, default=str)


def provenance(config, seed: int) -> dict:
  """What every figure records: config name, seed, and a short hash of the full config."""
  text = config_json(config)
  name = getattr(config, "name", None) or (config.get("name") if isinstance(config, dict) else "")
  return {"config": name or "config", "seed": int(seed),
          "config_sha": hashlib.sha256(text.encode()).hexdigest()[:12]}


def _footer(prov: dict) -> str:
  return f"config {prov['config']} ({prov['config_sha']}) · seed {prov['seed']}"


def _save(fig, path: str, prov: dict, title: str) -> str:
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.text(0.01, 0.005, _footer(prov), fontsize=7, color="0.4", ha="left", va="bottom")
  fig.savefig(path, dpi=100, metadata={"Title": title, "Description": json.dumps(prov)})
  plt.close(fig)
  return path


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def mosaic(rows: Sequence[Sequence[np.ndarray]], pad: int = 2, fill: int = 255) -> np.ndarray:
  """Rows of [H, W, 3] uint8 images (any sizes) -> one [H', W', 3] uint8 image."""
  cell_h = max(im.shape[0] for row in rows for im in row)
  cell_w = max(im.shape[1] for row in rows for im in row)
  cols = max(len(row) for row in rows)
  out = np.full((len(rows) * (cell_h + pad) + pad, cols * (cell_w + pad) + pad, 3), fill, np.uint8)
  for r, row in enumerate(rows):
    for c, im in enumerate(row):
      top, left = pad + r * (cell_h + pad), pad + c * (cell_w + pad)
      out[top:top + im.shape[0], left:left + im.shape[1]] = im
  return out


def image_grid(path: str, rows: Sequence[tuple[str, Sequence[np.ndarray]]], title: str,
               prov: dict, column_titles: Sequence[str] = (), scale: float = 1.5) -> str:
  """One labelled row per (label, images): prompt -> samples, or source -> edit -> target."""
  rows = [(label, list(images)) for label, images in rows if len(images)]
  if not rows:
    rows = [("(no samples)", [np.full((8, 8, 3), 255, np.uint8)])]
  image = mosaic([images for _, images in rows])
  # Inches: a label column, the mosaic at `scale` screen pixels per image pixel, title/footer.
  label_w, top, bottom = 2.8, 0.45 + 0.2 * bool(column_titles), 0.25
  img_w, img_h = image.shape[1] * scale / 100, image.shape[0] * scale / 100
  fig_w, fig_h = label_w + img_w + 0.1, top + img_h + bottom
  fig = plt.figure(figsize=(fig_w, fig_h))
  ax = fig.add_axes((label_w / fig_w, bottom / fig_h, img_w / fig_w, img_h / fig_h))
  ax.imshow(image, interpolation="nearest")
  ax.set_axis_off()
  row_h = image.shape[0] / len(rows)
  for r, (label, _) in enumerate(rows):
    ax.text(-6, (r + 0.5) * row_h, textwrap.fill(label, 40), ha="right", va="center", fontsize=7)
  cell_w = image.shape[1] / max(len(images) for _, images in rows)
  for c, name in enumerate(column_titles):
    ax.text((c + 0.5) * cell_w, -3, name, ha="center", va="bottom", fontsize=8)
  fig.text(0.5, 1 - 0.12 / fig_h, title, ha="center", va="top", fontsize=10)
  return _save(fig, path, prov, title)


def plot_curves(path: str, curves: dict[str, Sequence[tuple[float, float]]], title: str,
                prov: dict, max_panels: int = 12) -> str:
  """One small panel per tag (step on x): training losses, rewards, eval scores."""
  tags = [t for t in curves if len(curves[t])][:max_panels] or ["(no curves)"]
  cols = min(3, len(tags))
  rows = (len(tags) + cols - 1) // cols
  fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows + 0.6), squeeze=False)
  for ax, tag in zip(axes.flat, tags):
    points = np.asarray(curves.get(tag, []), np.float64).reshape(-1, 2)
    if len(points):
      ax.plot(points[:, 0], points[:, 1], lw=1.2)
    ax.set_title(tag, fontsize=9)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
  for ax in list(axes.flat)[len(tags):]:
    ax.set_axis_off()
  fig.suptitle(title, fontsize=11)
  fig.tight_layout(rect=(0, 0.03, 1, 0.97))
  return _save(fig, path, prov, title)


def bar_chart(path: str, values: dict[str, float], title: str, prov: dict,
              ylim: tuple[float, float] | None = None) -> str:
  """Named scores as bars (e.g. GenEval per task)."""
  fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(values), 3.2))
  ax.bar(list(values), list(values.values()), color="#4a7ab8")
  if ylim:
    ax.set_ylim(*ylim)
  ax.tick_params(axis="x", labelrotation=30, labelsize=8)
  ax.set_title(title, fontsize=10)
  fig.tight_layout(rect=(0, 0.04, 1, 1))
  return _save(fig, path, prov, title)


# ---------------------------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------------------------

def _fmt(value, precision: int) -> str:
  if isinstance(value, float):
    return f"{value:.{precision}f}"
  return str(value)


def markdown_table(rows: Sequence[dict], columns: Sequence[str] | None = None,
                   precision: int = 3) -> str:
  """List of dicts -> a markdown table (columns: the given ones, else the first row's keys)."""
  if not rows:
    return "_(no rows)_"
  columns = list(columns or rows[0])
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  lines += ["| " + " | ".join(_fmt(r.get(c, ""), precision) for c in columns) + " |" for r in rows]
  return "\n".join(lines)


def write_report(out_dir: str, sections: Sequence[Section], *, config=None, seed: int = 0,
                 metrics: dict | None = None, title: str = "arm_jax report") -> str:
  """Writes report.md (+ metrics.json and config.json when given) in out_dir; returns its path."""
  os.makedirs(out_dir, exist_ok=True)
  lines = [f"# {title}", ""]
  if config is not None:
    prov = provenance(config, seed)
    lines += [f"Config `{prov['config']}` (sha256 {prov['config_sha']}, full text in "
              f"config.json), seed {prov['seed']}. Every figure below came from this run.", ""]
    with open(os.path.join(out_dir, "config.json"), "w") as f:
      f.write(config_json(config))
  for section in sections:
    lines += [f"## {section.title}", ""]
    if section.body:
      lines += [section.body.rstrip(), ""]
    for figure in section.figures:
      rel = os.path.relpath(figure, out_dir)
      lines += [f"![{os.path.splitext(os.path.basename(rel))[0]}]({rel})", ""]
  path = os.path.join(out_dir, "report.md")
  with open(path, "w") as f:
    f.write("\n".join(lines))
  if metrics is not None:
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
      json.dump(metrics, f, indent=1, sort_keys=True, default=float)
  return path
