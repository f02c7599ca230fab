# prom/alertmanager, rebuilt from the Alertmanager Go module for hosts
# without a registry (deploy/e2e/images.sh builds the context): the upstream
# Dockerfile's paths, user, working directory, volume, entrypoint and default
# flags, on a static busybox. The web UI (npm-built, not in the module) is
# empty; the API, /metrics and notifications are Alertmanager's own.
FROM scratch
COPY rootfs/ /
# upstream: chown -R nobody:nobody /etc/alertmanager /alertmanager,
# chmod -R g+w /alertmanager. data/ holds only the alertmanager directory
# (mode 0775): / itself keeps its owner.
COPY --chown=65534:65534 config/ /etc/alertmanager/
COPY --chown=65534:65534 data/ /
USER nobody
EXPOSE 9093
VOLUME ["/alertmanager"]
WORKDIR /alertmanager
ENTRYPOINT ["/bin/alertmanager"]
CMD ["--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"]
