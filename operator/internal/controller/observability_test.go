package controller

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/operator/internal/telemetry"
)

// The gauges are registered once per process on controller-runtime's
// registry, as the operator's main does (`go test -count=N` runs the
// tests again in the same process).
var (
	gaugesOnce sync.Once
	gauges     *Metrics
	gaugesErr  error
)

func testMetrics(t *testing.T) *Metrics {
	t.Helper()
	gaugesOnce.Do(func() {
		mp, err := telemetry.MeterProvider(metrics.Registry)
		if err != nil {
			gaugesErr = err
			return
		}
		gauges, gaugesErr = NewMetrics(mp)
	})
	if gaugesErr != nil {
		t.Fatal(gaugesErr)
	}
	return gauges
}

// scrape gathers controller-runtime's registry, as its metrics endpoint
// serves it, and returns the series of the metric name in namespace ns:
// value by the full label set ("k=v,..." sorted).
func scrape(t *testing.T, name, ns string) map[string]float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			var labels []string
			inNS := false
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
				inNS = inNS || (l.GetName() == "namespace" && l.GetValue() == ns)
			}
			if inNS {
				slices.Sort(labels)
				out[strings.Join(labels, ",")] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// checkSeries asserts that got has exactly the series of want, each
// within a second of its value.
func checkSeries(t *testing.T, name string, got, want map[string]float64) {
	t.Helper()
	ok := len(got) == len(want)
	for k, v := range want {
		g, found := got[k]
		ok = ok && found && math.Abs(g-v) <= 1
	}
	if !ok {
		t.Fatalf("%s: got series %v, want %v", name, got, want)
	}
}

// TestMetrics: after a reconcile, controller-runtime's registry shows how
// long each PinnedCertificate and KeySet has until its next transition,
// and a PinnedCertificate until its certificate expires, computed from the
// status written and the reconciler's (fake) clock at the scrape: the
// values run down, and past zero when overdue. A deleted object's series
// go.
func TestMetrics(t *testing.T) {
	m := testMetrics(t)
	ctx := context.Background()

	pcw := newWorld(t, spec(), start)
	pcw.r.Metrics = m
	ksw := newKSWorld(t, ksSpec(), start)
	ksw.r.Metrics = m
	pcw.reconcile()
	ksw.reconcile()

	var pc v1alpha1.PinnedCertificate
	if err := k8s.Get(ctx, pcw.req().NamespacedName, &pc); err != nil {
		t.Fatal(err)
	}
	ks := ksw.keySet()
	if pc.Status.NextRotationTime == nil || pc.Status.NotAfter == nil || ks.Status.NextTransitionTime == nil {
		t.Fatalf("status without the times: %+v, %+v", pc.Status, ks.Status)
	}
	check := func(when string) {
		t.Helper()
		pcNow, ksNow := pcw.clk.Now(), ksw.clk.Now()
		checkSeries(t, when+": "+MetricTransition, scrape(t, MetricTransition, pcw.ns), map[string]float64{
			fmt.Sprintf("kind=PinnedCertificate,name=%s,namespace=%s", pcw.name, pcw.ns): pc.Status.NextRotationTime.Sub(pcNow).Seconds(),
		})
		checkSeries(t, when+": "+MetricTransition, scrape(t, MetricTransition, ksw.ns), map[string]float64{
			fmt.Sprintf("kind=KeySet,name=%s,namespace=%s", ksw.name, ksw.ns): ks.Status.NextTransitionTime.Sub(ksNow).Seconds(),
		})
		checkSeries(t, when+": "+MetricCertificateExpiry, scrape(t, MetricCertificateExpiry, pcw.ns), map[string]float64{
			fmt.Sprintf("name=%s,namespace=%s", pcw.name, pcw.ns): pc.Status.NotAfter.Sub(pcNow).Seconds(),
		})
		// A KeySet serves no certificate.
		checkSeries(t, when+": "+MetricCertificateExpiry, scrape(t, MetricCertificateExpiry, ksw.ns), map[string]float64{})
	}
	check("after the first reconcile")
	// As the metrics endpoint serves them, in the text format.
	text := exposition(t)
	for _, want := range []string{
		"# TYPE " + MetricTransition + " gauge",
		"# TYPE " + MetricCertificateExpiry + " gauge",
		fmt.Sprintf(`%s{kind="PinnedCertificate",name="%s",namespace="%s"} `, MetricTransition, pcw.name, pcw.ns),
		fmt.Sprintf(`%s{kind="KeySet",name="%s",namespace="%s"} `, MetricTransition, ksw.name, ksw.ns),
		fmt.Sprintf(`%s{name="%s",namespace="%s"} `, MetricCertificateExpiry, pcw.name, pcw.ns),
	} {
		if !strings.Contains(text, "\n"+want) {
			t.Fatalf("the metrics endpoint does not serve %q:\n%s", want, text)
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "strongroom_operator_") && (strings.HasPrefix(line, "#") || strings.Contains(line, pcw.ns) || strings.Contains(line, ksw.ns)) {
			t.Log(line)
		}
	}
	if v := scrape(t, MetricTransition, pcw.ns); slices.Min(mapValues(v)) < 24*3600 {
		t.Fatalf("a new PinnedCertificate's next transition is due in %v seconds", v)
	}

	// No reconcile in between: the values follow the clock.
	pcw.clk.Step(7 * 24 * time.Hour)
	ksw.clk.Step(3 * time.Hour)
	check("a week and three hours later")

	// Overdue (the operator stopped reconciling): negative.
	pcw.clk.SetTime(pc.Status.NextRotationTime.Add(time.Hour))
	ksw.clk.SetTime(ks.Status.NextTransitionTime.Add(2 * time.Hour))
	check("overdue")
	for _, ns := range []string{pcw.ns, ksw.ns} {
		for k, v := range scrape(t, MetricTransition, ns) {
			if v > -3599 {
				t.Fatalf("overdue transition %s = %v, want negative", k, v)
			}
		}
	}

	// Deleted: the next reconcile finds it gone, and its series go.
	for _, obj := range []client.Object{&pc, ks} {
		if err := k8s.Delete(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pcw.r.Reconcile(ctx, pcw.req()); err != nil {
		t.Fatal(err)
	}
	if _, err := ksw.r.Reconcile(ctx, ksw.req()); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{pcw.ns, ksw.ns} {
		for _, name := range []string{MetricTransition, MetricCertificateExpiry} {
			checkSeries(t, "after the deletion: "+name, scrape(t, name, ns), map[string]float64{})
		}
	}
}

// exposition is what controller-runtime's metrics endpoint serves: its
// registry through promhttp, in the Prometheus text format.
func exposition(t *testing.T) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	promhttp.HandlerFor(metrics.Registry, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("metrics endpoint: %d %s", rec.Code, rec.Body)
	}
	return rec.Body.String()
}

func mapValues(m map[string]float64) []float64 {
	var out []float64
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestReconcileSpans: each reconcile is one span with the object's
// namespace and name; a failing one records its error with status Error,
// a successful one when it comes back.
func TestReconcileSpans(t *testing.T) {
	for _, kind := range []string{kindPinnedCertificate, kindKeySet} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
			defer func() { _ = tp.Shutdown(context.Background()) }()

			// The first write (a key, the KeySet's Secret) is refused.
			failing, _ := failingClient(1, false)
			var (
				ns, name  string
				reconcile func(c client.Client) (ctrl.Result, error)
			)
			switch kind {
			case kindPinnedCertificate:
				w := newWorld(t, spec(), start)
				ns, name = w.ns, w.name
				reconcile = func(c client.Client) (ctrl.Result, error) {
					r := w.reconciler(c)
					r.TracerProvider = tp
					return r.Reconcile(context.Background(), w.req())
				}
			case kindKeySet:
				w := newKSWorld(t, ksSpec(), start)
				ns, name = w.ns, w.name
				reconcile = func(c client.Client) (ctrl.Result, error) {
					r := w.reconciler(c)
					r.TracerProvider = tp
					return r.Reconcile(context.Background(), w.req())
				}
			}
			if _, err := reconcile(failing); err == nil {
				t.Fatal("the reconcile with its first write refused succeeded")
			}
			res, err := reconcile(k8s)
			if err != nil || res.RequeueAfter <= 0 {
				t.Fatalf("reconcile: %v, %+v", err, res)
			}

			spans := exp.GetSpans()
			if len(spans) != 2 {
				t.Fatalf("%d spans, want 2", len(spans))
			}
			for _, s := range spans {
				if s.Name != "reconcile "+kind || attr(s.Attributes, "k8s.namespace.name") != ns ||
					attr(s.Attributes, "k8s."+strings.ToLower(kind)+".name") != name {
					t.Fatalf("span %q with attributes %v", s.Name, s.Attributes)
				}
			}
			failed, ok := spans[0], spans[1]
			if failed.Status.Code != codes.Error || !strings.Contains(failed.Status.Description, "injected") ||
				!slices.ContainsFunc(failed.Events, func(e sdktrace.Event) bool { return e.Name == "exception" }) {
				t.Fatalf("the failed reconcile's span: status %+v, events %+v", failed.Status, failed.Events)
			}
			if ok.Status.Code == codes.Error ||
				attr(ok.Attributes, "strongroom.reconcile.requeue_after_seconds") != fmt.Sprint(res.RequeueAfter.Seconds()) {
				t.Fatalf("the successful reconcile's span: status %+v, attributes %v", ok.Status, ok.Attributes)
			}
		})
	}
}

// attr is the value of attribute key in attrs, as a string ("" when
// absent).
func attr(attrs []attribute.KeyValue, key string) string {
	for _, kv := range attrs {
		if string(kv.Key) == key {
			return kv.Value.String()
		}
	}
	return ""
}
