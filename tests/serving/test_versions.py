"""VersionManager: TF Serving's version rules, with a loader that can be told to fail."""

import os

from detx.components.model_store import ModelStore
from detx.serving.model_server.versions import State, VersionManager, VersionPolicy


def _manager(dest, broken=(), **kwargs):
    def loader(path):
        if os.path.basename(path) in {str(b) for b in broken}:
            raise OSError(f"cannot load {path}")
        return f"model@{os.path.basename(path)}"

    return VersionManager("detx", dest, loader=loader, retry_interval=0.0, **kwargs)


def _states(manager):
    return {v.version: (v.state, bool(v.error)) for v in manager.snapshot()}


def test_newest_serves_old_unloads_after_and_a_broken_new_one_keeps_the_old(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    store = ModelStore(dest)
    model = fake_saved_model(tmp_path / "m")
    store.push(model, {})
    manager = _manager(dest, broken=[3])
    manager.sync()
    assert manager.resolve() == (1, "model@1")
    store.push(model, {})
    manager.sync()
    assert manager.resolve() == (2, "model@2") and _states(manager) == {
        1: (State.END, False),
        2: (State.AVAILABLE, False),
    }
    store.push(model, {})  # version 3 fails to load: 2 keeps serving, 3 shows its error
    for _ in range(7):
        manager.sync()
    assert manager.resolve() == (2, "model@2")
    assert _states(manager)[3] == (State.END, True) and manager.snapshot()[-1].attempts == 5  # retries, then gives up
    os.makedirs(os.path.join(dest, "4"))  # an incomplete version: never loaded, shown with a reason
    manager.sync()
    assert _states(manager)[4] == (State.END, True) and manager.resolve()[0] == 2
    assert "no saved_model.pb" in next(v.error for v in manager.snapshot() if v.version == 4)


def test_rollback_reloads_the_older_version_at_once_and_pinned_versions_and_labels(tmp_path, fake_saved_model):
    dest = str(tmp_path / "dest")
    store = ModelStore(dest)
    model = fake_saved_model(tmp_path / "m")
    for _ in range(3):
        store.push(model, {})
    manager = _manager(dest)
    manager.sync()
    assert manager.resolve()[0] == 3
    store.rollback(to=2)
    manager.sync()
    assert manager.resolve()[0] == 2 and 3 not in _states(manager)
    pinned = _manager(dest, policy=VersionPolicy(specific=(1, 2), labels={"stable": 1, "canary": 2}))
    pinned.sync()
    assert pinned.resolve(label="stable")[0] == 1 and pinned.resolve(label="canary")[0] == 2
    assert pinned.resolve(version=1)[0] == 1
    for bad in ({"version": 3}, {"label": "beta"}):
        try:
            pinned.resolve(**bad)
        except LookupError:
            pass
        else:
            raise AssertionError(f"{bad} should not resolve")
