package controller

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"strongroom.dev/api/v1alpha1"
)

// Setup registers every reconciler of the operator with mgr. They trace
// with the global TracerProvider and, with m not nil, update its gauges.
func Setup(mgr ctrl.Manager, clk clock.PassiveClock, m *Metrics) error {
	pc := &PinnedCertificateReconciler{
		Client:   mgr.GetClient(),
		Reader:   mgr.GetAPIReader(),
		Clock:    clk,
		Recorder: mgr.GetEventRecorder("strongroom-operator"),
		Signers:  SecretManifestSigners{Reader: mgr.GetAPIReader()},
		Metrics:  m,
	}
	if err := pc.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("pinnedcertificate controller: %w", err)
	}
	ks := &KeySetReconciler{
		Client:   mgr.GetClient(),
		Reader:   mgr.GetAPIReader(),
		Clock:    clk,
		Recorder: mgr.GetEventRecorder("strongroom-operator"),
		Metrics:  m,
	}
	if err := ks.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("keyset controller: %w", err)
	}
	return nil
}

// CacheOptions caches, of Secrets and ConfigMaps, only those the operator
// wrote (they carry LabelManagedBy): the watches that trigger reconciles
// need no more, and the cluster's other Secrets stay out of the
// operator's memory. (One label for every kind: a label selector cannot
// say "this label or that one".)
func CacheOptions() cache.Options {
	owned, err := labels.NewRequirement(v1alpha1.LabelManagedBy, selection.Equals, []string{v1alpha1.ManagedBy})
	if err != nil {
		panic(err) // a constant label key
	}
	sel := labels.NewSelector().Add(*owned)
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}:    {Label: sel},
		&corev1.ConfigMap{}: {Label: sel},
	}}
}

// requeueAfter is how long controller-runtime, which waits on the wall
// clock, must wait for d of the reconcilers' clock to pass: d itself,
// unless the clock runs faster than the wall clock (a build for
// end-to-end tests, api/fastclock). Never less than a second: a
// transition due now is requeued shortly rather than spun on.
func requeueAfter(clk clock.PassiveClock, d time.Duration) time.Duration {
	if f, ok := clk.(wallScaler); ok {
		d = f.Wall(d)
	}
	return max(d, time.Second)
}

// wallScaler is a clock that runs at another speed than the wall clock
// (api/fastclock.Clock).
type wallScaler interface {
	Wall(time.Duration) time.Duration
}
