// Package charts checks the operations files of charts/strongroom: the
// Prometheus rules, the Grafana dashboard and the runbook. Its test holds
// them to each other and to the metric names authd and the operator
// export; the checks live here, not in the test, so that vet, staticcheck
// and govulncheck see the Prometheus packages they use.
package charts

import (
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strings"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// ExportedMetrics are the series authd and the operator export (and
// controller-runtime's, for the operator). A name used in a rule or a
// panel must be one of these, a histogram's series, or a recorded name.
var ExportedMetrics = []string{
	// authd
	"strongroom_grants_total",
	"strongroom_device_lockouts_total",
	"strongroom_refresh_reuse_detected_total",
	"strongroom_projection_lag_events",
	"strongroom_projection_lag_seconds",
	"strongroom_outbox_backlog_messages",
	"strongroom_passcode_hash_queue",
	"strongroom_passcode_hash_workers",
	// operator
	"strongroom_operator_transition_seconds",
	"strongroom_operator_certificate_expiry_seconds",
	"controller_runtime_reconcile_errors_total",
}

// ExportedHistograms are exported as <name>_bucket, _sum and _count.
var ExportedHistograms = []string{
	"strongroom_token_request_duration_seconds",
}

// KnownMetrics returns the exported series names: ExportedMetrics and the
// series of ExportedHistograms.
func KnownMetrics() map[string]bool {
	known := map[string]bool{}
	for _, m := range ExportedMetrics {
		known[m] = true
	}
	for _, h := range ExportedHistograms {
		for _, s := range []string{"_bucket", "_sum", "_count"} {
			known[h+s] = true
		}
	}
	return known
}

// promql parses with the default options, as Prometheus does.
var promql = parser.NewParser(parser.Options{})

// ParseRules parses and validates a Prometheus rule file as Prometheus
// and `promtool check rules` do (PromQL, templates, durations), with
// unknown fields refused and the classic metric and label name rules.
func ParseRules(content []byte) (*rulefmt.RuleGroups, []error) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	return rulefmt.Parse(content, false, model.LegacyValidation, promql, logger)
}

// ParseExpr parses a PromQL expression.
func ParseExpr(expr string) (parser.Expr, error) {
	return promql.ParseExpr(expr)
}

// MetricNames returns the metric names an expression selects, in order.
// A selector without a literal name (only a regexp on __name__, say) is
// an error: it could not be held to the exported names.
func MetricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == model.MetricNameLabel {
				if m.Type != labels.MatchEqual {
					bad = fmt.Errorf("selector %s: metric name must be literal", vs)
				}
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s has no metric name", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, bad
}

var (
	mdHeading   = regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*\s*$`)
	anchorDrops = regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)
)

// MarkdownAnchors returns the anchors GitHub gives the headings of a
// Markdown document (lower case, punctuation dropped, spaces as dashes;
// headings inside code fences do not count).
func MarkdownAnchors(md []byte) map[string]bool {
	anchors := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
			continue
		}
		m := mdHeading.FindStringSubmatch(line)
		if inFence || m == nil {
			continue
		}
		a := anchorDrops.ReplaceAllString(strings.ToLower(m[1]), "")
		anchors[strings.ReplaceAll(a, " ", "-")] = true
	}
	return anchors
}
