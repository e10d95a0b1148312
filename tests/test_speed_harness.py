"""The speed harness runs and reports every method with its ratios (timings themselves are not asserted)."""

import csv
import subprocess
import sys

from conftest import ENV, REPO


def test_harness_times_every_method_and_writes_the_table(tmp_path):
    out = tmp_path / "speed.csv"
    proc = subprocess.run([sys.executable, "benchmarks/speed.py", "--epochs", "1", "--skip-jobs",
                           "--case", "circles mlp bn_after", "--out", str(out)],
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    rows = {row["method"]: row for row in csv.DictReader(out.open())}
    assert set(rows) == {"floor (torch.mm)", "floor (tf.matmul)", "keras fit (tutorial)",
                         "torch DataLoader (tutorial)", "bnbench keras", "bnbench torch"}
    for method, row in rows.items():
        assert float(row["seconds_per_epoch"]) > 0 and float(row["x_floor"]) > 0 and row["cpu"]
        if not method.startswith("floor"):
            assert 0 <= float(row["test_accuracy"]) <= 1
    assert float(rows["bnbench keras"]["baseline_speedup"]) > 0
    for floor in ("floor (torch.mm)", "floor (tf.matmul)"):  # each trainer against its own framework's floor
        assert float(rows[floor]["x_floor"]) == 1.0 and float(rows[floor]["ms_above_floor"]) == 0.0
    assert "x floor" in proc.stdout and "bnbench torch" in proc.stdout
