"""The rollout controller: takes a candidate through shadow -> canary -> full, or rolls it back, printing why.

One step reads the signal source, subtracts the counts recorded when the
stage started (`criteria.subtract`), and judges the difference
(`criteria.judge`): hold, pass (the next stage's split is applied, or the
candidate is promoted) or fail (rolled back). Each decision is printed with
its figures, appended to the state (`state.py`) and recorded in the
candidate's lineage under "rollout".

- Promotion: the split becomes the candidate alone (a pin, so a version pushed
  meanwhile still waits for its own rollout); the old stable stays a complete
  version that `detx models rollback` can return to.
- Rollback: the split becomes stable alone first (no request is sent to the
  candidate any more), then the candidate's lineage records why and it moves
  to `.retired/`, as `detx models reject` does; its number is never reused.

Every write is idempotent and the state is written last, so a command killed
between two writes repeats the step when it is started again.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from detx.components.model_store import RETIRED_DIR, ModelStore
from detx.components.release.rollout import criteria
from detx.components.release.rollout.lineage import LINEAGE_KEY, record_lineage
from detx.components.release.rollout.options import RolloutOptions
from detx.components.release.rollout.signals import SignalError, SignalSource, Target
from detx.components.release.rollout.splits import describe_split, stage_split
from detx.components.release.rollout.state import (
    ABORTED,
    PROMOTED,
    ROLLED_BACK,
    RolloutState,
    counts_from_json,
    counts_to_json,
    now,
    read_state,
    write_state,
)
from detx.components.release.traffic import TrafficSplit


class RolloutError(RuntimeError):
    """A rollout command was refused; the message says why and what to do."""


@dataclasses.dataclass
class Rollout:
    """The rollouts of one push destination, applied to `target` and judged on `source`.

    Attributes:
        store: the push destination (where the state, the versions and their lineage are).
        target: where splits are applied (`LocalTarget`, `KubernetesTarget`).
        source: where the counts come from (`ServerMetricsSource`, `PrometheusSource`).
        say: prints a decision or a progress line.
        sleep: waits between readings (tests pass their own).
        retire: move a rolled-back candidate to `.retired/` at once. True where the split takes effect
            when it is written (a local `detx serve` re-reads it); False where it takes effect later
            (a Kubernetes overlay until `kubectl apply -k`): the cluster may still route to the
            candidate, so it stays in place, its lineage says it was rolled back, and no rollout starts it.
    """

    store: ModelStore
    target: Target
    source: SignalSource
    say: Callable[[str], None] = print
    sleep: Callable[[float], None] = time.sleep
    retire: bool = True

    def state(self) -> RolloutState | None:
        """The last rollout (in progress or ended), or None."""
        return read_state(self.store.root)

    def active(self) -> RolloutState:
        """The rollout in progress.

        Raises:
            RolloutError: none is.
        """
        state = self.state()
        if state is None or not state.active:
            last = "" if state is None else f" (the last one: version {state.candidate} {state.stage})"
            raise RolloutError(f"no rollout in progress in {self.store.root}{last}; `detx rollout start VERSION`")
        return state

    # Starting -------------------------------------------------------------

    def start(
        self, candidate: int, overrides: Mapping[str, Any] | None = None, stable: int | None = None
    ) -> RolloutState:
        """Starts rolling out `candidate`, or continues its rollout in progress.

        Args:
            candidate: a complete version (approved, where approval is required).
            overrides: `RolloutOptions` fields to change from the defaults; a rollout in progress keeps
                the options it started with (overrides that differ are refused).
            stable: the version it is compared with (None: the version served now).

        Raises:
            RolloutError: another rollout is in progress, different options for one in progress, or
                a candidate or stable version that cannot be rolled out (the message says what to do).
            ValueError: an option out of range (`RolloutOptions` says which).
        """
        overrides = dict(overrides or {})
        existing = self.state()
        if existing is not None and existing.active:
            return self._resume(existing, candidate, overrides, stable)
        options = RolloutOptions(**overrides)
        stable = self._check_versions(candidate, stable)
        stage = options.stages()[0]
        split = stage_split(stage, stable, candidate, options)
        # Read before anything is written: an unreadable source changes nothing.
        baseline = self.source.counts(split)
        changed = self.target.apply(split)
        at = now()
        state = RolloutState(candidate, stable, stage, at, at, counts_to_json(baseline), options.to_json())
        self._decide(state, "started", f"{stage} stage", changed=changed)
        return state

    def _resume(
        self, state: RolloutState, candidate: int, overrides: dict[str, Any], stable: int | None
    ) -> RolloutState:
        if state.candidate != candidate:
            raise RolloutError(
                f"version {state.candidate} is being rolled out ({state.stage} stage since {state.stage_started}); "
                f"one rollout at a time: finish it with `detx rollout promote` or `detx rollout abort --reason TEXT` "
                f"before starting version {candidate}"
            )
        differ = {k: v for k, v in overrides.items() if state.options.get(k) != v}
        if differ:
            started = ", ".join(f"{k}={state.options.get(k)}" for k in differ)
            raise RolloutError(
                f"the rollout of version {candidate} started with {started}; a rollout keeps its criteria: "
                "continue it without those options, or abort it and start again"
            )
        if stable is not None and stable != state.stable:
            raise RolloutError(f"the rollout of version {candidate} compares it with version {state.stable}")
        self.say(
            f"Continuing the rollout of version {candidate} against stable {state.stable}: {state.stage} stage "
            f"since {state.stage_started}"
        )
        return state

    def _check_versions(self, candidate: int, stable: int | None) -> int:
        complete = self.store.complete_versions()
        if candidate not in complete:
            if candidate in self.store.pending_versions():
                raise RolloutError(
                    f"version {candidate} is waiting for approval (release.approval: required comes first): "
                    f"`detx models approve {candidate} --by NAME --reason TEXT`, then `detx rollout start {candidate}`"
                )
            where = "retired" if candidate in self.store.retired_versions() else "not a complete version"
            available = ", ".join(map(str, complete)) or "none"
            raise RolloutError(f"version {candidate} is {where} in {self.store.root} (complete: {available})")
        ended = self.store.lineage(candidate).get(LINEAGE_KEY, {})
        if ended.get("state") in (ROLLED_BACK, ABORTED):
            raise RolloutError(
                f"version {candidate} was {ended['state']} at {ended.get('finished')}: {ended.get('reason')}; "
                "a new candidate needs a new push"
            )
        if stable is None:
            stable = self.store.serving_version()
            if stable == candidate:
                raise RolloutError(
                    f"version {candidate} is the version served now (no traffic split pins an older one: "
                    "release.rollout is not progressive, or it was promoted); name the version to compare it "
                    "with: --stable VERSION"
                )
        if stable is None or stable not in complete:
            raise RolloutError(f"the stable version {stable} is not a complete version in {self.store.root}")
        if stable == candidate:
            raise RolloutError(f"the candidate and the stable version are both {candidate}; name another")
        return stable

    # Stepping ---------------------------------------------------------------

    def judge(self, state: RolloutState) -> tuple[criteria.Verdict, bool]:
        """The stage's verdict on the counts now, acting on nothing; and whether the server restarted.

        After a restart of the model server its counters begin again, below
        the stage's baseline: the stage is then judged on what came since.

        Raises:
            SignalError: the source cannot be read.
        """
        options = RolloutOptions.from_json(state.options)
        counts = self.source.counts(stage_split(state.stage, state.stable, state.candidate, options))
        delta = criteria.subtract(counts, counts_from_json(state.baseline))
        restarted = criteria.went_back(delta)
        if restarted:
            delta = criteria.subtract(counts, criteria.NOTHING_YET)
        return criteria.judge(state.stage, delta, options, self.source.describe()), restarted

    def step(self, state: RolloutState) -> RolloutState:
        """Reads the signals once and holds, passes or fails the stage.

        Raises:
            SignalError: the source cannot be read.
            RolloutError: the split applied is not the stage's (someone changed it).
        """
        options = RolloutOptions.from_json(state.options)
        split = stage_split(state.stage, state.stable, state.candidate, options)
        if state.candidate not in self.store.complete_versions():
            return self._roll_back(state, f"version {state.candidate} is gone from {self.store.root}", ROLLED_BACK)
        current = self.target.current()
        if current != split:
            raise RolloutError(
                f"{self.target.describe()} holds {describe_split(current)}, not the {state.stage} stage's "
                f"{describe_split(split)}: it was changed by hand; settle the rollout with `detx rollout promote` "
                "or `detx rollout abort --reason TEXT`"
            )
        verdict, restarted = self.judge(state)
        if restarted:
            self.say(f"The counts went back (the model server restarted): the {state.stage} stage counts afresh")
            state.baseline = counts_to_json(criteria.NOTHING_YET)
            write_state(self.store.root, state)
        if verdict.outcome == criteria.HOLD:
            self.say(f"{state.stage}: {verdict.judged} of {verdict.needed} requests judged; holding")
            return state
        if verdict.outcome == criteria.FAIL:
            return self._roll_back(state, f"{state.stage} stage failed: {verdict.reason}", ROLLED_BACK, verdict)
        stages = options.stages()
        position = stages.index(state.stage)
        self._decide(state, "passed", f"{state.stage} stage on {verdict.judged} requests", verdict=verdict)
        if position + 1 == len(stages):
            return self._promote(state, f"passed the {' and '.join(stages)} stages")
        return self._next_stage(state, stages[position + 1], options)

    def _next_stage(self, state: RolloutState, stage: str, options: RolloutOptions) -> RolloutState:
        split = stage_split(stage, state.stable, state.candidate, options)
        # The new stage judges from here; read before the split changes, as at the start.
        counts = self.source.counts(split)
        changed = self.target.apply(split)
        state.stage, state.stage_started, state.baseline = stage, now(), counts_to_json(counts)
        self._decide(state, "started", f"{stage} stage", changed=changed)
        return state

    def follow(self, state: RolloutState, once: bool = False) -> RolloutState:
        """Steps until the rollout ends (or once), reading the signals every `poll_seconds`.

        While following, an unreadable source (a model server restarting) is
        reported and read again at the next poll; with `once` it is an error.
        """
        poll = RolloutOptions.from_json(state.options).poll_seconds
        unreadable = ""
        while state.active:
            if not once:  # one step reads at once; following waits a poll between readings
                self.sleep(poll)
            try:
                state = self.step(state)
            except SignalError as e:
                if once:
                    raise
                if str(e) != unreadable:
                    self.say(f"Cannot read the signals ({e}); trying again every {poll:g} s")
                unreadable = str(e)
                continue
            unreadable = ""
            if once:
                break
        return state

    # Ending -----------------------------------------------------------------

    def promote(self, reason: str) -> RolloutState:
        """Skips the rollout in progress to full traffic by hand."""
        return self._promote(self.active(), "by hand" + (f": {reason}" if reason.strip() else ""))

    def abort(self, reason: str) -> RolloutState:
        """Rolls the rollout in progress back by hand."""
        if not reason.strip():
            raise RolloutError("an abort needs a reason (--reason): it is recorded in the candidate's lineage")
        return self._roll_back(self.active(), f"aborted by hand: {reason}", ABORTED)

    def _promote(self, state: RolloutState, reason: str) -> RolloutState:
        changed = self.target.apply(TrafficSplit(state.candidate))
        state.stage, state.finished, state.reason = PROMOTED, now(), reason
        self._decide(state, PROMOTED, reason, changed=changed)
        return state

    def _roll_back(
        self, state: RolloutState, reason: str, ending: str, verdict: criteria.Verdict | None = None
    ) -> RolloutState:
        # Traffic first: from here no request goes to the candidate, then it may leave.
        changed = self.target.apply(TrafficSplit(state.stable))
        state.stage, state.finished, state.reason = ending, now(), reason
        self._decide(state, ending, reason, changed=changed, verdict=verdict, persist=False)
        source = self.store.path(state.candidate)
        if self.retire and tf.io.gfile.isdir(source):
            retired = os.path.join(self.store.root, RETIRED_DIR, str(state.candidate))
            self.store.move(source, retired)
            self.say(f"Retired version {state.candidate} to {retired}")
        elif tf.io.gfile.isdir(source):
            self.say(
                f"Version {state.candidate} stays in {self.store.root} until the split above is applied (the "
                f"candidate may take traffic until then); it is pinned out and its lineage says {ending}"
            )
        write_state(self.store.root, state)
        return state

    def _decide(
        self,
        state: RolloutState,
        decision: str,
        what: str,
        changed: str = "",
        verdict: criteria.Verdict | None = None,
        persist: bool = True,
    ) -> None:
        """Prints a decision, records it in the candidate's lineage and the state (last; not if not `persist`)."""
        record: dict[str, Any] = {"at": now(), "stage": state.stage, "decision": decision, "what": what}
        lines = [f"[{record['at']}] version {state.candidate} (stable {state.stable}): {decision} {what}"]
        if verdict is not None:
            record["judged"] = verdict.judged
            record["figures"] = [f.line() for f in verdict.figures]
            lines.extend(f"  {line}" for line in record["figures"])
        if changed:
            record["traffic"] = changed
            lines.append(f"  traffic: {changed}")
        self.say("\n".join(lines))
        state.decisions.append(record)
        record_lineage(self.store, state, self.source.describe(), self.target.describe())
        if persist:
            write_state(self.store.root, state)
