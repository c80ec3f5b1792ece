# campaign-gateway: gRPC in front of Connyline's REST API.
#
#   podman build --isolation=chroot --pull=never -t campaign-gateway:dev .   # see scripts/container-test.sh
#   docker build -t campaign-gateway:dev .                                  # anywhere with a registry
#
#   podman run --rm -p 50051:50051 -p 9090:9090 campaign-gateway:dev --sandbox   # never sends SMS
#   ... campaign-gateway:dev --upstream_url=https://connyline.net --account_code=ACME \
#         --token_file=/var/run/secrets/connyline/token --time_zone=Europe/Athens
#
# Every flag can also be set as CAMPAIGN_GATEWAY_<FLAG> in the environment
# (the flag wins); the token may come from CONNYLINE_TOKEN.

############################ build ############################
FROM docker.io/library/debian:bookworm AS build
# Marks this stage's layers, so scripts/container-test.sh can prune them.
LABEL io.connyline.campaign-gateway.stage=build

# The same install step as the README.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# The whole source tree (.dockerignore keeps out .git, build trees, deploy/ ...),
# so new CMake subdirectories need no edit here; only the two binaries are built.
COPY . .

# ccache (installed above, picked up by CMakeLists.txt) keeps its cache in a
# build cache mount, so a rebuild on the same machine only recompiles what changed.
RUN --mount=type=cache,target=/root/.cache/ccache \
    cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
 && cmake --build /build --target campaign-gateway campaignctl \
 && mkdir -p /out \
 && install -m 0755 -s /build/service/campaign-gateway /build/service/campaignctl /out/

# The runtime packages are derived from what the binaries really link
# (ldd -> owning Debian package), so a new library dependency needs no edit here.
RUN set -eu; \
    for lib in $(ldd /out/campaign-gateway /out/campaignctl | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do \
      real=$(readlink -f "$lib"); \
      dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null \
        || dpkg -S "/usr${real#/usr}" 2>/dev/null || dpkg -S "${real#/usr}" 2>/dev/null \
        || { echo "no Debian package owns $lib" >&2; exit 1; }; \
    done | cut -d: -f1 | sort -u > /out/runtime-packages; \
    echo "runtime packages:" $(cat /out/runtime-packages)

############################ runtime ############################
FROM docker.io/library/debian:bookworm-slim AS runtime

COPY --from=build /out/runtime-packages /tmp/runtime-packages
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      ca-certificates tzdata $(cat /tmp/runtime-packages) >/dev/null \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /tmp/runtime-packages

COPY --from=build /out/campaign-gateway /out/campaignctl /usr/local/bin/
# Fail the build, not the pod, if a shared library is missing.
RUN ! ldd /usr/local/bin/campaign-gateway /usr/local/bin/campaignctl | grep 'not found'

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="campaign-gateway" \
      org.opencontainers.image.description="gRPC gateway to Connyline's SMS campaign REST API (CampaignService), with campaignctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="docker.io/library/debian:bookworm-slim" \
      org.opencontainers.image.licenses="UNLICENSED"

# The same numeric uid/gid as the Deployment's securityContext (65532 = "nonroot").
USER 65532:65532
WORKDIR /
# 50051: gRPC (CampaignService, grpc.health.v1, reflection); 9090: Prometheus /metrics.
EXPOSE 50051 9090
ENTRYPOINT ["/usr/local/bin/campaign-gateway"]
