#!/bin/sh
# The Docker library traefik image's entrypoint, reproduced for the image
# deploy/e2e/images.sh builds: options alone run traefik with them, a Traefik
# subcommand runs through traefik, anything else is executed as it is.
set -e

# first arg is `-f` or `--some-option`
if [ "${1#-}" != "$1" ]; then
	set -- traefik "$@"
fi

# if our command is a valid Traefik subcommand, let's invoke it through Traefik instead
# (this allows for "docker run traefik version", etc)
if traefik "$1" --help >/dev/null 2>&1; then
	set -- traefik "$@"
else
	echo "= '$1' is not a Traefik command: assuming shell execution." 1>&2
fi

exec "$@"
