# The user-code image: the gRPC code server, and every run and step pod on Kubernetes (deploy/k8s/values.yaml).
#   docker build -t registry.example.com/fashion-pipeline:0.1.0 .
# Layers go from the slowest-changing to the fastest, so a code change rebuilds only the last two:
#   Debian packages -> torch (about 3 GB of CUDA wheels) -> the other pinned deps -> the package.
# fashion_pipeline_tests/test_dockerfile.py checks that the pins here match pyproject.toml.
FROM python:3.11-slim-bookworm

# Debian's Chromium and its chromedriver (the scraper drives them; Selenium downloads nothing), and
# the libraries OpenCV's headless wheel loads.
RUN apt-get update \
 && apt-get install -y --no-install-recommends chromium chromium-driver fonts-dejavu-core libgl1 libglib2.0-0 \
 && rm -rf /var/lib/apt/lists/*

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1

# The CUDA build of torch: PyPI's Linux wheels carry the CUDA libraries (the same index and pins as
# pyproject.toml), so no driver toolkit is needed in the image, only the node's NVIDIA driver.
# Pinned here, not read from pyproject.toml, so that editing any other dependency keeps this layer.
ARG TORCH_VERSION=2.15.0
ARG TORCHVISION_VERSION=0.29.1
RUN pip install "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"

# Every other dependency, read from pyproject.toml itself, so the image cannot drift from it.
WORKDIR /opt/fashion_pipeline
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The package itself (its dependencies are all installed above).
COPY fashion_pipeline ./fashion_pipeline
RUN pip install --no-deps .

# Not root. DAGSTER_HOME is where the Helm chart mounts the instance's dagster.yaml; /data is the
# shared ReadWriteMany data root every pod mounts at the same path.
RUN useradd --create-home --uid 1000 dagster \
 && mkdir -p /opt/dagster/dagster_home /data \
 && chown -R dagster /opt/dagster /data
USER dagster
ENV DAGSTER_HOME=/opt/dagster/dagster_home \
    FASHION_PIPELINE_DATA=/data

# The gRPC code server. CMD, not ENTRYPOINT: the Helm chart and dagster-k8s start run and step pods
# with their own container args (`dagster api execute_run ...`), which replace CMD but would be
# appended to an ENTRYPOINT.
EXPOSE 3030
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "3030", "-m", "fashion_pipeline.definitions"]
