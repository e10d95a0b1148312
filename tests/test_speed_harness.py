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


def test_job_summary_groups_base_and_sweep_jobs(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    jobs = {"circles/mlp/none/keras/seeds1-10.tsv": 10.0, "circles/mlp/bn_after/keras/seeds1-10.tsv": 12.0,
            "circles/mlp/none/keras/learning_rate=0.003/seeds1-10.tsv": 20.0,
            "circles/mlp/none/torch/batch_size=4/seeds1-10.tsv": 30.0}
    for name, seconds in jobs.items():
        path = tmp_path / "logs/benchmarks/train" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0:00:10\t600\t0\t0\t0\t0\t0\t0\t0\n")
    proc = subprocess.run([sys.executable, "benchmarks/speed.py", "--jobs-from", str(tmp_path)],
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lines = {line.split("  ")[0]: line for line in proc.stdout.splitlines() if line.startswith("pipeline jobs")}
    assert set(lines) == {"pipeline jobs circles mlp base (2 jobs)", "pipeline jobs circles mlp learning_rate (1 jobs)",
                          "pipeline jobs circles mlp batch_size (1 jobs)"}
    assert lines["pipeline jobs circles mlp base (2 jobs)"].rstrip().endswith("11.00")  # the median job
