r"""LaTeX exports of a report (`rgbt-bench report --latex`): booktabs `tabular` fragments for a paper.

Each file is one `\begin{tabular} ... \end{tabular}` (after `%` comment lines saying what it holds), to
`\input` inside the paper's own `table` environment; it needs `\usepackage{booktabs}`. Values are in %,
with one decimal as papers print them; the best value of each column is bold (highest, lowest for mCE).
- per_class.tex: IoU per class and mIoU per model, clean (and the --per-class setting below it);
- robustness.tex: clean mIoU, mean mIoU over severities per corruption, mean corrupted mIoU, RR and mCE;
- day_night.tex: clean mIoU on all, day and night images;
- summary.tex: clean and mean corrupted mIoU with the bootstrap CI, RR, mCE and the worst case.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional, Sequence

import pandas as pd

from ..atomic import atomic_write_text
from .load import CLEAN
from .notation import format_setting

DIGITS = 1
_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_PATTERN = re.compile("|".join(re.escape(k) for k in _SPECIAL))


def escape(text: object) -> str:
    """`text` with LaTeX's special characters escaped."""
    return _PATTERN.sub(lambda m: _SPECIAL[m.group()], str(text))


def number(value: Optional[float], bold: bool = False) -> str:
    """A percent value with DIGITS decimals ('--' when undefined), bold when asked."""
    if value is None or not math.isfinite(value):
        return "--"
    text = f"{value:.{DIGITS}f}"
    return rf"\textbf{{{text}}}" if bold else text


def _best(values: Sequence[float], lower_is_better: bool = False) -> set[int]:
    """Rows holding the best value as printed (ties all count); none when fewer than two values are defined."""
    printed = [round(v, DIGITS) if v is not None and math.isfinite(v) else None for v in values]
    defined = [v for v in printed if v is not None]
    if len(defined) < 2:
        return set()
    best = min(defined) if lower_is_better else max(defined)
    return {i for i, v in enumerate(printed) if v == best}


def _columns(frame: pd.DataFrame, columns: Sequence[str], lower: Sequence[str] = ()) -> list[list[str]]:
    """Cells of `columns` per row of `frame`, the best of each column bold."""
    best = {c: _best(frame[c].tolist(), c in lower) for c in columns}
    return [[number(row[c], i in best[c]) for c in columns] for i, (_, row) in enumerate(frame.iterrows())]


def tabular(align: str, header: Sequence[str], blocks: Sequence[tuple[Optional[str], Sequence[Sequence[str]]]],
            comment: str) -> str:
    r"""A booktabs tabular: `header` lines (already ending in \\ or being rules), then each block of rows
    (with an italic label row when the block has a label) separated by \midrule."""
    ncols = len(align)
    lines = [f"% {line}" for line in comment.splitlines()] + ["% Requires \\usepackage{booktabs}.",
                                                              f"\\begin{{tabular}}{{{align}}}", r"\toprule",
                                                              *header]
    for label, rows in blocks:
        lines.append(r"\midrule")
        if label is not None:
            lines.append(rf"\multicolumn{{{ncols}}}{{l}}{{\emph{{{escape(label)}}}}} \\")
        lines += [" & ".join(row) + r" \\" for row in rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}"]) + "\n"


def per_class_latex(per_class: pd.DataFrame, miou: pd.DataFrame, class_names: Sequence[str],
                    settings: Sequence[tuple[str, int]], context: str) -> str:
    """Paper-style table: one row per model, IoU per class and mIoU; one block per setting."""
    n = len(class_names)
    header = [rf" & \multicolumn{{{n}}}{{c}}{{IoU (\%)}} & \\", rf"\cmidrule(lr){{2-{n + 1}}}",
              "Model & " + " & ".join(escape(c) for c in class_names) + r" & mIoU (\%) \\"]
    blocks = []
    scores = miou.set_index(["model", "corruption", "severity"])["miou"]
    for corruption, severity in settings:
        rows = per_class[(per_class["corruption"] == corruption) & (per_class["severity"] == severity)].copy()
        rows["__miou"] = [scores.get((m, corruption, severity), math.nan) for m in rows["model"]]
        cells = _columns(rows, [*class_names, "__miou"])
        blocks.append((format_setting(corruption, severity) if len(settings) > 1 else None,
                       [[escape(m), *c] for m, c in zip(rows["model"], cells)]))
    return tabular("l" + "r" * (n + 1), header, blocks,
                   f"IoU per class and mIoU (%), {context}" + ("" if len(settings) > 1 else ", clean images"))


def robustness_latex(summary: pd.DataFrame, per_corruption: pd.DataFrame, corruptions: Sequence[str],
                     context: str, reference: str) -> str:
    """One row per model: clean mIoU, mean mIoU over severities per corruption, mean corrupted, RR, mCE."""
    k = len(corruptions)
    wide = per_corruption.pivot(index="model", columns="corruption", values="mean_miou")
    frame = summary.set_index("model").join(wide.reindex(columns=list(corruptions)))
    frame = frame.reindex(summary["model"]).reset_index()
    header = [rf" & & \multicolumn{{{k}}}{{c}}{{mean mIoU over severities (\%)}} & & & \\",
              rf"\cmidrule(lr){{3-{k + 2}}}",
              r"Model & Clean (\%) & " + " & ".join(escape(c) for c in corruptions)
              + r" & Mean (\%) & RR (\%) & mCE (\%) \\"]
    cells = _columns(frame, ["clean_miou", *corruptions, "mean_corrupted_miou", "rr", "mce"], lower=["mce"])
    return tabular("l" + "r" * (k + 4), header, [(None, [[escape(m), *c] for m, c in zip(frame["model"], cells)])],
                   f"Robustness (%), {context}; mCE against {reference} (100)")


def day_night_latex(day_night: pd.DataFrame, context: str) -> str:
    """One row per model: clean mIoU over all, day-only and night-only images."""
    clean = day_night[day_night["corruption"] == CLEAN]
    first = clean.iloc[0] if len(clean) else None
    counts = "" if first is None else f" ({int(first['images_day'])} day, {int(first['images_night'])} night images)"
    header = [r" & \multicolumn{3}{c}{mIoU (\%), clean} \\", r"\cmidrule(lr){2-4}",
              r"Model & All & Day & Night \\"]
    cells = _columns(clean, ["miou", "miou_day", "miou_night"])
    return tabular("lrrr", header, [(None, [[escape(m), *c] for m, c in zip(clean["model"], cells)])],
                   f"mIoU (%) on day and night images{counts}, {context}")


def summary_latex(summary: pd.DataFrame, context: str, confidence: float, reference: str) -> str:
    """One row per model: clean, mean corrupted (with its CI when bootstrapped), RR, mCE, worst case."""
    with_ci = "mean_corrupted_low" in summary.columns
    cells = _columns(summary, ["clean_miou", "mean_corrupted_miou", "rr", "mce", "worst_miou"], lower=["mce"])
    rows = []
    for (_, row), c in zip(summary.iterrows(), cells):
        ci = [f"[{number(row['mean_corrupted_low'])}, {number(row['mean_corrupted_high'])}]"] if with_ci else []
        rows.append([escape(row["model"]), c[0], c[1], *ci, c[2], c[3], c[4], escape(row["worst_setting"] or "--")])
    ci_head = [f"{100 * confidence:g}\\% CI (\\%)"] if with_ci else []
    header = [" & ".join(["Model", r"Clean (\%)", r"Mean corrupted (\%)", *ci_head, r"RR (\%)", r"mCE (\%)",
                          r"Worst (\%)", "Worst at"]) + r" \\"]
    return tabular("l" + "r" * (5 + with_ci) + "l", header, [(None, rows)],
                   f"Robustness summary (%), {context}; mCE against {reference} (100)")


def write_latex(out_dir: Path, texts: dict[str, str]) -> list[Path]:
    """Write `out_dir`/NAME.tex for each (NAME, text), each atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in texts.items():
        path = out_dir / f"{name}.tex"
        atomic_write_text(path, text)
        paths.append(path)
    return paths
