"""``latchlab reproduce ablations`` at a tiny scale: every variant is trained with exactly
the initial parameters and gates it names, and the results and figure are written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from latchlab.experiments import ablations as A
from latchlab.engine import run as runner
from latchlab.errors import ConfigError
from latchlab.store import Store


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablations")
    parts = A.configs("quick", T=[3, 4], repeats=2, N=40, epochs=1)
    with Store(out / "store.sqlite") as st:
        df = A.label(runner.run([c for _, _, c in parts], st), parts)
        init = {m: st.params(m, 0) for m in df.member_id}
    return out, parts, df, init


def test_every_variant_trains_with_what_it_names(tiny):
    _, parts, df, init = tiny
    assert len(df) == len(A.variants()) * 2 * 2
    assert list(dict.fromkeys(zip(df.family, df.variant))) == [(f, v) for f, v, _ in A.variants()]  # in order
    for r in df.itertuples():
        p = init[r.member_id]["cell"]
        if r.variant.startswith("U0 = ") and "orthogonal" not in r.variant:
            assert p["recurrent"][0, 0] == pytest.approx(float(r.variant.split("= ")[1]))
        elif "orthogonal" in r.variant:
            assert abs(p["recurrent"][0, 0]) == pytest.approx(1.0)  # one-unit orthogonal is +-1
        elif r.cell == "lstm":
            b_f = p["bias"][1]  # Keras gate order i, f, c, o
            if r.variant.startswith("b_f"):
                assert b_f == pytest.approx(float(r.variant.split("= ")[1].split()[0]))
            else:  # chrono: b_f ~ log U[1, T - 1], b_i = -b_f
                assert 0.0 <= b_f <= np.log(r.T - 1) + 1e-6 and p["bias"][0] == pytest.approx(-b_f)
            assert r.preset == ("keras2" if "hard" in r.family else "keras3")
    assert set(df.cell) == {"srnn", "lstm", "lstm_nofg", "janet", "gru"}
    assert (df.split == "stratified").all() and (df.epochs == 1).all()


def test_results_and_figure(tiny):
    out, _, df, _ = tiny
    paths = A.EXPERIMENT.outputs(df, out)
    assert sorted(p.name for p in paths) == sorted(A.EXPERIMENT.files)
    back = pd.read_csv(out / "results.csv")
    assert {"variant", "cell", "T", "seed", "val_acc"} <= set(back.columns)
    np.testing.assert_allclose(back.val_acc, df.val_acc)
    t = A.table(df)
    want = df.groupby(["family", "variant"], sort=False).val_acc.apply(lambda a: np.mean(a >= 0.99))
    np.testing.assert_allclose(t.success_rate, want.values)
    shown = A.EXPERIMENT.table(df)  # what the CLI prints: the same rates, the shared threshold in the title
    assert "≥ 0.99" in shown.title and list(shown.frame.success) == [f"{v:.2f}" for v in want.values]
    fig = A.figure(df)
    assert len(fig.axes) == len(dict.fromkeys(df.family))


def test_unknown_scale():
    with pytest.raises(ConfigError, match="scale"):
        A.configs("huge")
