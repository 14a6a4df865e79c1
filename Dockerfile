# RecGPT recall service (CPU). Build: docker build -t recgpt .   Run: see docker-compose.yml / docs/service.md
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    RECGPT_BUNDLE=/data/bundle RECGPT_SHADOW_LOG=/data/shadow/shadow.jsonl RECGPT_DATA_DIR=/data/datasets

WORKDIR /app
# NOTE: CPU torch first, from the PyTorch CPU index, pinned as in pyproject.toml: installing the project
# first would pull the multi-GB CUDA wheel from PyPI.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

COPY pyproject.toml ./
COPY model ./model
COPY index ./index
COPY service ./service
COPY bench ./bench
RUN pip install . && useradd --create-home --uid 10001 recgpt && mkdir -p /data && chown recgpt /data

USER recgpt
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
CMD ["sh", "-c", "recgpt serve \"$RECGPT_BUNDLE\" --host 0.0.0.0 --port 8000"]
