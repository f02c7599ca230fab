# traefik (the Docker library image), rebuilt from the Traefik Go module for
# hosts without a registry (deploy/e2e/images.sh builds the context):
# /usr/local/bin/traefik, the library image's /entrypoint.sh and CMD, CA
# certificates and tzdata, with a static busybox in place of Alpine. Like the
# library image it defines no user: compose.yaml sets one.
FROM scratch
COPY rootfs/ /
EXPOSE 80
ENTRYPOINT ["/entrypoint.sh"]
CMD ["traefik"]
