package charts

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
)

const (
	rulesFile     = "strongroom/files/prometheus-rules.yaml"
	dashboardFile = "strongroom/files/grafana-dashboard.json"
	runbookFile   = "strongroom/RUNBOOK.md"
	// runbookPath is what every runbook_url names before its anchor.
	runbookPath = "charts/strongroom/RUNBOOK.md"
	dsVariable  = "${DS_PROMETHEUS}"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.FromSlash(name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	groups, errs := ParseRules(readFile(t, rulesFile))
	for _, err := range errs {
		t.Errorf("%s: %v", rulesFile, err)
	}
	if len(errs) > 0 || groups == nil || len(groups.Groups) == 0 {
		t.Fatalf("%s: no valid rule groups", rulesFile)
	}
	return groups
}

func dashboard(t *testing.T) *Dashboard {
	t.Helper()
	d, err := ParseDashboard(readFile(t, dashboardFile))
	if err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

func TestAlerts(t *testing.T) {
	anchors := MarkdownAnchors(readFile(t, runbookFile))
	alerts := map[string]bool{}
	for _, g := range rules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			t.Run(r.Alert, func(t *testing.T) {
				if alerts[r.Alert] {
					t.Errorf("alert defined twice")
				}
				alerts[r.Alert] = true
				if r.For <= 0 {
					t.Errorf("no for")
				}
				if s := r.Labels["severity"]; s != "warning" && s != "critical" {
					t.Errorf("severity %q: want warning or critical", s)
				}
				for _, a := range []string{"summary", "description", "runbook_url"} {
					if strings.TrimSpace(r.Annotations[a]) == "" {
						t.Errorf("no annotation %s", a)
					}
				}
				if d := r.Annotations["description"]; !strings.Contains(d, "$value") && !strings.Contains(d, "$labels") {
					t.Errorf("description uses neither $value nor $labels")
				}
				u, err := url.Parse(r.Annotations["runbook_url"])
				if err != nil {
					t.Fatalf("runbook_url: %v", err)
				}
				if !strings.HasSuffix(u.Path, runbookPath) {
					t.Errorf("runbook_url %q: want %s#<anchor>", u, runbookPath)
				}
				if want := strings.ToLower(r.Alert); u.Fragment != want {
					t.Errorf("runbook_url anchor %q: want %q", u.Fragment, want)
				}
				if !anchors[u.Fragment] {
					t.Errorf("runbook_url anchor %q: no such heading in %s", u.Fragment, runbookFile)
				}
			})
		}
	}
	if len(alerts) == 0 {
		t.Fatal("no alerts")
	}
}

// TestMetricNames holds every name the rules and the dashboard select to
// the exported ones, so a typo is caught here rather than by an alert that
// never fires or an empty panel.
func TestMetricNames(t *testing.T) {
	known := KnownMetrics()
	groups := rules(t)
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				known[r.Record] = true
			}
		}
	}
	used := map[string]bool{}
	check := func(where, expr string) {
		t.Helper()
		names, err := MetricNames(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
		}
		for _, n := range names {
			used[n] = true
			if !known[n] {
				t.Errorf("%s: unknown metric %q in %s", where, n, expr)
			}
		}
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			check(fmt.Sprintf("%s: rule %s%s", rulesFile, r.Alert, r.Record), r.Expr)
		}
	}
	d := dashboard(t)
	for _, p := range d.AllPanels() {
		for _, tg := range p.Targets {
			check(fmt.Sprintf("%s: panel %d %q target %s", dashboardFile, p.ID, p.Title, tg.RefID), GrafanaToPromQL(tg.Expr))
		}
	}
	for _, v := range d.Templating.List {
		for _, n := range v.Metrics() {
			used[n] = true
			if !known[n] {
				t.Errorf("%s: variable %s: unknown metric %q", dashboardFile, v.Name, n)
			}
		}
	}
	var unused []string
	for _, m := range ExportedMetrics {
		if !used[m] {
			unused = append(unused, m)
		}
	}
	for _, h := range ExportedHistograms {
		if !used[h+"_bucket"] {
			unused = append(unused, h)
		}
	}
	if len(unused) > 0 {
		sort.Strings(unused)
		t.Errorf("exported metrics neither alerted on nor shown: %v", unused)
	}
}

func TestMetricNamesCatchTypos(t *testing.T) {
	known := KnownMetrics()
	names, err := MetricNames(`sum(rate(strongroom_grant_total[5m])) / sum(rate(strongroom_token_request_duration_seconds_count[5m]))`)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"strongroom_grant_total", "strongroom_token_request_duration_seconds_count"}) {
		t.Fatalf("names = %v", names)
	}
	if known[names[0]] || !known[names[1]] {
		t.Errorf("typo %q accepted or histogram series %q refused", names[0], names[1])
	}
	if _, err := MetricNames(`{__name__=~"strongroom_.*"}`); err == nil {
		t.Error("a selector by name regexp was accepted")
	}
	if _, errs := ParseRules([]byte("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: rate(x[5m]) >\n")); len(errs) == 0 {
		t.Error("a rule with invalid PromQL was accepted")
	}
}

func TestDashboard(t *testing.T) {
	d := dashboard(t)
	if d.UID != "strongroom-overview" || d.Title != "Strongroom" {
		t.Errorf("uid %q, title %q: want strongroom-overview, Strongroom", d.UID, d.Title)
	}
	if d.SchemaVersion < 39 {
		t.Errorf("schemaVersion %d: want 39 or later", d.SchemaVersion)
	}
	if !slices.ContainsFunc(d.Templating.List, func(v Variable) bool {
		return v.Type == "datasource" && "${"+v.Name+"}" == dsVariable
	}) {
		t.Errorf("no datasource variable %s", dsVariable)
	}
	ids := map[int]string{}
	targets := 0
	for _, p := range d.AllPanels() {
		if p.ID <= 0 {
			t.Errorf("panel %q: id %d", p.Title, p.ID)
		} else if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("panel %d has no title", p.ID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %d %q has no targets", p.ID, p.Title)
		}
		if p.Datasource == nil || p.Datasource.UID != dsVariable {
			t.Errorf("panel %d %q: datasource is not %s", p.ID, p.Title, dsVariable)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			targets++
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %d %q target %s: empty expr", p.ID, p.Title, tg.RefID)
				continue
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %d %q: refId %q empty or repeated", p.ID, p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource != nil && tg.Datasource.UID != dsVariable {
				t.Errorf("panel %d %q target %s: datasource %q", p.ID, p.Title, tg.RefID, tg.Datasource.UID)
			}
			if _, err := ParseExpr(GrafanaToPromQL(tg.Expr)); err != nil {
				t.Errorf("panel %d %q target %s: %v", p.ID, p.Title, tg.RefID, err)
			}
		}
	}
	if targets == 0 {
		t.Error("no targets")
	}
}

// TestRunbookSections: every section of the runbook is an alert's, so it
// keeps no section for an alert that was removed or renamed.
func TestRunbookSections(t *testing.T) {
	alerts := map[string]bool{}
	for _, g := range rules(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				alerts[strings.ToLower(r.Alert)] = true
			}
		}
	}
	section := regexp.MustCompile(`(?m)^## (\S+)\s*$`)
	for _, m := range section.FindAllStringSubmatch(string(readFile(t, runbookFile)), -1) {
		if !alerts[strings.ToLower(m[1])] {
			t.Errorf("%s: section %q names no alert", runbookFile, m[1])
		}
	}
}
