"""The normalizer family beyond BN through the real workflow: every new variant trains in both frameworks, the
batch-size sweep feeds the normalizers' stability metrics, and the three claims get verdicts in the report."""

import pandas as pd
import pytest
import yaml

from conftest import REPO, snakemake, write_config
from test_workflow import html_tables

pytestmark = pytest.mark.slow  # a real Snakemake workflow

SHIPPED = yaml.safe_load((REPO / "config.yaml").read_text())["variants"]
CIRCLES_VARIANTS = ["none", "bn_after", "renorm_after", "layer_after", "group_after", "weight_norm", "selu"]
SWEPT = ["bn_after", "renorm_after", "layer_after", "group_after"]  # what the batch-size claims compare
CLAIM_IDS = ["renorm_recovers_small_batches", "group_norm_batch_independent", "bn_after_pool_no_effect"]


@pytest.fixture(scope="module")
def normalizers_run(tmp_path_factory):
    """presets/normalizers.yaml in miniature: 2 seeds, a few epochs, the batch sweep down to 2, the CNN's
    two BN placements on 256 Fashion-MNIST images; verdicts may rest on 2 pairs."""
    from conftest import _fashion_mnist_dir

    workdir = tmp_path_factory.mktemp("normalizers")
    config = {
        "frameworks": ["keras", "torch"], "seeds": [1, 2], "min_pairs": 2,
        "datasets": {
            "circles": {"epochs": 3, "variants": CIRCLES_VARIANTS, "sweeps": {"batch_size": [2, 32]},
                        "sweep_variants": SWEPT},
            "fashion_mnist": {"dir": str(_fashion_mnist_dir()), "validation_size": 500, "train_subset": 256,
                              "archs": ["cnn"], "epochs": 1, "variants": ["bn_after", "bn_after_pool"],
                              "runs_per_job": 2},
        },
        "variants": SHIPPED,
    }
    write_config(workdir, config)
    return workdir, snakemake(workdir, "--cores", "2")


def test_every_normalizer_trains_in_both_frameworks_alike(normalizers_run):
    workdir, proc = normalizers_run
    assert "bnbench: 52 runs in 26 training jobs" in proc.stderr
    summary = pd.read_csv(workdir / "results/summary.csv")
    circles = summary[summary.dataset == "circles"]
    assert set(zip(circles.variant, circles.framework)) == {(v, f) for v in CIRCLES_VARIANTS for f in ("keras", "torch")}
    cnn = summary[summary.arch == "cnn"]
    assert set(cnn.variant) == {"bn_after", "bn_after_pool"} and len(cnn) == 8
    assert not summary.diverged.any() and summary.train_loss.notna().all()
    # The same seed is the same run in both frameworks: after 3 epochs at batch 32 the losses agree closely.
    base = circles[circles.sweep == "base"].pivot_table(index=["variant", "seed"], columns="framework",
                                                        values="train_loss")
    assert len(base) == 14
    assert (abs(base.keras - base.torch) <= 1e-4 * abs(base.keras).clip(lower=1)).all(), base
    settings = {v: summary[summary.variant == v].iloc[0] for v in ("renorm_after", "group_after", "selu")}
    assert settings["renorm_after"]["run.bn.norm"] == "renorm" and settings["renorm_after"]["run.bn.rmax"] == 3
    assert settings["group_after"]["run.bn.groups"] == 5 and settings["selu"]["run.bn.activation"] == "selu"


def test_normalizer_stability_metrics_and_claims(normalizers_run):
    workdir, _ = normalizers_run
    stability = pd.read_csv(workdir / "results/stability.csv").set_index(["variant", "framework"])
    assert len(stability) == 8 and set(stability.index.get_level_values("variant")) == set(SWEPT)
    assert (stability.small_batch_accuracy_n == 2).all() and (stability.batch_size_spread_n == 2).all()
    assert stability.small_batch_accuracy.between(0, 1).all() and (stability.batch_size_spread >= 0).all()
    claims = pd.read_csv(workdir / "results/claims.csv")
    for claim_id, variants in zip(CLAIM_IDS, [{"renorm_after"}, {"group_after", "layer_after"}, {"bn_after_pool"}]):
        rows = claims[claims.id == claim_id]
        assert set(rows.variant) == variants and set(rows.framework) == {"keras", "torch"}
        assert (rows.n_pairs == 2).all() and rows.measured.notna().all()
        assert set(rows.verdict) <= {"holds", "does not hold", "inconclusive"}  # tested, not "not run"
    pool = claims[claims.id == "bn_after_pool_no_effect"]
    assert (pool.margin == 0.01).all() and (pool.against == "bn_after").all()
    html = (workdir / "reports/index.html").read_text()
    for claim_id in CLAIM_IDS:
        assert claim_id in html
    assert "renorm_after minus bn_after" in html and "group_after / layer_after minus bn_after" in html
    shown = next(t for t in html_tables(html) if "small batch accuracy" in t.columns)
    assert set(shown.variant) == set(SWEPT)
