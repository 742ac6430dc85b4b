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
package main

import (
	"flag"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/operator/internal/controller"
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
	if err := controller.Setup(mgr, clock.RealClock{}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctrl.SetupSignalHandler())
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
