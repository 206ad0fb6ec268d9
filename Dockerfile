# syntax=docker/dockerfile:1
#
# Images of the storage node and of the operator, from one build:
#   docker build --target node     -t dynamo:0.1.0 .           (the default target)
#   docker build --target operator -t dynamo-operator:0.1.0 .
#
# Both run as the non-root user 10001 on a read-only root filesystem: the node
# writes only to /var/lib/dynamo (a volume) and /tmp; the operator only to /tmp.
# scripts/check-packaging.sh checks this file statically (no Docker engine runs
# in CI here).

ARG DEBIAN_RELEASE=bookworm

# ---- build: scripts/install-deps.sh's BUILD_PACKAGES (not its test-only lists) ---------
FROM debian:${DEBIAN_RELEASE} AS build
ARG BUILD_TYPE=RelWithDebInfo
ARG JOBS=""
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config git \
      libprotobuf-dev protobuf-compiler libgrpc++-dev protobuf-compiler-grpc \
      librocksdb-dev libcpprest-dev libssl-dev \
      libgtest-dev libgmock-dev librapidcheck-dev \
      libhiredis-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . /src
# A plain configure (no presets), then only the three shipped binaries.
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE="${BUILD_TYPE}" -DDYNAMO_WERROR=OFF \
 && cmake --build /build -j "${JOBS:-$(nproc)}" --target dynamo-node dynamoctl dynamo-operator \
 && mkdir -p /out/bin \
 && for t in dynamo-node dynamoctl dynamo-operator; do \
      f="$(find /build -type f -name "$t" -perm -u+x | head -n 1)"; \
      test -n "$f" || { echo "binary $t not found under /build" >&2; exit 1; }; \
      install -m 0755 "$f" "/out/bin/$t"; \
      strip --strip-debug "/out/bin/$t"; \
    done

# ---- runtime: bookworm-slim with only the shared libraries the binaries load --------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libgrpc++1.51 libgrpc29 libprotobuf32 libabsl20220623 \
      librocksdb7.8 libcpprest2.10 libssl3 libjemalloc2 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && ln -s "$(dpkg -L libjemalloc2 | grep '/libjemalloc\.so\.2$')" /usr/local/lib/libjemalloc.so.2 \
 && groupadd --system --gid 10001 dynamo \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/dynamo --no-create-home \
      --shell /usr/sbin/nologin dynamo \
 && mkdir -p /var/lib/dynamo \
 && chown 10001:10001 /var/lib/dynamo \
 && chmod 0750 /var/lib/dynamo
ENV TMPDIR=/tmp
USER 10001:10001
WORKDIR /var/lib/dynamo

# ---- operator -------------------------------------------------------------------------
FROM runtime AS operator
COPY --from=build --chown=0:0 /out/bin/dynamo-operator /usr/local/bin/dynamo-operator
EXPOSE 8080
# Kubernetes ignores HEALTHCHECK (the chart's probes use /healthz and /readyz);
# this is for plain `docker run`. bash's /dev/tcp avoids shipping curl.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/dynamo-operator"]
CMD ["--metrics-port=8080"]

# ---- node (the default target: the last stage) -----------------------------------------
FROM runtime AS node
COPY --from=build --chown=0:0 /out/bin/dynamo-node /out/bin/dynamoctl /usr/local/bin/
# jemalloc instead of glibc's malloc: 9-27% less CPU per operation, and less
# growth with the data (bench/RESULTS.md, F13). Preloaded rather than linked,
# so that an empty LD_PRELOAD gives glibc back (libfaketime needs that).
ENV LD_PRELOAD=/usr/local/lib/libjemalloc.so.2
VOLUME /var/lib/dynamo
# 7000: gRPC (KV, replica, admin); 9100: HTTP /metrics /healthz /readyz.
EXPOSE 7000 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9100 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/dynamo-node"]
CMD ["--listen=0.0.0.0:7000", "--http=0.0.0.0:9100", "--data-dir=/var/lib/dynamo"]
