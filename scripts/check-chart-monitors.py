"""Checks the rendered ServiceMonitor and PodMonitor against the rendered DaemonSet and Service:
kubernetes-validate has no schema for the Prometheus Operator's kinds, so this checks what makes
them scrape anything: selectors that match the provider pods (or their Service) and the port
name that the container and the Service expose."""

import sys

import yaml

docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)


def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector["matchLabels"].items())


(daemonset,) = by_kind["DaemonSet"]
pod_labels = daemonset["spec"]["template"]["metadata"]["labels"]
(container,) = daemonset["spec"]["template"]["spec"]["containers"]
container_ports = {p["name"] for p in container["ports"]}
(service,) = by_kind["Service"]
assert all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items()), "Service selects no pod"
service_ports = {p["name"] for p in service["spec"]["ports"]}
assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports

(service_monitor,) = by_kind["ServiceMonitor"]
spec = service_monitor["spec"]
assert service_monitor["apiVersion"] == "monitoring.coreos.com/v1"
assert matches(spec["selector"], service["metadata"]["labels"]), "ServiceMonitor selects no Service"
assert spec["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
assert all(e["port"] in service_ports and e["path"] == "/metrics" for e in spec["endpoints"])
assert service_monitor["metadata"]["labels"].get("release") == "prometheus", "extra labels kept"

(pod_monitor,) = by_kind["PodMonitor"]
spec = pod_monitor["spec"]
assert matches(spec["selector"], pod_labels), "PodMonitor selects no pod"
assert all(e["port"] in container_ports for e in spec["podMetricsEndpoints"])
print("chart: ServiceMonitor and PodMonitor select the provider and scrape its metrics port")
