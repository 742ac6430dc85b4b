package controller

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"strongroom.dev/api/pinset"
	"strongroom.dev/api/v1alpha1"
)

// world is one PinnedCertificate under test, driven by direct Reconcile
// calls on a fake clock against the real API server, and the history an
// observer (an app) saw of it.
type world struct {
	t        testing.TB
	ns, name string
	spec     v1alpha1.PinnedCertificateSpec
	manifest map[string]*ecdsa.PublicKey
	clk      *clocktesting.FakeClock
	r        *PinnedCertificateReconciler
	events   *recordedEvents

	// What an observer saw, checked after every reconcile.
	sets     []seenSet         // every pin set version, in order
	served   map[string]served // pin → the latest certificate served with it
	exempt   map[string]bool   // pins an emergency removed (compromised)
	rotation []string          // served pins, in order
	first    string            // the first served pin (compiled into apps)
}

type seenSet struct {
	version int64
	pins    []string
	from    time.Time // when the observer first saw it
	until   time.Time // when a newer one replaced it (zero: still current)
}

type served struct {
	notAfter time.Time
}

func newWorld(t testing.TB, s v1alpha1.PinnedCertificateSpec, start time.Time) *world {
	t.Helper()
	ns := newNamespace(t)
	w := &world{
		t: t, ns: ns, name: "authd", spec: s,
		manifest: manifestKey(t, ns, s.PinSet.ManifestKeys[0].SecretName),
		clk:      clocktesting.NewFakeClock(start),
		events:   &recordedEvents{},
		served:   map[string]served{},
		exempt:   map[string]bool{},
	}
	if s.Issuer.CA != nil {
		caSecret(t, ns, s.Issuer.CA.SecretName, start)
	}
	createPC(t, ns, w.name, s)
	w.r = w.reconciler(k8s)
	return w
}

// reconciler is a reconciler on the world's clock that reads and writes
// through c.
func (w *world) reconciler(c client.Client) *PinnedCertificateReconciler {
	return &PinnedCertificateReconciler{Client: c, Reader: c, Clock: w.clk, Recorder: w.events, Signers: SecretManifestSigners{Reader: c}}
}

func (w *world) req() ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Namespace: w.ns, Name: w.name}}
}

// reconcile runs reconciles until one succeeds (as the work queue would
// retry), checks the invariant, and returns when to come back.
func (w *world) reconcile() time.Duration {
	w.t.Helper()
	for i := 0; ; i++ {
		res, err := w.r.Reconcile(context.Background(), w.req())
		if err == nil {
			w.check()
			return res.RequeueAfter
		}
		if i == 10 {
			w.t.Fatalf("%s: reconcile keeps failing: %v", w.clk.Now().Format(time.DateTime), err)
		}
	}
}

// check asserts the pinning invariant on what the API server holds now.
func (w *world) check() {
	t, now := w.t, w.clk.Now()
	t.Helper()
	ctx := context.Background()
	at := now.Format(time.DateTime)

	// The pin set verifies like an app verifies it, and never goes back.
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: w.spec.PinSet.ConfigMapName}, &cm); err != nil {
		t.Fatalf("%s: pin set ConfigMap: %v", at, err)
	}
	var held int64
	if n := len(w.sets); n > 0 {
		held = w.sets[n-1].version
	}
	set, err := pinset.Verify(cm.Data[pinSetData], w.manifest, held, now)
	if err != nil {
		t.Fatalf("%s: the pin set does not verify as an app holding version %d: %v", at, held, err)
	}
	pins := make([]string, 0, len(set.Pins))
	for _, p := range set.Pins {
		pins = append(pins, p.SHA256)
	}
	if n := len(w.sets); n == 0 || set.Version > held {
		if n > 0 {
			w.sets[n-1].until = now
		}
		w.sets = append(w.sets, seenSet{version: set.Version, pins: pins, from: now})
	} else if !slices.Equal(pins, w.sets[n-1].pins) {
		t.Fatalf("%s: the pins changed without a new version (%d)", at, set.Version)
	}
	if android, err := pinset.Android(*set); err != nil || cm.Data[androidXML] != string(android) {
		t.Fatalf("%s: android.xml does not render the pin set (%v)", at, err)
	}

	// Keys and their roles.
	var keys corev1.SecretList
	if err := k8s.List(ctx, &keys, client.InNamespace(w.ns), client.HasLabels{v1alpha1.LabelRole}); err != nil {
		t.Fatal(err)
	}
	roles := map[string]int{}
	for _, k := range keys.Items {
		roles[k.Labels[v1alpha1.LabelRole]]++
	}
	if roles["backup"] < int(w.spec.BackupKeys) || roles["next"] != 1 || roles["current"] != 1 {
		t.Fatalf("%s: keys by role %v: want 1 current, 1 next, ≥ %d backups", at, roles, w.spec.BackupKeys)
	}

	// The served certificate.
	var tls corev1.Secret
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: w.spec.SecretName}, &tls); err != nil {
		t.Fatalf("%s: serving Secret: %v", at, err)
	}
	cert, err := decodeCert(tls.Data[corev1.TLSCertKey])
	if err != nil {
		t.Fatalf("%s: serving certificate: %v", at, err)
	}
	if now.Before(cert.NotBefore) || !now.Before(cert.NotAfter) {
		t.Fatalf("%s: the served certificate is not valid now (%s..%s)", at, cert.NotBefore, cert.NotAfter)
	}
	if key, err := decodeKey(tls.Data[corev1.TLSPrivateKeyKey]); err != nil || !key.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(cert.PublicKey) {
		t.Fatalf("%s: tls.key does not match tls.crt (%v)", at, err)
	}
	pin := pinset.CertPin(cert)
	if w.first == "" {
		w.first = pin
	}
	if n := len(w.rotation); n == 0 || w.rotation[n-1] != pin {
		w.rotation = append(w.rotation, pin)
	}
	if s, ok := w.served[pin]; !ok || cert.NotAfter.After(s.notAfter) {
		w.served[pin] = served{notAfter: cert.NotAfter}
	}

	// An app refreshes its pin set at least every publishAhead: whatever
	// set it fetched within the last publishAhead must carry the served
	// pin (the first certificate's pin is compiled into the apps).
	if pin != w.first {
		for _, s := range w.sets {
			fetchable := s.until.IsZero() || s.until.After(now.Add(-w.spec.PublishAhead.Duration))
			if fetchable && !slices.Contains(s.pins, pin) {
				t.Fatalf("%s: serving pin %s, which pin set version %d (fetchable %s..%s) lacks: an app holding it fails",
					at, pin, s.version, s.from.Format(time.DateTime), s.until.Format(time.DateTime))
			}
		}
	}
	// A pin stays published while a certificate with it is valid, unless
	// an emergency removed it.
	for p, s := range w.served {
		if now.Before(s.notAfter) && !w.exempt[p] && !slices.Contains(pins, p) {
			t.Fatalf("%s: pin %s was unpublished while its certificate is valid until %s", at, p, s.notAfter)
		}
	}
	// Nothing secret in the events.
	for _, e := range w.events.notes() {
		if strings.Contains(e, "PRIVATE KEY") {
			t.Fatalf("an event carries a private key: %q", e)
		}
	}
}

// recordedEvents is an events.EventRecorder that keeps the notes (the
// manager test checks the real events API).
type recordedEvents struct {
	list []string
}

func (r *recordedEvents) Eventf(_, _ runtime.Object, typ, reason, action, note string, args ...any) {
	r.list = append(r.list, fmt.Sprintf("%s %s %s: %s", typ, reason, action, fmt.Sprintf(note, args...)))
}

func (r *recordedEvents) notes() []string { return r.list }
