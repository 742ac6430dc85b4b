package charts

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"sigs.k8s.io/yaml"
)

// The chart's Prometheus Operator objects (ServiceMonitor, PrometheusRule)
// are checked here against the Prometheus Operator's own Go types, strictly:
// the clusters the e2e tests use have no Prometheus Operator CRDs, so
// neither kubeconform nor a server-side dry-run can check these two kinds.
// A field the operator does not know (a typo, a field of another version)
// is an error, as the CRD's structural schema would drop or refuse it.

// docSeparator is a YAML document separator line, as helm template writes.
var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// Document is one document of a rendered manifest stream.
type Document struct {
	APIVersion, Kind, Name string
	YAML                   []byte
}

// SplitDocuments splits a multi-document YAML stream (helm template's
// output) and reads each document's kind; documents holding only
// comments are dropped.
func SplitDocuments(stream []byte) ([]Document, error) {
	var docs []Document
	for _, part := range docSeparator.Split(string(stream), -1) {
		b := bytes.TrimSpace([]byte(part))
		if len(b) == 0 {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name string `json:"name"`
			} `json:"metadata"`
		}
		// Not strict: only the head is read here.
		if err := yaml.Unmarshal(b, &head); err != nil {
			return nil, fmt.Errorf("document %d: %w", len(docs)+1, err)
		}
		if head.Kind == "" {
			continue
		}
		docs = append(docs, Document{APIVersion: head.APIVersion, Kind: head.Kind, Name: head.Metadata.Name, YAML: b})
	}
	return docs, nil
}

// DecodeServiceMonitor decodes a ServiceMonitor strictly.
func DecodeServiceMonitor(doc []byte) (*monitoringv1.ServiceMonitor, error) {
	var sm monitoringv1.ServiceMonitor
	if err := decodeStrict(doc, &sm, monitoringv1.ServiceMonitorsKind); err != nil {
		return nil, err
	}
	if len(sm.Spec.Endpoints) == 0 {
		return nil, errors.New("ServiceMonitor " + sm.Name + ": no endpoints")
	}
	// The Prometheus Operator's own semantic checks of an endpoint's HTTP
	// and TLS settings (it refuses to scrape an endpoint that fails them).
	for i := range sm.Spec.Endpoints {
		if err := sm.Spec.Endpoints[i].HTTPConfigWithProxyAndTLSFiles.Validate(); err != nil {
			return nil, fmt.Errorf("ServiceMonitor %s, endpoint %d: %w", sm.Name, i, err)
		}
	}
	return &sm, nil
}

// DecodePrometheusRule decodes a PrometheusRule strictly.
func DecodePrometheusRule(doc []byte) (*monitoringv1.PrometheusRule, error) {
	var pr monitoringv1.PrometheusRule
	if err := decodeStrict(doc, &pr, monitoringv1.PrometheusRuleKind); err != nil {
		return nil, err
	}
	return &pr, nil
}

// DecodeRuleSpec decodes a Prometheus rule file (files/prometheus-rules.yaml)
// strictly as a PrometheusRule's spec, which has the same shape.
func DecodeRuleSpec(content []byte) (*monitoringv1.PrometheusRuleSpec, error) {
	var spec monitoringv1.PrometheusRuleSpec
	if err := yaml.UnmarshalStrict(content, &spec); err != nil {
		return nil, fmt.Errorf("rule file as a PrometheusRule spec: %w", err)
	}
	return &spec, nil
}

// decodeStrict refuses unknown and duplicate fields, and another kind or
// API version than monitoring.coreos.com/v1 kind.
func decodeStrict(doc []byte, into any, kind string) error {
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return err
	}
	if want := monitoringv1.SchemeGroupVersion.String(); head.APIVersion != want || head.Kind != kind {
		return fmt.Errorf("%s %s: want %s %s", head.APIVersion, head.Kind, want, kind)
	}
	if err := yaml.UnmarshalStrict(doc, into); err != nil {
		return fmt.Errorf("%s: %w", kind, err)
	}
	return nil
}
