# hyhome-loki-standin: NOT Loki. The in-repo Loki test server
# (internal/lokitest) behind deploy/tools/loki-standin, for e2e runs on hosts
# where grafana/loki cannot be had. It serves Loki's push and query API on
# 3100 as the stack uses it and keeps everything in memory only.
FROM scratch
COPY rootfs/ /
USER 10001:10001
EXPOSE 3100
ENTRYPOINT ["/loki-standin"]
