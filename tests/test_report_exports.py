"""What a report writes for people and programs: units in every table, Markdown that pastes, JSON that pandas
reads back, LaTeX fragments that compile, a self-contained index.html, provenance, stale files, determinism."""
import base64
import doctest
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from test_report import HAND, write_results

from rgbt_bench.cli import main
from rgbt_bench.report import notation
from rgbt_bench.report.build import build_report
from rgbt_bench.report.leaderboard import build_leaderboard, write_leaderboard
from rgbt_bench.report.load import load_results
from rgbt_bench.report.provenance import mixed_suites_note, suites

SHA = {"B": "b" * 64, "A": "a" * 64}
RUN = {"rgbt_bench_version": "9.9.9", "torch_version": "2.13.0+cpu", "git": {"commit": "c0ffee", "dirty": False},
       "device_name": "x86_64 CPU, 1 threads",
       "suite": {"name": "hand", "entries": [{"label": "noise", "corruption": "noise", "severities": [1, 2]},
                                             {"label": "blur", "corruption": "blur", "severities": [1, 2]}]}}


def record(model):
    return {"checkpoint_sha256": SHA[model], "dataset_fingerprint": "f" * 64, "rgbt_bench_version": "9.9.9",
            "device_name": "x86_64 CPU, 1 threads"}


def hand_results(path, **kwargs):
    """HAND with day/night flags and full provenance in the cells and run.json."""
    return write_results(path, HAND, names=["0D", "1D", "2N", "3N"], is_night=[False, False, True, True],
                         record=record, run=RUN, **kwargs)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One full report (tables, LaTeX, figures, index.html) of the hand-made results (~3 s)."""
    path = hand_results(tmp_path_factory.mktemp("exports") / "hand")
    return build_report(path, reference="B", bootstrap=100, latex=True, qualitative="none", per_class="noise@2")


def tables_on_disk(report):
    return sorted(report.out_dir.glob("*.csv"))


def test_json_reads_back_into_the_same_table_as_the_csv(built):
    assert len(tables_on_disk(built)) == 9
    for csv in tables_on_disk(built):
        from_json = pd.read_json(csv.with_suffix(".json"), orient="records")
        from_csv = pd.read_csv(csv)
        assert list(from_json.columns) == list(from_csv.columns), csv.name
        pd.testing.assert_frame_equal(from_json, from_csv, check_dtype=False, atol=1e-4, obj=csv.name)
    miou = pd.read_json(built.out_dir / "miou.json", orient="records").set_index(["model", "corruption", "severity"])
    assert miou.loc[("A", "noise", 2), "miou_pct"] == pytest.approx(40.0)
    assert miou.loc[("B", "clean", 0), "pixel_acc_pct"] == pytest.approx(100 * 360 / 380)  # [[180, 10], [10, 180]]


def test_every_written_table_names_its_unit(built):
    for csv in tables_on_disk(built):
        frame = pd.read_csv(csv)
        floats = [c for c in frame.columns if pd.api.types.is_float_dtype(frame[c])]
        assert floats and all(c.endswith("_pct") for c in floats), (csv.name, floats)
    assert "thing_iou_pct" in pd.read_csv(built.out_dir / "per_class.csv").columns
    for table in built.tables:
        view, percent = table.display_frame()
        floats = {c for c in view.columns if pd.api.types.is_float_dtype(view[c])}
        assert floats == percent and all(h.endswith("(%)") for h in percent), table.name


def markdown_table(text):
    """(table lines, note) of a Markdown file: the table runs up to the first blank line."""
    table, _, note = text.partition("\n\n")
    return table.splitlines(), note


def test_markdown_starts_with_a_table_that_pastes_and_ends_with_a_note(built):
    for md in sorted(built.out_dir.glob("*.md")):
        lines, note = markdown_table(md.read_text())
        assert lines[0].startswith("| ") and re.fullmatch(r"\|(-{3}:?\|)+", lines[1]), md.name
        cells = {len(re.split(r"(?<!\\)\|", line)) for line in lines}
        assert len(cells) == 1, md.name  # every row has the header's column count
        assert "mIoU convention field" in note and "(%)" in note, md.name
    lines, note = markdown_table((built.out_dir / "summary.md").read_text())
    assert lines[0].startswith("| model | clean mIoU (%) | clean CI low (%) | clean CI high (%) | mean corrupted mIoU")
    assert f"- checkpoint A: sha256 {SHA['A']}" in note and "- git commit (sweep): c0ffee" in note


def tabular_rows(text):
    """Check a LaTeX tabular fragment's structure; returns its rows split into cells."""
    body = [line for line in text.splitlines() if not line.startswith("%")]
    spec = re.fullmatch(r"\\begin\{tabular\}\{([lrc]+)\}", body[0])
    assert spec and body[-1] == r"\end{tabular}"
    code = "\n".join(body)
    unescaped = code.replace(r"\{", "").replace(r"\}", "")
    depth = 0
    for ch in unescaped:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    assert not re.search(r"(?<!\\)[_%#$]", code)
    rules = [line for line in body if line in (r"\toprule", r"\midrule", r"\bottomrule")]
    assert rules[0] == r"\toprule" and rules[-1] == r"\bottomrule" and r"\midrule" in rules[1:-1]
    assert body.index(r"\toprule") == 1 and body[-2] == r"\bottomrule"
    rows = []
    for line in body:
        if line.endswith(r"\\"):
            cells = re.split(r"(?<!\\)&", line[:-2])
            spans = sum(int(m.group(1)) if (m := re.match(r"\s*\\multicolumn\{(\d+)\}", c)) else 1 for c in cells)
            assert spans == len(spec.group(1)), line
            rows.append([c.strip() for c in cells])
    return rows


def test_latex_fragments_are_booktabs_tabulars_with_values(built):
    latex = built.out_dir / "latex"
    assert sorted(p.name for p in latex.iterdir()) == ["day_night.tex", "per_class.tex", "robustness.tex",
                                                        "summary.tex"]
    rows = {p.stem: tabular_rows(p.read_text()) for p in latex.iterdir()}
    per_class = {r[0]: r[1:] for r in rows["per_class"]}
    assert r"\multicolumn{4}{l}{\emph{noise@2}}" in [r[0] for r in rows["per_class"]]
    assert per_class["B"] == [r"\textbf{50.0}", r"\textbf{50.0}", r"\textbf{50.0}"]  # the last block: noise@2
    robustness = {r[0]: r[1:] for r in rows["robustness"]}
    assert robustness["A"] == ["80.0", "50.0", "60.0", "55.0", "68.8", "129.2"]  # clean, noise, blur, mean, RR, mCE
    assert robustness["B"][-1] == r"\textbf{100.0}"  # lowest mCE is best
    assert rows["summary"][0][3] == r"95\% CI (\%)"
    assert {r[0]: r[1:] for r in rows["day_night"]}["A"] == ["80.0", "80.0", "80.0"]


def test_latex_escapes_and_marks_undefined_values():
    from rgbt_bench.report.latex import escape, number
    assert escape("a_b 50% #1 $x {y} ~ ^ \\") == (r"a\_b 50\% \#1 \$x \{y\} \textasciitilde{} \textasciicircum{} "
                                                 r"\textbackslash{}")
    assert number(float("nan")) == "--" and number(12.345) == "12.3" and number(1.0, bold=True) == r"\textbf{1.0}"


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no LaTeX engine installed")
def test_latex_fragments_compile(built, tmp_path):
    inputs = "\n\n".join(rf"\input{{{p}}}" for p in sorted((built.out_dir / "latex").glob("*.tex")))
    (tmp_path / "doc.tex").write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                                      f"{inputs}\n\\end{{document}}\n")
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.ids, self.images, self.attrs = [], set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.attrs.append((tag, attrs))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])


def test_index_html_holds_every_table_and_figure_and_nothing_external(built):
    text = (built.out_dir / "index.html").read_text()
    page = Page()
    page.feed(text)
    page.close()
    assert {f"table-{t.name}" for t in built.tables} <= page.ids
    figures = ["heatmap", "curves", "class_heatmap", "per_class"]
    assert {f"figure-{f}" for f in figures} <= page.ids
    assert [base64.b64decode(src.split(",", 1)[1]) for src in page.images] == \
        [(built.out_dir / f"{f}.png").read_bytes() for f in figures]
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    assert not {"link", "script", "iframe", "object", "embed"} & set(page.tags)
    assert not [(t, a) for t, a in page.attrs if "href" in a or ("src" in a and t != "img")]
    assert "url(" not in text and "@import" not in text
    assert "c0ffee" in text and SHA["A"] in text and "All numbers are percentages" in text


def test_provenance_in_report_json_summary_and_leaderboard(built, tmp_path):
    prov = json.loads((built.out_dir / "provenance.json").read_text())
    assert json.loads((built.out_dir / "report.json").read_text())["provenance"] == prov
    assert prov["checkpoints"] == SHA and prov["git_commit"] == "c0ffee" and prov["torch_version"] == "2.13.0+cpu"
    assert prov["dataset_fingerprint"] == "f" * 64 and prov["suite"] == "hand" and prov["seeds"] == "0"
    assert prov["rgbt_bench_version"] == "9.9.9" and prov["device"] == "x86_64 CPU, 1 threads"
    assert prov["convention"] == "field" and prov["dataset"] == "synthetic" and prov["split"] == "test"
    summary = pd.read_csv(built.out_dir / "summary.csv").set_index("model")
    assert summary.loc["A", "checkpoint_sha256"] == SHA["A"] and summary.loc["B", "git_commit"] == "c0ffee"
    assert summary.loc["A", "suite"] == "hand" and summary.loc["A", "dataset_fingerprint"] == "f" * 64
    frame, _ = build_leaderboard([built.results.path], bootstrap=0)
    paths = write_leaderboard(frame, tmp_path / "lb.csv", "mean_corrupted")
    assert [p.name for p in paths] == ["lb.csv", "lb.json", "lb.md"]
    board = pd.read_csv(paths[0]).set_index("model")
    assert board.loc["B", "checkpoint_sha256"] == SHA["B"] and board.loc["A", "torch_version"] == "2.13.0+cpu"
    assert board.loc["A", "mean_corrupted_miou_pct"] == pytest.approx(55.0)
    pd.testing.assert_frame_equal(pd.read_json(paths[1], orient="records"), pd.read_csv(paths[0]),
                                  check_dtype=False, atol=1e-4)
    lines, note = markdown_table(paths[2].read_text())
    assert lines[0].startswith("| group | rank | model |") and f"- checkpoint A: sha256 {SHA['A']}" in note
    assert "git commit (sweep): c0ffee" in note


def test_a_rebuild_writes_the_same_bytes(tmp_path):
    path = hand_results(tmp_path / "r")
    first = build_report(path, bootstrap=50, latex=True, qualitative="none")
    before = {p: p.read_bytes() for p in first.files}
    second = build_report(path, bootstrap=50, latex=True, qualitative="none")
    assert second.files == first.files and second.removed == []
    assert {p: p.read_bytes() for p in second.files} == before


def test_a_rebuild_with_fewer_outputs_removes_the_stale_files_only(tmp_path):
    path = hand_results(tmp_path / "r")
    out = build_report(path, bootstrap=50, latex=True, qualitative="none").out_dir
    (out / "my_notes.txt").write_text("mine")
    assert (out / "bootstrap_cells.csv").exists() and (out / "curves.svg").exists()
    report = build_report(path, bootstrap=0, plot=False)
    gone = {p.relative_to(out).as_posix() for p in report.removed}
    assert {"bootstrap_cells.csv", "bootstrap_summary.json", "bootstrap_differences.md", "latex/summary.tex",
            "curves.svg", "heatmap.png"} <= gone
    assert not (out / "latex").exists() and (out / "my_notes.txt").read_text() == "mine"
    listed = json.loads((out / "report.json").read_text())["files"]
    assert sorted(listed + ["my_notes.txt"]) == sorted(p.relative_to(out).as_posix() for p in out.rglob("*"))


def other_notes(report):
    """The report's notes other than the training checks (hand-made cells record no training curve)."""
    return [n for n in report.notes if not n.startswith("training check:")]


def test_cells_of_several_suites_are_noted(tmp_path):
    one = load_results(hand_results(tmp_path / "one"))
    assert suites(one) == ["hand"] and mixed_suites_note(one) is None
    # an earlier invocation swept another suite, but every cell here belongs to the latest: nothing is mixed
    older = {"name": "noise-only", "entries": [RUN["suite"]["entries"][0]]}
    path = write_results(tmp_path / "two", HAND, record=record, run={**RUN, "history": [{**RUN, "suite": older}]})
    two = load_results(path)
    assert suites(two) == ["noise-only", "hand"] and mixed_suites_note(two) is None
    report = build_report(path, bootstrap=0, plot=False)
    assert other_notes(report) == [] and report.provenance["suite"] == "hand"
    # the latest suite lacks blur: its cells are an earlier sweep's
    path = write_results(tmp_path / "three", HAND, record=record,
                         run={**RUN, "suite": older, "history": [RUN]})
    report = build_report(path, bootstrap=0, plot=False)
    assert other_notes(report) == [f"{path} holds cells of several suites (hand, noise-only; cells outside the latest, "
                            "noise-only: blur@1, blur@2): the mean corrupted mIoU, RR and mCE pool every corruption "
                            "found; write each suite to its own --out to compare like with like"]
    assert report.provenance["suite"] == "hand, noise-only"


def test_setting_notation_and_its_alias():
    assert doctest.testmod(notation).failed == 0
    assert notation.split_setting("thermal_missing@5") == notation.split_setting("thermal_missing:5")
    for bad in ("noise", "noise@", "@3", "noise@x", "clean@2"):
        assert notation.split_setting(bad) is None, bad


def cli(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_cli_latex_and_bootstrap_seed_alias(tmp_path, capsys):
    path = write_results(tmp_path / "r", HAND)
    main(["report", str(path), "--no-plots", "--latex", "--bootstrap", "20", "--bootstrap-seed", "3"])
    printed = capsys.readouterr().out
    assert f"report written to {path / 'report'} (open {path / 'report' / 'index.html'})" in printed
    meta = json.loads((path / "report" / "report.json").read_text())
    assert meta["bootstrap"]["seed"] == 3 and meta["latex"] is True and "latex/per_class.tex" in meta["files"]
    main(["report", str(path), "--no-plots", "--bootstrap", "20", "--seed", "3"])
    assert json.loads((path / "report" / "report.json").read_text())["bootstrap"]["seed"] == 3
    assert ("removed 3 file(s) of an earlier report that this one does not write: latex/per_class.tex, "
            "latex/robustness.tex, latex/summary.tex\n") in capsys.readouterr().out  # no day/night flags here
    assert not (path / "report" / "latex").exists()


def test_latex_into_an_unwritable_place_is_one_line_and_writes_nothing(tmp_path, capsys):
    path = write_results(tmp_path / "r", HAND)
    (path / "report").mkdir()
    (path / "report" / "latex").write_text("in the way")
    code, _, err = cli(["report", str(path), "--no-plots", "--latex", "--bootstrap", "0"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"Error: cannot write the report to {path / 'report'} (File exists)")
    assert [p.name for p in (path / "report").iterdir()] == ["latex"]



def test_results_readme_documents_every_file_a_report_writes(built):
    readme = (Path(__file__).resolve().parents[1] / "results" / "README.md").read_text()
    for path in built.files:
        name = path.relative_to(built.out_dir).as_posix()
        stem = name.rsplit(".", 1)[0]
        assert f"`{name}`" in readme or f"`{stem}`" in readme or f"`{stem.split('/')[0]}/*.tex`" in readme, name
