package service_test

import (
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"strongroom.dev/api"
	"strongroom.dev/services/authd/internal/authdtest"
	"strongroom.dev/services/authd/internal/ports/httpserver"
)

// recorder is a mux that remembers the patterns registered on it.
type recorder struct{ patterns []string }

func (r *recorder) Handle(p string, _ http.Handler) { r.patterns = append(r.patterns, p) }
func (r *recorder) HandleFunc(p string, _ func(http.ResponseWriter, *http.Request)) {
	r.patterns = append(r.patterns, p)
}

// TestRoutesMatchOpenAPI holds the server's routes, per listener, to
// api/openapi.yaml: nothing served undocumented, nothing documented that
// is not served.
func TestRoutesMatchOpenAPI(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	documented := map[string][]string{}
	for path, item := range doc.Paths {
		listener, _ := item["x-strongroom-listener"].(string)
		if listener != "public" && listener != "internal" {
			t.Errorf("%s: x-strongroom-listener must be public or internal", path)
		}
		for method := range item {
			switch method {
			case "get", "post", "put", "delete", "patch":
				documented[listener] = append(documented[listener], strings.ToUpper(method)+" "+path)
			}
		}
	}
	s := authdtest.Start(t, authdtest.Options{Memory: true})
	public, internal := &recorder{}, &recorder{}
	s.App.Routes(public, internal)
	served := map[string][]string{
		"public":   public.patterns,
		"internal": append(internal.patterns, httpserver.RouteHealthz, httpserver.RouteReadyz),
	}
	for _, l := range []string{"public", "internal"} {
		sort.Strings(documented[l])
		sort.Strings(served[l])
		if !slices.Equal(documented[l], served[l]) {
			t.Errorf("%s listener:\nserved     %q\ndocumented %q", l, served[l], documented[l])
		}
	}
}
