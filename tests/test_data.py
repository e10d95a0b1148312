import numpy as np
from sklearn.datasets import make_circles

from bnbench import data
from bnbench.config import load_schema
from bnbench.data import cache, circles


def test_circles_is_exactly_the_tutorial_split():
    x, y = make_circles(n_samples=1000, noise=0.1, random_state=1)
    data = circles.make(n_samples=1000, noise=0.1, random_state=1, n_train=500)
    np.testing.assert_array_equal(data["x_train"], x[:500].astype(np.float32))
    np.testing.assert_array_equal(data["y_train"], y[:500].astype(np.float32))
    np.testing.assert_array_equal(data["x_test"], x[500:].astype(np.float32))
    np.testing.assert_array_equal(data["x_val"], data["x_test"])  # the tutorial validates on the test half
    assert data["x_train"].dtype == np.float32 and set(np.unique(data["y_train"])) == {0.0, 1.0}


def test_other_settings_change_the_data():
    a, b = circles.make(random_state=1), circles.make(random_state=2)
    assert not np.array_equal(a["x_train"], b["x_train"])
    assert len(circles.make(n_samples=200, n_train=150)["x_test"]) == 50


def test_npz_roundtrip_and_no_temp_left(tmp_path):
    path = tmp_path / "sub" / "circles.npz"
    data = circles.make()
    cache.save(path, data)
    loaded = cache.load(path)
    for key, value in data.items():
        np.testing.assert_array_equal(loaded[key], value)
    assert [p.name for p in path.parent.iterdir()] == ["circles.npz"]


def test_dataset_registry_and_config_schema_agree():
    """Every dataset of the schema is in the registry and back, and every data key of its config reaches
    its make() (bnbench.config.dataset_params passes only make's parameters: a key make lacks would be
    silently dropped)."""
    schema = load_schema()["properties"]["datasets"]["properties"]
    assert set(schema) == set(data.DATASETS)
    training_keys = {"archs", "epochs", "batch_size", "optimizer", "target_accuracy", "target_ladder", "seeds",
                     "variants", "skip", "runs_per_job", "init_scale", "dropout", "sweeps", "sweep_variants",
                     "variance"}
    for name, entry in schema.items():
        data_keys = set(entry["properties"]) - training_keys
        assert data_keys and data_keys <= set(data.params(name)), (name, data_keys - set(data.params(name)))
        assert data.training_size(name, {key: entry["properties"][key].get("default") for key in data_keys}) > 0
