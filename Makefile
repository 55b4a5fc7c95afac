# Container images, the Helm chart and the kind end-to-end run.
# (The project's test command is `bash hack/test.sh`; see README.md.)
#
#   make images       build flinklet-runtime and flinklet-operator and smoke-test them
#   make helm-lint    helm lint + the chart's unit tests (helm template, rendered objects)
#   make chart-crds   copy crds/ into the chart (the chart's copy must stay identical)
#   make e2e-kind     the whole user path on a kind cluster (needs Docker, kind, kubectl)

SHELL := /bin/bash
HELM ?= $(shell bash hack/build-k8s.sh --print-bin-dir)/helm
CHART := charts/flinklet-operator
PYTHON ?= python3

.PHONY: help images images-no-smoke helm-lint chart-crds e2e-kind

help:
	@sed -n '3,8p' Makefile | sed 's/^# \{0,1\}//'

images:
	bash hack/build-images.sh

images-no-smoke:
	bash hack/build-images.sh --no-smoke

chart-crds:
	mkdir -p $(CHART)/crds
	rm -f $(CHART)/crds/*.yaml
	cp crds/*.yaml $(CHART)/crds/

helm-lint:
	@test -x "$(HELM)" || { echo "helm is not built: run 'bash hack/build-k8s.sh'" >&2; exit 1; }
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set 'watchNamespaces={flinklet-jobs}' --set replicaCount=2
	$(PYTHON) -m pytest -q -p no:cacheprovider tests/unit/chart

e2e-kind:
	bash hack/e2e-kind.sh
