"""Figures and summaries group members by the settings that vary, and count them right."""

import numpy as np
import pandas as pd

from latchlab.analysis import plot


def _frame(**vary):
    rng = np.random.default_rng(0)
    rows = []
    for split in ("stratified", "tail"):
        for T in (5, 10):
            for seed in range(4):
                for k, vs in vary.items():
                    for v in vs:
                        rows.append(
                            {
                                "split": split,
                                "T": T,
                                "seed": seed,
                                "cell": "srnn",
                                "units": 1,
                                "values": "{}",
                                k: v,
                                "val_acc": float(rng.uniform(0.9, 1.0)),
                            }
                        )
    return pd.DataFrame(rows)


def test_variant_is_the_cell_when_only_the_cell_varies():
    df = plot.final(_frame(cell=["srnn", "lstm"]))
    assert sorted(df.variant.unique()) == ["lstm", "srnn"]


def test_variant_names_every_varying_setting():
    df = plot.final(_frame(values=['{"recurrent": 0.5}', '{"recurrent": 1.25}']))
    assert sorted(df.variant.unique()) == ['values={"recurrent": 0.5}', 'values={"recurrent": 1.25}']


def test_summary_counts_equal_a_plain_groupby():
    df = _frame(cell=["srnn", "lstm"])
    s = plot.summary(df).set_index(["split", "variant", "T"])
    want = df.groupby(["split", "cell", "T"]).val_acc
    for key, acc in want:
        row = s.loc[key]
        assert row.members == len(acc)
        assert row.successes == int((acc >= plot.SUCCESS).sum())
        np.testing.assert_allclose(row.mean_val_acc, acc.mean())
        np.testing.assert_allclose(row.std_val_acc, acc.std(ddof=0))


def test_figures_have_a_line_per_variant_and_a_panel_per_split(tmp_path):
    df = _frame(cell=["srnn", "lstm", "gru"])
    fig = plot.success_vs_T(df)
    assert len(fig.axes) == 2
    assert all(len(ax.get_lines()) == 3 for ax in fig.axes)
    paths = plot.save(fig, tmp_path / "s")
    assert all(p.stat().st_size > 0 for p in paths)
