// Command operator runs Strongroom's Kubernetes operator: it rotates the
// keys and certificates of PinnedCertificates and publishes their pin
// sets, and rotates the keys of KeySets by time (CONTRACT.md, Pinning and
// Kubernetes resources).
//
// Several replicas may run; one leads (a Lease) and reconciles, the others
// wait. Flags:
//
//	--leader-elect              take part in leader election (default true)
//	--namespace                 watch one namespace only (default: all)
//	--metrics-bind-address      Prometheus metrics (default :8080, "0" off)
//	--health-probe-bind-address /healthz and /readyz (default :8081)
//
// Each reconcile is a span, exported over OTLP when the standard
// environment asks for it (OTEL_TRACES_EXPORTER=otlp, or
// OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set;
// OTEL_EXPORTER_OTLP_PROTOCOL grpc or http/protobuf), and not otherwise.
// The metrics endpoint also serves strongroom_operator_transition_seconds
// and strongroom_operator_certificate_expiry_seconds (README.md).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"go.opentelemetry.io/otel"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"strongroom.dev/api/memlimit"
	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/operator/internal/controller"
	"strongroom.dev/operator/internal/telemetry"
)

// Leader election: a Lease in the operator's own namespace, and the core
// Events client-go's leader election records there (the chart binds this
// Role there; the ClusterRole of the controllers is generated from the
// markers in internal/controller).
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=strongroom-system,resources=leases,verbs=get;create;update
// +kubebuilder:rbac:groups="",namespace=strongroom-system,resources=events,verbs=create;patch

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "operator:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		leaderElect bool
		namespace   string
		metrics     string
		probes      string
	)
	flag.BoolVar(&leaderElect, "leader-elect", true, "take part in leader election; only the leader reconciles")
	flag.StringVar(&namespace, "namespace", "", "watch only this namespace (default: all namespaces)")
	flag.StringVar(&metrics, "metrics-bind-address", ":8080", `address of the metrics endpoint ("0" disables it)`)
	flag.StringVar(&probes, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	opts := zap.Options{}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	ctx := ctrl.SetupSignalHandler()
	if limit, err := memlimit.Apply(os.Getenv); err != nil {
		return err
	} else if limit > 0 {
		ctrl.Log.Info("Go memory limit set from the container's", "limitBytes", limit)
	}

	// OpenTelemetry's own errors (an unreachable collector) go to the
	// operator's log.
	otel.SetLogger(ctrl.Log.WithName("otel"))
	exp, err := telemetry.TraceExporter(ctx, os.Getenv)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	shutdownTracing, err := telemetry.Tracing(ctx, exp)
	if err != nil {
		return fmt.Errorf("tracing: %w", err)
	}
	// On exit the signal context is done: flushing gets its own time.
	defer shutdownWithin(5*time.Second, "tracing", shutdownTracing)
	// The gauges are served by controller-runtime's metrics endpoint,
	// next to its own metrics.
	mp, err := telemetry.MeterProvider(crmetrics.Registry)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer shutdownWithin(5*time.Second, "metrics", mp.Shutdown)
	gauges, err := controller.NewMetrics(mp)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	mopts := ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: metrics},
		HealthProbeBindAddress:  probes,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "strongroom-operator.strongroom.dev",
		LeaderElectionNamespace: namespace,
		// A leader that loses its lease stops at once rather than keep
		// writing next to its successor.
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOptions(namespace),
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), mopts)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	clk, err := testClock(os.Getenv)
	if err != nil {
		return err
	}
	if clk == nil {
		clk = clock.RealClock{}
	} else {
		ctrl.Log.Info("the clock runs faster than the wall clock: a build for end-to-end tests", "now", clk.Now().UTC())
	}
	if err := controller.Setup(mgr, clk, gauges); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// shutdownWithin calls shutdown with a context of its own, as long as d,
// and logs what fails: the operator is exiting anyway.
func shutdownWithin(d time.Duration, what string, shutdown func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		ctrl.Log.Error(err, "shutdown", "what", what)
	}
}

// cacheOptions limits what the manager caches: only the watched namespace
// (when set), and of Secrets and ConfigMaps only those the operator wrote
// (labelled app.kubernetes.io/managed-by: strongroom-operator), so that a
// cluster's other Secrets are never held in memory.
func cacheOptions(namespace string) cache.Options {
	o := controller.CacheOptions()
	if namespace != "" {
		o.DefaultNamespaces = map[string]cache.Config{namespace: {}}
	}
	return o
}
