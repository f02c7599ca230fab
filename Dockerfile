# hyhome as a FROM-scratch image: one static binary, no shell, no package
# manager, a non-root user. Build the binary first (no base image needs to be
# pulled, so this works on machines without registry access):
#
#   make image        # = CGO_ENABLED=0 go build -o bin/hyhome ./cmd/hyhome && docker build -t hyhome:<release> .
#
# With a registry at hand, Dockerfile.build compiles inside a Go image instead.
FROM scratch
COPY bin/hyhome /hyhome
# Writable state for `hyhome ship` (its durable queue), owned by the user the
# image runs as, so that a named volume mounted there starts out writable.
COPY --chown=65532:65532 bin/rootfs/ /
# 65532 is the conventional "nonroot" UID/GID of distroless images; there is
# no /etc/passwd in scratch, so the numeric form is what the engine resolves.
USER 65532:65532
ENTRYPOINT ["/hyhome"]
CMD ["--help"]
