"""`validate`: stage a candidate with its warm-up file, serve it in a real model server, and judge it."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from detx.components import warmup
from detx.components.infra_validator import probe
from detx.components.infra_validator.model_server import ServerProcess, choose
from detx.components.infra_validator.options import InfraValidatorOptions
from detx.components.infra_validator.report import InfraReport
from detx.components.infra_validator.server_process import ServerFailed
from detx.components.model_store import copy_tree

PROGRESS = logging.getLogger("detx.progress")
# The name the staged model is served under; requests address it.
MODEL_NAME = "candidate"
_VERSION = 1


def stage(model_dir: str, requests: Sequence[predict_pb2.PredictRequest], base_path: str) -> str:
    """Copies the SavedModel to `<base_path>/1` and writes the warm-up file into it; returns that directory."""
    staged = os.path.join(base_path, str(_VERSION))
    copy_tree(model_dir, staged)
    warmup.write(warmup.path_in(staged), requests)
    return staged


def apply_budgets(report: InfraReport, options: InfraValidatorOptions) -> InfraReport:
    """The report judged against the budgets of `options`: not blessed, with reasons, when a figure is over one."""
    reasons = []
    if options.max_p99_ms and report.p99_ms is not None and report.p99_ms > options.max_p99_ms:
        reasons.append(
            f"p99 latency {report.p99_ms:.0f} ms at concurrency {options.concurrency} is above "
            f"infra_validator.max_p99_ms {options.max_p99_ms:g}"
        )
    if options.max_memory_mb and report.peak_memory_mb is not None and report.peak_memory_mb > options.max_memory_mb:
        reasons.append(
            f"the server's peak memory {report.peak_memory_mb:.0f} MB is above "
            f"infra_validator.max_memory_mb {options.max_memory_mb:g}"
        )
    if not reasons:
        return report
    return InfraReport(**{**report.to_dict(), "blessed": False, "reasons": report.reasons + reasons})


def validate(
    model_dir: str, examples: Sequence[bytes], options: InfraValidatorOptions, workdir: str
) -> tuple[InfraReport, str]:
    """Serves `model_dir` in a model server and checks it against the in-process model and the budgets.

    Args:
        model_dir: the candidate SavedModel.
        examples: serialized eval-split tf.Examples (the first `options.examples` are used).
        options: server, load and budgets.
        workdir: an empty local directory for the staged model base path.

    Returns:
        The report, and the staged model (the candidate plus its warm-up file), which is what gets pushed.
    """
    requests = warmup.build(examples[: options.examples], MODEL_NAME)
    signatures = sorted({r.model_spec.signature_name for r in requests})
    base = os.path.join(workdir, MODEL_NAME)
    staged = stage(model_dir, requests, base)
    figures: dict[str, object] = {
        "signatures": signatures,
        "warmup_records": len(requests),
        "budgets": options.budgets(),
        "concurrency": options.concurrency,
    }
    try:
        server = choose(options.server)
    except ServerFailed as e:
        return InfraReport(blessed=False, reasons=[str(e)], **figures), staged  # type: ignore[arg-type]
    PROGRESS.info("infra validation: starting %s with the candidate and %d warm-up requests", server, len(requests))
    reasons: list[str] = []
    with ServerProcess(server, base, MODEL_NAME) as process:
        figures["server"] = server
        try:
            figures["load_seconds"] = process.wait_available(_VERSION, options.max_load_seconds)
        except ServerFailed as e:
            reasons.append(f"the model server did not load the candidate: {e}")
        if not reasons:
            answers = probe.served(process.channel, requests)
            reasons.extend(error for error in answers.errors if error)
        if not reasons:
            expected = probe.in_process(tf.saved_model.load(staged), requests)
            reasons.extend(error for error in expected.errors if error)
            figures["max_abs_diff"] = probe.largest_difference(expected, answers)
            for request, want, got in zip(requests, expected.outputs, answers.outputs, strict=True):
                if want is not None and got is not None:
                    differs = probe.difference(want, got, options.tolerance)
                    if differs:
                        reasons.append(f"{probe.describe(request)}: served answer differs from in-process: {differs}")
                        break
        if not reasons:
            latency = probe.load(process.channel, requests, options.load_requests, options.concurrency)
            figures.update(
                first_request_ms=latency.first_ms,
                p50_ms=latency.p50_ms,
                p99_ms=latency.p99_ms,
                requests=latency.requests,
            )
            if latency.errors:
                reasons.append(f"{latency.errors} of {options.load_requests} requests failed under load")
        figures["peak_memory_mb"] = process.peak_rss / 2**20
    report = InfraReport(blessed=not reasons, reasons=reasons, **figures)  # type: ignore[arg-type]
    return apply_budgets(report, options), staged
