"""The Evaluator's baseline comes from the push destination, without a Resolver node."""

from detx.components.evaluator.baseline import Baseline, find_baseline, resolve
from detx.components.model_store import ModelStore


def test_baseline_is_the_served_version_and_follows_production(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    assert find_baseline(dest) is None and resolve("auto", dest) is None  # first run: nothing in production
    store = ModelStore(dest)
    model = fake_saved_model(tmp_path / "m")
    store.push(model, {})
    store.push(model, {})
    assert resolve("auto", dest) == Baseline(2, store.path(2))
    assert resolve("none", dest) is None
    # A snapshot taken when the run was built (version 2), then production rolled back: version 1 is used.
    snapshot = store.path(2)
    store.rollback(to=1)
    assert resolve(snapshot, dest) == Baseline(1, store.path(1))
    # A SavedModel elsewhere is used as given.
    assert resolve(model, dest) == Baseline(None, model)
