# prom/prometheus, rebuilt from the Prometheus Go module for hosts without a
# registry (deploy/e2e/images.sh builds the context): the upstream
# Dockerfile's paths, user, working directory, volume, entrypoint and default
# flags, on a static busybox instead of quay.io/prometheus/busybox.
FROM scratch
COPY rootfs/ /
# /etc/prometheus and /prometheus owned by nobody (upstream: chown -R
# nobody:nobody, chmod g+w /prometheus), so that a named volume mounted on
# /prometheus starts out writable by the image's user. data/ holds only the
# prometheus directory (mode 0775): / itself keeps its owner.
COPY --chown=65534:65534 config/ /etc/prometheus/
COPY --chown=65534:65534 data/ /
WORKDIR /prometheus
USER nobody
EXPOSE 9090
VOLUME ["/prometheus"]
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
