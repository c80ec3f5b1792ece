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

# The runtime file system, distroless-style: the two binaries, exactly the
# shared libraries they link (ldd; a new dependency needs no edit here) and
# the loader, CA certificates, time zones, and a passwd entry for uid 65532.
# No shell, no package manager, no setuid file: nothing to run but ours.
# The two --version runs in a chroot fail the build, not the pod, if a
# shared library is missing.
RUN set -eu; \
    mkdir -p /rootfs/usr/local/bin /rootfs/etc/ssl/certs /rootfs/usr/share /rootfs/tmp; \
    install -m 0755 /out/campaign-gateway /out/campaignctl /rootfs/usr/local/bin/; \
    for lib in $(ldd /out/campaign-gateway /out/campaignctl \
                 | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*[^:]$/ {print $1}' | sort -u); do \
      mkdir -p "/rootfs$(dirname "$lib")"; \
      cp -L "$lib" "/rootfs$lib"; chmod 0644 "/rootfs$lib"; \
      echo "$lib"; \
    done > /out/libraries; \
    chmod 0755 /rootfs/lib64/ld-linux-*.so.*; \
    echo "libraries:" $(cat /out/libraries); \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/; \
    cp -r /usr/share/zoneinfo /rootfs/usr/share/; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin\n' > /rootfs/etc/passwd; \
    printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group; \
    printf 'passwd: files\ngroup: files\nhosts: files dns\n' > /rootfs/etc/nsswitch.conf; \
    chmod 1777 /rootfs/tmp; \
    chroot /rootfs /usr/local/bin/campaignctl --version; \
    chroot /rootfs /usr/local/bin/campaign-gateway --version; \
    ! find /rootfs -perm /6000 -type f | grep .

############################ runtime ############################
FROM scratch AS runtime

COPY --from=build /rootfs/ /

ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="campaign-gateway" \
      org.opencontainers.image.description="gRPC gateway to Connyline's SMS campaign REST API (CampaignService), with campaignctl" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="scratch" \
      org.opencontainers.image.licenses="UNLICENSED"

# The same numeric uid/gid as the Deployment's securityContext (65532 = "nonroot").
USER 65532:65532
WORKDIR /
# 50051: gRPC (CampaignService, grpc.health.v1, reflection); 9090: Prometheus /metrics.
EXPOSE 50051 9090
# No shell in the image: probes use gRPC health, a manual check
#   campaignctl --addr=127.0.0.1:50051 health
ENTRYPOINT ["/usr/local/bin/campaign-gateway"]
