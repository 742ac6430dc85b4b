package charts

import (
	"encoding/json"
	"regexp"
	"strings"
)

// Dashboard is the part of Grafana's dashboard model the checks read.
type Dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is a dashboard panel; a row's panels are in Panels when it is
// collapsed.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	Targets    []Target    `json:"targets"`
	Panels     []Panel     `json:"panels"`
}

// Target is a panel's query.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
}

// Datasource refers to a data source, here through a template variable.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is a template variable.
type Variable struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
}

// ParseDashboard decodes a dashboard's JSON.
func ParseDashboard(content []byte) (*Dashboard, error) {
	var d Dashboard
	if err := json.Unmarshal(content, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// AllPanels returns every panel, those inside collapsed rows too.
func (d *Dashboard) AllPanels() []Panel {
	var all []Panel
	var walk func([]Panel)
	walk = func(ps []Panel) {
		for _, p := range ps {
			all = append(all, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return all
}

var labelValuesMetric = regexp.MustCompile(`label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[,)]`)

// Metrics returns the metric names a query variable's label_values(...)
// reads.
func (v Variable) Metrics() []string {
	def := v.Definition
	if def == "" {
		var s string
		if json.Unmarshal(v.Query, &s) == nil {
			def = s
		} else {
			var q struct {
				Query string `json:"query"`
			}
			_ = json.Unmarshal(v.Query, &q)
			def = q.Query
		}
	}
	var names []string
	for _, m := range labelValuesMetric.FindAllStringSubmatch(def, -1) {
		names = append(names, m[1])
	}
	return names
}

// GrafanaToPromQL replaces Grafana's interval macros, which are not
// PromQL, by a duration. Variables inside label values ("$job") are
// strings to PromQL and stay.
func GrafanaToPromQL(expr string) string {
	return strings.NewReplacer(
		"${__rate_interval}", "5m", "$__rate_interval", "5m",
		"${__interval}", "1m", "$__interval", "1m",
		"${__range}", "1h", "$__range", "1h",
	).Replace(expr)
}
