# deploy/deploy.mk: operations of the hy-home reference stack.
#
# Included from the root Makefile (`include deploy/deploy.mk`), which
# provides GO and the `image` target (builds $(HYHOME_IMAGE) from the root
# Dockerfile). Targets:
#
#   make up             create missing secrets and deploy/.env, build the
#                       image, `docker compose up -d` (ACME if
#                       HYHOME_ACME_EMAIL is set, else self-signed TLS)
#   make down           stop and remove the containers (volumes are kept)
#   make verify-config  every static check of the stack's files
#   make stack-deploy   the same stack on Docker Swarm (deploy/README.md)
#   make stack-rm       remove it from the swarm
#   make e2e            the stack on this engine, Compose then Swarm, proven
#                       by hyhome verify and fault injection
#                       (deploy/e2e/e2e.sh; E2E_MODE=compose|swarm|all)
#
# The recipes need bash (the root Makefile sets SHELL := /bin/bash).

DEPLOY_DIR         ?= deploy
HYHOME_PROJECT     ?= hyhome
HYHOME_IMAGE       ?= $(IMAGE)
# The documented minimum host; `hyhome lint` checks NFR-RES-01 against it.
HYHOME_HOST_MEMORY ?= 8GiB
GO                 ?= go
DOCKER             ?= docker
# Docker Compose v2. Set COMPOSE=docker-compose for a standalone v2 binary.
COMPOSE            ?= $(DOCKER) compose
PROMTOOL           ?= promtool
AMTOOL             ?= amtool

export HYHOME_IMAGE

DEPLOY_COMPOSE = $(COMPOSE) -p $(HYHOME_PROJECT) --project-directory $(DEPLOY_DIR) \
	-f $(DEPLOY_DIR)/compose.yaml $(if $(HYHOME_ACME_EMAIL),-f $(DEPLOY_DIR)/.overlays/acme.yaml)
DEPLOY_SWARM_FILES = -c $(DEPLOY_DIR)/compose.yaml -c $(DEPLOY_DIR)/.overlays/swarm.yaml
# The Traefik image compose.yaml pins, for the one-off ACME volume setup.
DEPLOY_TRAEFIK_IMAGE = $(shell sed -n 's/^ *image: *\(traefik:[^ ]*\).*/\1/p' $(DEPLOY_DIR)/compose.yaml)

.PHONY: up down verify-config deploy-env deploy-secrets deploy-acme-volume stack-deploy stack-rm e2e

up: image deploy-env deploy-secrets deploy-acme-volume
	$(DEPLOY_COMPOSE) up -d --remove-orphans
	@domain=$$(sed -n 's/^HYHOME_DOMAIN=//p' $(DEPLOY_DIR)/.env); \
	echo; \
	echo "Grafana       https://grafana.$$domain   admin / $(DEPLOY_DIR)/secrets/grafana_admin_password"; \
	echo "Prometheus    https://prometheus.$$domain"; \
	echo "Alertmanager  https://alertmanager.$$domain"; \
	echo "Traefik       https://traefik.$$domain   admin / $(DEPLOY_DIR)/secrets/traefik_dashboard_password"; \
	echo "(the last three share the basic-auth user; the certificate is self-signed unless HYHOME_ACME_EMAIL was set)"

down:
	$(DEPLOY_COMPOSE) down --remove-orphans

# deploy/.env holds the host-specific values compose interpolates. Keys
# already present are never changed: edit the file, or delete a line to
# have it recomputed. HYHOME_DOMAIN is taken from the environment the first
# time.
deploy-env:
	@set -euo pipefail; f=$(DEPLOY_DIR)/.env; touch "$$f"; chmod 0600 "$$f"; \
	add() { grep -q "^$$1=" "$$f" || { printf '%s=%s\n' "$$1" "$$2" >> "$$f"; echo "$$f: $$1=$$2"; }; }; \
	add HYHOME_DOMAIN "$${HYHOME_DOMAIN:-hyhome.localhost}"; \
	add HYHOME_HOST "$$(hostname)"; \
	add HYHOME_DOCKER_GID "$$(stat -c %g /var/run/docker.sock)"; \
	add HYHOME_DOCKER_ROOT "$$($(DOCKER) info --format '{{.DockerRootDir}}')"

# Missing secrets only; existing files are never overwritten (delete one to
# rotate it). HYHOME_SLACK_WEBHOOK_URL, if set, becomes the Slack secret.
deploy-secrets: deploy-env
	@domain=$$(sed -n 's/^HYHOME_DOMAIN=//p' $(DEPLOY_DIR)/.env); \
	$(GO) run ./$(DEPLOY_DIR)/tools/mksecrets -dir $(DEPLOY_DIR)/secrets -domain "$$domain"

# ACME storage must be writable by Traefik's UID (65080). A named volume
# starts root-owned, and no service of the stack may chown, so a throwaway
# container does it once, with CAP_CHOWN and nothing else.
deploy-acme-volume:
ifneq ($(HYHOME_ACME_EMAIL),)
	$(DOCKER) volume create hyhome-traefik-acme >/dev/null
	$(DOCKER) run --rm --network none --user 0:0 --cap-drop ALL --cap-add CHOWN \
		--security-opt no-new-privileges:true -v hyhome-traefik-acme:/acme \
		--entrypoint /bin/sh $(DEPLOY_TRAEFIK_IMAGE) -c 'chmod 0700 /acme && chown 65080:65080 /acme'
endif

# Static checks of everything under deploy/: compose (when the v2 CLI is
# installed; the Go test TestComposeConfig loads the same files with
# compose-go either way), the Swarm form, Prometheus and Alertmanager
# configuration and rule tests, hyhome lint (once it exists), and the Go
# tests that tie the files, the ADRs and the docs together.
verify-config:
	@set -euo pipefail; \
	if $(COMPOSE) version >/dev/null 2>&1; then \
	  echo "compose config"; $(DEPLOY_COMPOSE) config --quiet; \
	else echo "compose config: $(COMPOSE) not installed, skipped (TestComposeConfig covers it)"; fi
	$(DOCKER) stack config $(DEPLOY_SWARM_FILES) >/dev/null
	$(PROMTOOL) check config $(DEPLOY_DIR)/prometheus/prometheus.yml
	$(PROMTOOL) check rules $(DEPLOY_DIR)/prometheus/rules/*.yml
	$(PROMTOOL) test rules $(DEPLOY_DIR)/prometheus/tests/*.test.yml
	$(AMTOOL) check-config $(DEPLOY_DIR)/alertmanager/alertmanager.yml
	@set -euo pipefail; \
	if $(GO) run ./cmd/hyhome lint --help 2>/dev/null | grep -q 'hyhome lint'; then \
	  echo "hyhome lint -p $(HYHOME_PROJECT) --host-memory $(HYHOME_HOST_MEMORY) $(DEPLOY_DIR)/"; \
	  $(GO) run ./cmd/hyhome lint -p $(HYHOME_PROJECT) --host-memory $(HYHOME_HOST_MEMORY) $(DEPLOY_DIR)/; \
	else echo "hyhome lint: not built yet, skipped"; fi
	$(GO) test -count=1 -run 'TestComposeConfig|TestSwarmStackConfig|TestBaseline|TestMemoryBudget|TestExemptionsBackedByADRs|TestHyhomeLint' ./$(DEPLOY_DIR)/

# Swarm: one node labelled hy-home.infra=true runs the stack (see
# deploy/README.md for why). `docker stack deploy` does not read .env files,
# so deploy/.env is exported first.
stack-deploy: image deploy-env deploy-secrets
	@if [ -z "$$($(DOCKER) node ls -q --filter node.label=hy-home.infra=true 2>/dev/null)" ]; then \
	  echo "no swarm node labelled hy-home.infra=true: run 'docker node update --label-add hy-home.infra=true <node>'" >&2; exit 1; fi
	set -a; . ./$(DEPLOY_DIR)/.env; set +a; \
	$(DOCKER) stack deploy --resolve-image never $(DEPLOY_SWARM_FILES) $(HYHOME_PROJECT)

stack-rm:
	$(DOCKER) stack rm $(HYHOME_PROJECT)

# The stack on this engine, as users run it, with every figure in
# bin/e2e/report.md. Third-party images missing here are built from their Go
# modules and cached (deploy/e2e/images.sh); see deploy/README.md.
# The project image gets its own tag, so that a `make image` elsewhere on a
# shared engine cannot change it under a running e2e.
E2E_MODE  ?= all
E2E_IMAGE ?= hyhome:e2e
e2e: build
	$(MAKE) --no-print-directory image IMAGE=$(E2E_IMAGE)
	HYHOME_IMAGE=$(E2E_IMAGE) bash $(DEPLOY_DIR)/e2e/e2e.sh $(E2E_MODE)
