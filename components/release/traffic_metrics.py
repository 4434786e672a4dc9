"""Names and label values of `detx serve`'s progressive-delivery metrics (issue 16): one home for both sides.

The model server registers them (serving/model_server/metrics.py) and
`detx rollout` reads a local server's /metrics through them
(components/release/rollout/local.py). They live here, beside the traffic
split they describe, so that the rollout never imports the serving layer.
prometheus_client exposes a Counter named `X` as the sample `X_total`, and a
Histogram `X` as `X_bucket`, `X_sum` and `X_count`.
"""

from __future__ import annotations

# Each Predict answered by a version: labels model, version, role, code (the gRPC code's name).
ANSWERS = "detx_serving_answers"
# The model's time for each answered request (role shadow: the mirrored run's own time): model, version, role.
ANSWER_LATENCY = "detx_serving_answer_latency_seconds"
# Each answered image's top detection score (score_profile.image_profile): model, version, role.
TOP_SCORE = "detx_serving_top_score"
# Each mirrored request: model, stable, candidate, outcome (OUTCOMES).
SHADOW_REQUESTS = "detx_serving_shadow_requests"
# Detections of compared requests, matched one to one: model, stable, candidate, kind (KINDS).
SHADOW_DETECTIONS = "detx_serving_shadow_detections"
# |score difference| of each matched pair: model, stable, candidate.
SHADOW_SCORE_DIFFERENCE = "detx_serving_shadow_score_difference"
# The traffic split in force (none while the version policy alone decides): model, stable, candidate
# ("" when none), share ("canary" | "shadow"); the value is the percent. A rollout can check that the
# server follows the split it wrote before it judges counts.
SPLIT = "detx_serving_traffic_split_percent"
# Mirrored requests handed over and not yet recorded (how far the mirror is behind): model.
SHADOW_PENDING = "detx_serving_shadow_pending"

# Roles of an answer: the stable version answering a client, the candidate answering a client
# (the canary share, or a request naming it), the candidate on a mirrored request.
ROLE_STABLE, ROLE_CANARY, ROLE_SHADOW = "stable", "canary", "shadow"
ROLES = (ROLE_STABLE, ROLE_CANARY, ROLE_SHADOW)
# Outcomes of a mirrored request: compared with stable's answer; the candidate failed on it;
# dropped because the mirror queue was full (mirroring never slows the request path).
OUTCOME_COMPARED, OUTCOME_FAILED, OUTCOME_DROPPED = "compared", "failed", "dropped"
OUTCOMES = (OUTCOME_COMPARED, OUTCOME_FAILED, OUTCOME_DROPPED)
KIND_MATCHED, KIND_ONLY_STABLE, KIND_ONLY_CANDIDATE = "matched", "only_stable", "only_candidate"
KINDS = (KIND_MATCHED, KIND_ONLY_STABLE, KIND_ONLY_CANDIDATE)
