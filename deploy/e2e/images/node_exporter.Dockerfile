# prom/node-exporter, rebuilt from the node_exporter Go module for hosts
# without a registry (deploy/e2e/images.sh builds the context): upstream's
# path, user and entrypoint, on a static busybox.
FROM scratch
COPY rootfs/ /
EXPOSE 9100
USER nobody
ENTRYPOINT ["/bin/node_exporter"]
