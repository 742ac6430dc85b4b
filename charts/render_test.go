package charts

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// renderProduction renders charts/strongroom with values-production.yaml
// with the helm of KUBEBUILDER_ASSETS (hack/k8s-test-bins.sh builds it).
func renderProduction(t *testing.T) []Document {
	t.Helper()
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: this test renders the chart with its helm " +
			"(run through `make test`, or export KUBEBUILDER_ASSETS=$(make -s testbins) from the repository root)")
	}
	helm := filepath.Join(assets, "helm")
	if _, err := os.Stat(helm); err != nil {
		t.Fatalf("no helm in KUBEBUILDER_ASSETS (%v): rebuild it with hack/k8s-test-bins.sh", err)
	}
	home := t.TempDir()
	cmd := exec.Command(helm, "template", "strongroom", "strongroom", "--namespace", "bank",
		"-f", filepath.Join("strongroom", "values-production.yaml"))
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home, "HELM_CONFIG_HOME="+home, "HELM_DATA_HOME="+home)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template: %v\n%s", err, errOut.String())
	}
	docs, err := SplitDocuments(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return docs
}

// TestProductionMonitoringObjects decodes the production render's
// ServiceMonitors and PrometheusRule strictly into the Prometheus
// Operator's types, and holds the PrometheusRule to files/prometheus-rules.yaml.
func TestProductionMonitoringObjects(t *testing.T) {
	var monitors []*monitoringv1.ServiceMonitor
	var prs []*monitoringv1.PrometheusRule
	for _, d := range renderProduction(t) {
		switch {
		case d.Kind == monitoringv1.ServiceMonitorsKind:
			sm, err := DecodeServiceMonitor(d.YAML)
			if err != nil {
				t.Fatal(err)
			}
			monitors = append(monitors, sm)
		case d.Kind == monitoringv1.PrometheusRuleKind:
			pr, err := DecodePrometheusRule(d.YAML)
			if err != nil {
				t.Fatal(err)
			}
			prs = append(prs, pr)
		case strings.Contains(d.APIVersion, "monitoring.coreos.com"):
			t.Errorf("unchecked Prometheus Operator kind %s", d.Kind)
		}
	}

	byName := map[string]*monitoringv1.ServiceMonitor{}
	for _, sm := range monitors {
		byName[sm.Name] = sm
	}
	if len(monitors) != 2 || byName["strongroom-authd"] == nil || byName["strongroom-operator"] == nil {
		t.Fatalf("ServiceMonitors %v, want strongroom-authd and strongroom-operator", byName)
	}
	for _, ep := range byName["strongroom-operator"].Spec.Endpoints {
		// The operator's gauges carry the namespace of the object they
		// describe; without honorLabels Prometheus would overwrite it
		// with the operator's own (as exported_namespace otherwise).
		if !ep.HonorLabels {
			t.Errorf("operator endpoint %s: honorLabels is false", ep.Port)
		}
	}
	for _, ep := range byName["strongroom-authd"].Spec.Endpoints {
		if ep.Scheme.String() != "https" || ep.Path != "/metrics" || ep.Port != "https-internal" {
			t.Errorf("authd endpoint: scheme %s, path %s, port %s; want https /metrics on https-internal", ep.Scheme.String(), ep.Path, ep.Port)
		}
		tls := ep.TLSConfig
		if tls == nil || tls.CA.Secret == nil || tls.CA.Secret.Key != "ca.crt" || tls.ServerName == nil ||
			tls.InsecureSkipVerify != nil && *tls.InsecureSkipVerify {
			t.Errorf("authd endpoint TLS %+v: production verifies authd's certificate with the serving Secret's CA", tls)
		}
		if ep.HonorLabels {
			t.Error("authd endpoint: honorLabels would let a target pick its own job and namespace labels")
		}
	}

	if len(prs) != 1 {
		t.Fatalf("%d PrometheusRules, want 1", len(prs))
	}
	want, err := DecodeRuleSpec(readFile(t, rulesFile))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(prs[0].Spec.Groups, want.Groups) {
		t.Errorf("the PrometheusRule's groups differ from %s", rulesFile)
	}
	// And the file, decoded as the Prometheus Operator does, has what
	// Prometheus itself parses from it.
	parsed := rules(t)
	if len(want.Groups) != len(parsed.Groups) {
		t.Fatalf("%d groups as a PrometheusRule, %d for Prometheus", len(want.Groups), len(parsed.Groups))
	}
	for i, g := range want.Groups {
		if g.Name != parsed.Groups[i].Name || len(g.Rules) != len(parsed.Groups[i].Rules) {
			t.Errorf("group %d: %s with %d rules, Prometheus reads %s with %d", i, g.Name, len(g.Rules), parsed.Groups[i].Name, len(parsed.Groups[i].Rules))
		}
	}
}

// TestMonitoringDecodersAreStrict: the decoders refuse what the Prometheus
// Operator would not take, so the test above can fail.
func TestMonitoringDecodersAreStrict(t *testing.T) {
	for name, tc := range map[string]struct {
		doc    string
		decode func([]byte) error
	}{
		"unknown endpoint field": {`apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  endpoints: [{port: metrics, honourLabels: true}]
`, func(b []byte) error { _, err := DecodeServiceMonitor(b); return err }},
		"no endpoints": {`apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: x}
spec: {selector: {matchLabels: {a: b}}}
`, func(b []byte) error { _, err := DecodeServiceMonitor(b); return err }},
		"two CAs": {`apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata: {name: x}
spec:
  selector: {matchLabels: {a: b}}
  endpoints:
    - port: metrics
      tlsConfig:
        ca: {secret: {name: s, key: ca.crt}, configMap: {name: c, key: ca.crt}}
`, func(b []byte) error { _, err := DecodeServiceMonitor(b); return err }},
		"wrong API version": {`apiVersion: monitoring.coreos.com/v1alpha1
kind: PrometheusRule
metadata: {name: x}
spec: {groups: []}
`, func(b []byte) error { _, err := DecodePrometheusRule(b); return err }},
		"unknown rule field": {`apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: x}
spec:
  groups: [{name: g, rules: [{alert: A, expr: up == 0, runbook: x}]}]
`, func(b []byte) error { _, err := DecodePrometheusRule(b); return err }},
	} {
		err := tc.decode([]byte(tc.doc))
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}
