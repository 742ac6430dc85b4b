package controller

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

// BenchmarkRotation200 reconciles 200 PinnedCertificates against the real
// API server: first the start of all of them, then one planned rotation
// of each per iteration. It reports the time per object and the API calls
// (reads and writes) per rotation.
func BenchmarkRotation200(b *testing.B) {
	const objects = 200
	ns := newNamespace(b)
	manifestKey(b, ns, "manifest-a")
	var reads, writes atomic.Int64
	c := countingClient(&reads, &writes)
	clk := clocktesting.NewFakeClock(start)
	r := &PinnedCertificateReconciler{Client: c, Reader: c, Clock: clk, Recorder: &recordedEvents{}, Signers: SecretManifestSigners{Reader: c}}
	s := spec()
	for i := range objects {
		s.SecretName, s.PinSet.ConfigMapName = fmt.Sprintf("tls-%d", i), fmt.Sprintf("pinset-%d", i)
		createPC(b, ns, fmt.Sprintf("pc-%d", i), s)
	}
	reconcileAll := func() time.Duration {
		t0 := time.Now()
		for i := range objects {
			req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("pc-%d", i)}}
			for {
				if _, err := r.Reconcile(context.Background(), req); err == nil {
					break
				} else if !apierrors.IsConflict(err) {
					b.Fatal(err)
				}
			}
		}
		return time.Since(t0)
	}
	took := reconcileAll()
	firstCalls := reads.Load() + writes.Load()
	reads.Store(0)
	writes.Store(0)
	var rotateTook time.Duration
	b.ResetTimer()
	for range b.N {
		// To the renewal of every certificate: each rotates to its next
		// key (aged since the start) and gets a new next key.
		clk.Step(s.Validity.Duration - s.RenewBefore.Duration)
		rotateTook += reconcileAll()
	}
	rotations := float64(b.N * objects)
	b.ReportMetric(float64(rotateTook.Microseconds())/rotations/1000, "ms/rotation")
	b.ReportMetric(float64(reads.Load())/rotations, "reads/rotation")
	b.ReportMetric(float64(writes.Load())/rotations, "writes/rotation")
	b.StopTimer()
	// A reconcile with nothing to do (a resync, a restart of the
	// operator): reads only.
	reads.Store(0)
	writes.Store(0)
	idle := reconcileAll()
	b.ReportMetric(float64(idle.Microseconds())/objects/1000, "idle-ms/object")
	b.ReportMetric(float64(reads.Load()+writes.Load())/objects, "idle-calls/object")
	// ResetTimer drops metrics reported before it: the first start's last.
	b.ReportMetric(float64(took.Microseconds())/objects/1000, "first-start-ms/object")
	b.ReportMetric(float64(firstCalls)/objects, "first-start-calls/object")
}

// countingClient is the test client, counting the API calls: reads (get,
// list) and writes.
func countingClient(reads, writes *atomic.Int64) client.WithWatch {
	count := func(n *atomic.Int64) { n.Add(1) }
	return interceptor.NewClient(k8s, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			count(reads)
			return c.Get(ctx, key, obj, opts...)
		},
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			count(reads)
			return c.List(ctx, list, opts...)
		},
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			count(writes)
			return c.Create(ctx, obj, opts...)
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			count(writes)
			return c.Update(ctx, obj, opts...)
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			count(writes)
			return c.Patch(ctx, obj, p, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			count(writes)
			return c.Delete(ctx, obj, opts...)
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			count(writes)
			return c.SubResource(sub).Update(ctx, obj, opts...)
		},
	})
}

// BenchmarkKeySetReconcile200 reconciles 200 KeySets (token-signing
// defaults) against the real API server: first the start of all of them,
// then one rotation of each per iteration, which is three reconciles (the
// successor published, then active, then the old key retired). It reports
// the time and the API calls (reads and writes) per rotation, per first
// start and per idle reconcile.
func BenchmarkKeySetReconcile200(b *testing.B) {
	const objects = 200
	ns := newNamespace(b)
	var reads, writes atomic.Int64
	c := countingClient(&reads, &writes)
	clk := clocktesting.NewFakeClock(start)
	r := &KeySetReconciler{Client: c, Reader: c, Clock: clk, Recorder: &recordedEvents{}}
	s := ksSpec()
	for i := range objects {
		s.SecretName = fmt.Sprintf("keys-%d", i)
		createKS(b, ns, fmt.Sprintf("ks-%d", i), s)
	}
	// reconcileAll reconciles every KeySet once and returns when they
	// (all on the same schedule) want to be reconciled next.
	reconcileAll := func() (next, took time.Duration) {
		t0 := time.Now()
		for i := range objects {
			req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: fmt.Sprintf("ks-%d", i)}}
			for {
				res, err := r.Reconcile(context.Background(), req)
				if err == nil {
					next = res.RequeueAfter
					break
				}
				if !apierrors.IsConflict(err) {
					b.Fatal(err)
				}
			}
		}
		return next, time.Since(t0)
	}
	next, took := reconcileAll()
	firstCalls := reads.Load() + writes.Load()
	reads.Store(0)
	writes.Store(0)
	var rotateTook time.Duration
	b.ResetTimer()
	for range b.N {
		for range 3 {
			clk.Step(next)
			var d time.Duration
			next, d = reconcileAll()
			rotateTook += d
		}
	}
	rotations := float64(b.N * objects)
	b.ReportMetric(float64(rotateTook.Microseconds())/rotations/1000, "ms/rotation")
	b.ReportMetric(float64(reads.Load())/rotations, "reads/rotation")
	b.ReportMetric(float64(writes.Load())/rotations, "writes/rotation")
	b.StopTimer()
	reads.Store(0)
	writes.Store(0)
	_, idle := reconcileAll()
	b.ReportMetric(float64(idle.Microseconds())/objects/1000, "idle-ms/object")
	b.ReportMetric(float64(reads.Load()+writes.Load())/objects, "idle-calls/object")
	b.ReportMetric(float64(took.Microseconds())/objects/1000, "first-start-ms/object")
	b.ReportMetric(float64(firstCalls)/objects, "first-start-calls/object")
}
