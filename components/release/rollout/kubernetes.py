"""Applies a traffic split to a Kubernetes rollout overlay: each track's pinned version, the route's weights and mirror.

`KubernetesTarget(overlay_dir)` edits serving/k8s/overlays/rollout (Gateway API
GRPCRoute) or serving/k8s/overlays/rollout-istio (Istio VirtualService), or a
copy of either, and names the `kubectl apply -k` that puts it live: the change
is a reviewable git diff, and the cluster changes only when someone applies it.

What it finds through the overlay's kustomization.yaml:

- the pins: the configMapGenerator entries named `*-stable` and `*-canary` whose
  files hold `models.config`; each is TF Serving's ModelServerConfig with one
  model, pinned by `model_version_policy { specific { versions: N } }`;
- the route: the one resource file holding a GRPCRoute or a VirtualService. Its
  backends are told apart by name: a Service named `...-stable` or `...-canary`
  (the first DNS label of an Istio host). Every rule (GRPCRoute) or HTTP route
  (VirtualService) that sends to both tracks gets the same weights and mirror;
  other rules (e.g. one you add to reach a track by header) are left alone.

The split maps onto them as:

| split | stable pin | canary pin | weights stable/canary | mirrored to canary |
|---|---|---|---|---|
| None | latest | latest | 100/0 | none |
| TrafficSplit(s) | s | s (idle) | 100/0 | none |
| TrafficSplit(s, c, shadow P, canary Q) | s | c | 100-Q / Q | P% |

Weights are whole numbers (both APIs weigh relatively): percents, or hundredths
of a percent when a share is not a whole percent. A GRPCRoute mirrors with
`percent` or, for hundredths, `fraction`; a VirtualService with
`mirrorPercentage` (a double).
"""

from __future__ import annotations

import copy
import os
import uuid
from typing import Any

import yaml
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from detx.components.release.rollout import kubernetes_routes as routes
from detx.components.release.traffic import TrafficError, TrafficSplit

KUSTOMIZATION = "kustomization.yaml"


class OverlayError(ValueError):
    """An overlay KubernetesTarget cannot read or write (the message says what and how to fix it)."""


def _read_yaml(path: str) -> Any:
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise OverlayError(f"{path} does not exist") from None
    except yaml.YAMLError as e:
        raise OverlayError(f"{path} is not valid YAML: {e}") from None


def _version(version: int | None) -> str:
    return "the latest version" if version is None else f"version {version}"


class KubernetesTarget:
    """A rollout overlay as the place where a traffic split is applied (the `Target` of signals.py)."""

    def __init__(self, overlay_dir: str) -> None:
        """Finds the overlay's pins and route.

        Raises:
            OverlayError: not a rollout overlay (no kustomization.yaml, no pins, not exactly one route).
        """
        self.overlay_dir = overlay_dir
        path = os.path.join(overlay_dir, KUSTOMIZATION)
        if not os.path.isfile(path):
            raise OverlayError(
                f"{overlay_dir} has no {KUSTOMIZATION}: name a rollout overlay such as serving/k8s/overlays/rollout"
            )
        kustomization = _read_yaml(path) or {}
        self.pins = {track: self._pin_file(kustomization, track) for track in routes.TRACKS}
        self.route = self._route_file(kustomization)

    def _pin_file(self, kustomization: dict[str, Any], track: str) -> str:
        for generator in kustomization.get("configMapGenerator") or []:
            if str(generator.get("name", "")).endswith(f"-{track}"):
                for entry in generator.get("files") or []:
                    key, _, source = str(entry).rpartition("=")
                    if (key or os.path.basename(source)) == "models.config":
                        return os.path.join(self.overlay_dir, source)
        raise OverlayError(
            f"{self.overlay_dir}/{KUSTOMIZATION} has no configMapGenerator named '*-{track}' with a "
            "models.config file: it is not a rollout overlay (see serving/k8s/overlays/rollout)"
        )

    def _route_file(self, kustomization: dict[str, Any]) -> str:
        found = []
        for resource in kustomization.get("resources") or []:
            path = os.path.join(self.overlay_dir, str(resource))
            if os.path.isfile(path) and routes.dialect(_read_yaml(path)) is not None:
                found.append(path)
        if len(found) != 1:
            raise OverlayError(
                f"{self.overlay_dir}/{KUSTOMIZATION} must list exactly one file holding a {routes.KINDS}; "
                f"found {len(found)}"
            )
        return found[0]

    def describe(self) -> str:
        """One line naming the overlay and its route."""
        route = _read_yaml(self.route)
        return f"Kubernetes overlay {self.overlay_dir} ({route['kind']} {route['metadata']['name']})"

    def _read_pin(self, track: str) -> tuple[Any, int | None]:
        """(the track's ModelServerConfig, its pinned version or None for the latest-version policy)."""
        path = self.pins[track]
        try:
            with open(path) as f:
                # Text format, as TF Serving parses its --model_config_file.
                config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
        except FileNotFoundError:
            raise OverlayError(f"{path} does not exist: restore it from git") from None
        except text_format.ParseError as e:
            raise OverlayError(f"{path} is not a TF Serving model config: {e}") from None
        models = config.model_config_list.config
        if len(models) != 1:
            raise OverlayError(f"{path} must configure exactly one model, found {len(models)}")
        policy = models[0].model_version_policy
        kind = policy.WhichOneof("policy_choice")
        if kind == "specific" and len(policy.specific.versions) == 1:
            return config, int(policy.specific.versions[0])
        if kind in (None, "latest") and policy.latest.num_versions in (0, 1):
            return config, None
        raise OverlayError(
            f"{path} must pin one version (model_version_policy {{ specific {{ versions: N }} }}) or serve the "
            f"latest one; it has {text_format.MessageToString(policy, as_one_line=True)}"
        )

    @staticmethod
    def _pinned_text(config: Any, version: int | None) -> str:
        config = copy.deepcopy(config)
        model = config.model_config_list.config[0]
        if version is None:
            model.model_version_policy.latest.num_versions = 1
        else:
            model.model_version_policy.specific.ClearField("versions")
            model.model_version_policy.specific.versions.append(version)
        model.ClearField("version_labels")  # one version per track: requests are routed, not labelled
        return str(text_format.MessageToString(config))

    def _read_routing(self, route: Any) -> routes.Routing:
        try:
            return routes.read(route)
        except routes.RouteError as e:
            raise OverlayError(f"{self.route}: {e}") from None

    def current(self) -> TrafficSplit | None:
        """The split the overlay holds now (None: both tracks follow the latest-version policy).

        Raises:
            OverlayError: the pins and the route contradict each other, or a file cannot be read.
        """
        stable, canary = self._read_pin("stable")[1], self._read_pin("canary")[1]
        routing = self._read_routing(_read_yaml(self.route))
        if stable is None or canary in (None, stable):
            if routing.canary_percent or routing.shadow_percent or canary != stable:
                raise OverlayError(
                    f"{self.overlay_dir}: the stable track serves {_version(stable)} and the canary track "
                    f"{_version(canary)} with {routing.canary_percent:g}% of traffic and "
                    f"{routing.shadow_percent:g}% mirrored; apply a split to make them agree"
                )
            return None if stable is None else TrafficSplit(stable=stable)
        try:
            return TrafficSplit(stable, canary, routing.shadow_percent, routing.canary_percent)
        except TrafficError as e:
            raise OverlayError(f"{self.overlay_dir}: {e}") from None

    def apply(self, split: TrafficSplit | None) -> str:
        """Writes `split` into the overlay's pins and route; returns what changed and the command that applies it.

        Every file is read and checked before any is written, and each is
        replaced whole (written beside it, then renamed over it).

        Raises:
            OverlayError: the overlay cannot be read (nothing is written then).
        """
        wanted = {
            "stable": None if split is None else split.stable,
            "canary": None if split is None else (split.candidate or split.stable),
        }
        routing = routes.Routing(
            canary_percent=0.0 if split is None else split.canary_percent,
            shadow_percent=0.0 if split is None else split.shadow_percent,
        )
        writes: dict[str, str] = {}
        changes = []
        for track in routes.TRACKS:
            config, version = self._read_pin(track)
            text = self._pinned_text(config, wanted[track])
            with open(self.pins[track]) as f:
                if f.read() != text:
                    writes[self.pins[track]] = text
            if version != wanted[track]:
                changes.append(f"{track} track {_version(version)} -> {_version(wanted[track])}")
        with open(self.route) as f:
            route_text = f.read()
        route = yaml.safe_load(route_text)
        before = self._read_routing(route)
        routes.write(route, routing)
        after = self._read_routing(route)
        text = _header(route_text) + yaml.safe_dump(route, sort_keys=False, default_flow_style=False)
        if text != route_text:
            writes[self.route] = text
        name = f"{route['kind']} {route['metadata']['name']}"
        if after.canary_percent != before.canary_percent:
            changes.append(
                f"{name} sends the canary {before.canary_percent:g}% -> {after.canary_percent:g}% of traffic"
            )
        if after.shadow_percent != before.shadow_percent:
            changes.append(f"{name} mirrors {before.shadow_percent:g}% -> {after.shadow_percent:g}% to the canary")
        if after != routing:
            changes.append(
                f"shares rounded to hundredths of a percent ({after.canary_percent:g}%, {after.shadow_percent:g}%)"
            )
        _replace_all(writes)
        if not writes:
            return f"{self.overlay_dir} already holds this split"
        return (
            f"{self.overlay_dir}: {'; '.join(changes) or 'files rewritten in canonical form'}. "
            f"Review with `git diff {self.overlay_dir}`, then run `kubectl apply -k {self.overlay_dir}`"
        )


def _header(text: str) -> str:
    """The comment lines a YAML file opens with (kept when the file is rewritten)."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def _replace_all(writes: dict[str, str]) -> None:
    """Writes every file beside its target first, then renames each over it (no file is ever half written)."""
    staged: dict[str, str] = {}
    try:
        for path, text in writes.items():
            staged[path] = f"{path}.{uuid.uuid4().hex}.tmp"
            with open(staged[path], "w") as f:
                f.write(text)
    except OSError:
        for staging in staged.values():
            if os.path.exists(staging):
                os.remove(staging)
        raise
    for path, staging in staged.items():
        os.replace(staging, path)
