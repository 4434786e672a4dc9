"""Reads and writes the two tracks' weights and mirror in a Gateway API GRPCRoute or an Istio VirtualService.

Field names, from the published schemas:

- GRPCRoute (gateway.networking.k8s.io/v1; kubernetes-sigs/gateway-api
  config/crd/standard/gateway.networking.k8s.io_grpcroutes.yaml, bundle v1.3.0):
  `spec.rules[].backendRefs[]` {name, port, weight (int32, 0-1,000,000, default
  1, relative)}; `spec.rules[].filters[]` {type: RequestMirror, requestMirror:
  {backendRef, percent (int 0-100) | fraction {numerator, denominator (default
  100)}}}, neither meaning every request, and not both (a CEL rule).
- VirtualService (networking.istio.io/v1; istio/api
  networking/v1alpha3/virtual_service.proto): `spec.http[].route[]`
  {destination {host, port {number}}, weight (int32, relative)};
  `spec.http[].mirror` (a Destination) and `mirrorPercentage {value: double}`
  (absent: 100%); `mirrorPercent` is the deprecated integer form.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, MutableMapping
from typing import Any

TRACKS = ("stable", "canary")
GRPC_ROUTE = ("gateway.networking.k8s.io/v1", "GRPCRoute")
VIRTUAL_SERVICE = ("networking.istio.io/v1", "VirtualService")
KINDS = f"{GRPC_ROUTE[1]} ({GRPC_ROUTE[0]}) or {VIRTUAL_SERVICE[1]} ({VIRTUAL_SERVICE[0]})"
_HUNDREDTHS = 100

Rule = MutableMapping[str, Any]


class RouteError(ValueError):
    """A route whose tracks cannot be found or whose rules disagree."""


@dataclasses.dataclass(frozen=True)
class Routing:
    """What a route gives the canary track: its share of traffic and the share of traffic mirrored to it (percent)."""

    canary_percent: float
    shadow_percent: float


def share(percent: float) -> tuple[int, int]:
    """A percentage as whole (numerator, denominator): over 100, or in hundredths over 10,000 (2.5 -> (250, 10000))."""
    if float(percent).is_integer():
        return int(percent), 100
    return round(percent * _HUNDREDTHS), 100 * _HUNDREDTHS


def track_of(name: str) -> str | None:
    """'stable' or 'canary' for a Service named `...-stable` / `...-canary` (or an Istio host naming one)."""
    label = name.split(".", maxsplit=1)[0]
    return next((t for t in TRACKS if label.endswith(f"-{t}")), None)


def dialect(document: Any) -> str | None:
    """The route's kind if `document` is a GRPCRoute or a VirtualService of the supported API version."""
    if isinstance(document, dict) and (document.get("apiVersion"), document.get("kind")) in (
        GRPC_ROUTE,
        VIRTUAL_SERVICE,
    ):
        return str(document["kind"])
    return None


def _grpc_backends(rule: Rule) -> dict[str | None, Rule]:
    return {track_of(str(b.get("name", ""))): b for b in rule.get("backendRefs") or []}


def _istio_destinations(rule: Rule) -> dict[str | None, Rule]:
    return {track_of(str((d.get("destination") or {}).get("host", ""))): d for d in rule.get("route") or []}


def _managed(route: dict[str, Any]) -> tuple[list[Rule], Callable[[Rule], dict[str | None, Rule]]]:
    """The rules that send to both tracks, and how to find a rule's entry per track."""
    spec = route.get("spec") or {}
    if route["kind"] == GRPC_ROUTE[1]:
        rules, entries = spec.get("rules") or [], _grpc_backends
    else:
        rules, entries = spec.get("http") or [], _istio_destinations
    managed = [rule for rule in rules if set(TRACKS) <= set(entries(rule))]
    if not managed:
        raise RouteError(
            "no rule sends to both a '*-stable' and a '*-canary' Service; restore the route from git "
            "(serving/k8s/overlays/rollout or rollout-istio)"
        )
    return managed, entries


def _mirrored(route_kind: str, rule: Rule) -> float:
    if route_kind == VIRTUAL_SERVICE[1]:
        if "mirror" not in rule:
            return 0.0
        return float((rule.get("mirrorPercentage") or {}).get("value", 100.0))
    for f in rule.get("filters") or []:
        mirror = f.get("requestMirror") or {}
        if f.get("type") == "RequestMirror" and track_of(str((mirror.get("backendRef") or {}).get("name", ""))):
            if "percent" in mirror:
                return float(mirror["percent"])
            if "fraction" in mirror:
                fraction = mirror["fraction"]
                return 100.0 * float(fraction["numerator"]) / float(fraction.get("denominator", 100))
            return 100.0
    return 0.0


def read(route: dict[str, Any]) -> Routing:
    """The canary's shares in the rules that send to both tracks.

    Raises:
        RouteError: no such rule, or they disagree.
    """
    managed, entries = _managed(route)
    seen = set()
    for rule in managed:
        by_track = entries(rule)
        default = 1 if route["kind"] == GRPC_ROUTE[1] else 0  # GRPCRoute's CRD default; Istio: unset is 0 of many
        weights = {t: float(by_track[t].get("weight", default)) for t in TRACKS}
        total = sum(weights.values())
        canary = 0.0 if total == 0 else 100.0 * weights["canary"] / total
        seen.add(Routing(round(canary, 6), round(_mirrored(route["kind"], rule), 6)))
    if len(seen) != 1:
        raise RouteError(
            "the rules that send to both tracks disagree on weights or mirroring; make them equal or apply a split"
        )
    return seen.pop()


def write(route: dict[str, Any], routing: Routing) -> None:
    """Sets the canary's shares in every rule that sends to both tracks (in place).

    Raises:
        RouteError: no rule sends to both tracks.
    """
    managed, entries = _managed(route)
    canary, denominator = share(routing.canary_percent)
    mirrored, over = share(routing.shadow_percent)
    for rule in managed:
        by_track = entries(rule)
        by_track["stable"]["weight"] = denominator - canary
        by_track["canary"]["weight"] = canary
        if route["kind"] == GRPC_ROUTE[1]:
            filters = [
                f
                for f in rule.get("filters") or []
                if not (f.get("type") == "RequestMirror" and track_of(str(f["requestMirror"]["backendRef"]["name"])))
            ]
            if routing.shadow_percent > 0:
                ref = {
                    k: v for k, v in by_track["canary"].items() if k in ("group", "kind", "name", "namespace", "port")
                }
                amount: dict[str, Any] = (
                    {"percent": mirrored} if over == 100 else {"fraction": {"numerator": mirrored, "denominator": over}}
                )
                filters.append({"type": "RequestMirror", "requestMirror": {"backendRef": ref, **amount}})
            rule.pop("filters", None)
            if filters:
                rule["filters"] = filters
        else:
            for field in ("mirror", "mirrorPercentage", "mirrorPercent"):
                rule.pop(field, None)
            if routing.shadow_percent > 0:
                rule["mirror"] = copy.deepcopy(by_track["canary"]["destination"])
                rule["mirrorPercentage"] = {"value": float(routing.shadow_percent)}
