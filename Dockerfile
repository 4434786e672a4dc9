# The detx pipeline image: every Kubeflow Pipelines step runs it (see
# kfp_manifests/), and so do Beam workers on Dataflow or Flink
# (pipeline/configs/). Build and push it from the repository root:
#
#   docker build -t REGISTRY/detx-pipeline:TAG .
#   docker push REGISTRY/detx-pipeline:TAG
#
# Base: the official TFX 1.16 image, for its CUDA/cuDNN libraries (its
# Deep Learning VM base) that TensorFlow uses on GPU nodes. Its own Python is
# 3.10; detx is locked and tested on Python 3.11, so detx gets a 3.11
# virtualenv with exactly requirements/lock.txt, installed the way
# `make install` does (tests/pipeline/test_image.py checks that they agree).
ARG TFX_IMAGE=tensorflow/tfx:1.16.0
ARG BEAM_SDK_IMAGE=apache/beam_python3.11_sdk:2.72.0
# The TF Serving that serves detx in production (serving/k8s/base): the
# InfraValidator step loads every candidate in this very binary.
ARG TF_SERVING_IMAGE=tensorflow/serving:2.16.1

FROM ${BEAM_SDK_IMAGE} AS beam
FROM ${TF_SERVING_IMAGE} AS serving

FROM ${TFX_IMAGE}

# Beam's worker boot program, matching the locked apache-beam (Dataflow and
# Flink workers start it; the TFX image's copy belongs to its older Beam).
COPY --from=beam /opt/apache/beam /opt/apache/beam
# The CPU build of the model server (the InfraValidator checks loading,
# answers and latency on the step's CPU; GPU serving uses the -gpu image).
COPY --from=serving /usr/bin/tensorflow_model_server /usr/bin/tensorflow_model_server

ENV UV_VERSION=0.13.9 \
    PYTHON_VERSION=3.11.7 \
    UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/detx-venv
# `python` in KFP's step commands and in Beam's boot is detx's interpreter.
ENV PATH=/opt/detx-venv/bin:${PATH}

RUN python3 -m pip install --no-cache-dir uv==${UV_VERSION} \
 && uv venv --python ${PYTHON_VERSION} /opt/detx-venv \
 && chmod -R a+rX /opt/python /opt/detx-venv

# detx's source lives in /opt/detx-src (Beam steps get --setup_file=/opt/detx-src/setup.py);
# it is installed into the venv like any package.
WORKDIR /opt/detx-src
COPY requirements/lock.txt requirements/lock.txt
RUN uv pip install --python /opt/detx-venv/bin/python -r requirements/lock.txt \
 && uv pip install --python /opt/detx-venv/bin/python --no-deps tfx==1.16.0 ml-pipelines-sdk==1.16.0

COPY setup.py README.md ./
COPY detx detx
COPY pipeline pipeline
COPY components components
COPY serving serving
RUN uv pip install --python /opt/detx-venv/bin/python --no-deps /opt/detx-src

# Steps run from an empty working directory. Python puts the working directory
# first on sys.path, so from /opt/detx-src `import detx` would find the source's
# detx/ folder, which lacks detx.components (setup.py maps the top-level folders
# into the package), and every step would fail to import.
WORKDIR /workspace
RUN python -c "import detx.components.trainer.executor, detx.pipeline.pipeline, detx.pipeline.kfp_entrypoint; print('detx image ok')"

# The entrypoint stays Beam's boot (Dataflow/Flink workers need it); KFP
# steps give their own command (python -m tfx...kubeflow_v2_run_executor).
ENTRYPOINT ["/opt/apache/beam/boot"]
