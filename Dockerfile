# klash-sync service image: `docker build -t klash-sync .` then see README "Deployment".
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY klash_sync ./klash_sync
# Exact versions from constraints.txt: the image's Python packages are the ones CI tested
# (the base image follows the python:3.11-slim tag).
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/klash-sync --create-home klash
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels klash-sync && rm -rf /wheels
COPY config/programme.toml /etc/klash-sync/programme.toml
ENV KLASH_HOST=0.0.0.0 \
    KLASH_PORT=8080 \
    KLASH_PROGRAMME=/etc/klash-sync/programme.toml \
    KLASH_STATE_DIR=/var/lib/klash-sync \
    PYTHONUNBUFFERED=1
USER klash
WORKDIR /var/lib/klash-sync
VOLUME ["/var/lib/klash-sync"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
CMD ["klash-sync", "run"]
