package controller

import (
	"context"
	"encoding/base64"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"strongroom.dev/api/keyset"
	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/operator/internal/keyrotation"
)

// ksWorld is one KeySet under test, driven by direct Reconcile calls on a
// fake clock against the real API server, and what a reader of its
// Secret (authd) saw of it, checked after every reconcile:
//
//	I1 once the set exists, some key is active at every instant;
//	I2 a key becomes active only after it has been in the Secret for
//	   publishAhead (except the first key and a key a revoke activated);
//	I3 a key stays in the Secret, within its window, for retireAfter after
//	   it was last active (except a revoked key, which leaves at once);
//	I4 not_before never changes and not_after only grows, except in a
//	   revoke;
//	I5 keys.json always parses.
type ksWorld struct {
	t        testing.TB
	ns, name string
	spec     v1alpha1.KeySetSpec
	eff      keyrotation.Spec
	clk      *clocktesting.FakeClock
	r        *KeySetReconciler
	events   *recordedEvents

	file      *keyset.File // as last seen
	seenAt    time.Time
	firstSeen map[string]time.Time
	exempt    map[string]bool // may be active without publishAhead
	revoked   map[string]bool
	stopped   map[string]time.Time // kid → when it stopped being active
	active    string
	activated []string // kids in the order they became active
	private   []string // every private key seen, base64url
	revoking  bool     // a revoke was asked for since the last check
}

func newKSWorld(t testing.TB, s v1alpha1.KeySetSpec, start time.Time) *ksWorld {
	t.Helper()
	w := &ksWorld{
		t: t, ns: newNamespace(t), name: "tokens", spec: s,
		clk: clocktesting.NewFakeClock(start), events: &recordedEvents{},
		firstSeen: map[string]time.Time{}, exempt: map[string]bool{}, revoked: map[string]bool{}, stopped: map[string]time.Time{},
	}
	ks := createKS(t, w.ns, w.name, s)
	w.eff = effectiveSpec(ks)
	w.r = w.reconciler(k8s)
	return w
}

func (w *ksWorld) reconciler(c client.Client) *KeySetReconciler {
	return &KeySetReconciler{Client: c, Reader: c, Clock: w.clk, Recorder: w.events}
}

func (w *ksWorld) req() ctrl.Request {
	return ctrl.Request{NamespacedName: types.NamespacedName{Namespace: w.ns, Name: w.name}}
}

// reconcile runs reconciles until one succeeds (as the work queue would
// retry), checks the invariants, and returns when to come back.
func (w *ksWorld) reconcile() time.Duration {
	w.t.Helper()
	for i := 0; ; i++ {
		res, err := w.r.Reconcile(context.Background(), w.req())
		if err == nil {
			w.check(res.RequeueAfter)
			w.idle(res.RequeueAfter)
			return res.RequeueAfter
		}
		if i == 10 {
			w.t.Fatalf("%s: reconcile keeps failing: %v", w.at(), err)
		}
	}
}

// idle reconciles once more at the same instant: at rest, a reconcile
// reads and writes nothing, and asks for the same next transition.
func (w *ksWorld) idle(requeue time.Duration) {
	w.t.Helper()
	var reads, writes atomic.Int64
	res, err := w.reconciler(countingClient(&reads, &writes)).Reconcile(context.Background(), w.req())
	if err != nil || writes.Load() != 0 || res.RequeueAfter != requeue {
		w.t.Fatalf("%s: a reconcile at rest: %v, %d writes, requeue after %s (was %s)", w.at(), err, writes.Load(), res.RequeueAfter, requeue)
	}
}

func (w *ksWorld) at() string { return w.clk.Now().UTC().Format(time.RFC3339) }

// keySet reads the KeySet.
func (w *ksWorld) keySet() *v1alpha1.KeySet {
	w.t.Helper()
	var ks v1alpha1.KeySet
	if err := k8s.Get(context.Background(), w.req().NamespacedName, &ks); err != nil {
		w.t.Fatal(err)
	}
	return &ks
}

// secret reads and parses the KeySet's Secret (I5).
func (w *ksWorld) secret() (*corev1.Secret, *keyset.File) {
	w.t.Helper()
	var sec corev1.Secret
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: w.spec.SecretName}, &sec); err != nil {
		w.t.Fatalf("%s: Secret: %v", w.at(), err)
	}
	f, err := keyset.Parse(sec.Data[keyset.FileName])
	if err != nil {
		w.t.Fatalf("%s: keys.json does not parse (I5): %v", w.at(), err)
	}
	return &sec, f
}

// check asserts the invariants on what the API server holds now.
func (w *ksWorld) check(requeue time.Duration) {
	t, now := w.t, w.clk.Now()
	t.Helper()
	sec, f := w.secret()
	ks := w.keySet()
	if sec.Type != corev1.SecretTypeOpaque || len(sec.Data) != 1 || !metav1.IsControlledBy(sec, ks) ||
		sec.Labels[v1alpha1.LabelKeySet] != w.name || sec.Labels[v1alpha1.LabelManagedBy] != v1alpha1.ManagedBy {
		t.Fatalf("%s: Secret type %s, %d data keys, labels %v, owners %v", w.at(), sec.Type, len(sec.Data), sec.Labels, sec.OwnerReferences)
	}
	if f.Purpose != w.eff.Purpose || time.Duration(f.ProtectedLifetime) != w.eff.ProtectedLifetime {
		t.Fatalf("%s: keys.json for %s, protected lifetime %s", w.at(), f.Purpose, time.Duration(f.ProtectedLifetime))
	}

	// The old keys.json was in effect until now: every instant at which
	// its active key changed.
	if w.file != nil {
		var points []time.Time
		for _, k := range w.file.Keys {
			for _, p := range []time.Time{k.NotBefore, k.NotAfter} {
				if p.After(w.seenAt) && p.Before(now) {
					points = append(points, p)
				}
			}
		}
		slices.SortFunc(points, time.Time.Compare)
		for _, p := range points {
			w.observe(w.file, p)
		}
	}
	w.compare(w.file, f, now)
	w.file, w.seenAt = f, now
	w.observe(f, now)
	w.revoking = false

	// The status reports it, without key material.
	active, _ := f.Active(now)
	st := ks.Status
	if st.ActiveKeyID != active.KID || !meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady) || st.ObservedGeneration != ks.Generation {
		t.Fatalf("%s: status %+v; active %s", w.at(), st, active.KID)
	}
	if len(st.Keys) != len(f.Keys) || st.NextTransitionTime == nil || st.NextRotationTime == nil {
		t.Fatalf("%s: status keys %v, file keys %v", w.at(), st.Keys, f.Keys)
	}
	if requeue > time.Second && !st.NextTransitionTime.Time.Equal(now.Add(requeue).Truncate(time.Second)) {
		t.Fatalf("%s: requeued after %s, status says next transition %s", w.at(), requeue, st.NextTransitionTime)
	}
	for _, k := range f.Keys {
		if p := base64.RawURLEncoding.EncodeToString(k.PrivateKey); !slices.Contains(w.private, p) {
			w.private = append(w.private, p)
		}
	}
	for _, e := range w.events.notes() {
		for _, p := range w.private {
			if strings.Contains(e, p) {
				t.Fatalf("an event carries a private key: %q", e)
			}
		}
	}
}

// compare checks I4 from one keys.json to the next, and that keys leave
// only past their not_after (or revoked).
func (w *ksWorld) compare(old, f *keyset.File, now time.Time) {
	t := w.t
	t.Helper()
	if old == nil {
		for _, k := range f.Keys {
			w.firstSeen[k.KID], w.exempt[k.KID] = now, true // the first key
		}
		return
	}
	for _, o := range old.Keys {
		i := slices.IndexFunc(f.Keys, func(k keyset.Key) bool { return k.KID == o.KID })
		switch {
		case i < 0 && w.revoking && now.Before(o.NotAfter):
			w.revoked[o.KID] = true
		case i < 0 && now.Before(o.NotAfter):
			t.Fatalf("%s: key %s left the Secret before its not_after", w.at(), o)
		case i < 0:
		case w.revoking && !f.Keys[i].NotBefore.Equal(o.NotBefore):
			if !f.Keys[i].NotBefore.Equal(now) {
				t.Fatalf("%s: a revoke moved %s to %s", w.at(), o, f.Keys[i])
			}
			w.exempt[o.KID] = true // activated at once by the revoke
		case !f.Keys[i].NotBefore.Equal(o.NotBefore) || f.Keys[i].NotAfter.Before(o.NotAfter):
			t.Fatalf("%s: key %s became %s (I4)", w.at(), o, f.Keys[i])
		}
	}
	for _, k := range f.Keys {
		if _, ok := w.firstSeen[k.KID]; !ok {
			w.firstSeen[k.KID] = now
			if w.revoking && k.NotBefore.Equal(now) {
				w.exempt[k.KID] = true // made by the revoke, active at once
			}
		}
	}
}

// observe records which key f makes active at t and checks I1–I3 there.
func (w *ksWorld) observe(f *keyset.File, t time.Time) {
	w.t.Helper()
	at := t.UTC().Format(time.RFC3339)
	k, ok := f.Active(t)
	if !ok {
		w.t.Fatalf("%s: no key is active (I1)", at)
	}
	if k.KID != w.active {
		if w.active != "" {
			w.stopped[w.active] = t
		}
		if seen := w.firstSeen[k.KID]; !w.exempt[k.KID] && t.Sub(seen) < w.eff.PublishAhead {
			w.t.Fatalf("%s: key %s active, in the Secret only since %s (I2)", at, k.KID, seen.UTC().Format(time.RFC3339))
		}
		if _, again := w.stopped[k.KID]; again {
			w.t.Fatalf("%s: key %s active again", at, k.KID)
		}
		w.active = k.KID
		w.activated = append(w.activated, k.KID)
	}
	for kid, when := range w.stopped {
		i := slices.IndexFunc(f.Keys, func(k keyset.Key) bool { return k.KID == kid })
		switch {
		case w.revoked[kid] || !t.Before(when.Add(w.eff.RetireAfter)):
			if i < 0 {
				delete(w.stopped, kid)
			}
		case i < 0:
			w.t.Fatalf("%s: key %s stopped being active at %s and is gone already (I3)", at, kid, when.UTC().Format(time.RFC3339))
		case f.Keys[i].NotAfter.Before(when.Add(w.eff.RetireAfter)):
			w.t.Fatalf("%s: key %s stopped being active at %s and is retired at %s (I3)", at, kid, when.UTC().Format(time.RFC3339), f.Keys[i].NotAfter)
		}
	}
}

// annotate sets (or, with "", removes) an annotation of the KeySet.
func (w *ksWorld) annotate(key, value string) {
	w.t.Helper()
	ks := w.keySet()
	patch := client.MergeFrom(ks.DeepCopy())
	if ks.Annotations == nil {
		ks.Annotations = map[string]string{}
	}
	if value == "" {
		delete(ks.Annotations, key)
	} else {
		ks.Annotations[key] = value
	}
	if err := k8s.Patch(context.Background(), ks, patch); err != nil {
		w.t.Fatal(err)
	}
	if key == v1alpha1.AnnotationRotateNow && value == v1alpha1.RotateNowRevoke {
		w.revoking = true
	}
}

// ksSpec is a valid KeySet spec (the token-signing defaults); tests
// change what they need.
func ksSpec() v1alpha1.KeySetSpec {
	return v1alpha1.KeySetSpec{
		Purpose:        v1alpha1.PurposeTokenSigning,
		SecretName:     "authd-token-keys",
		RotationPeriod: metav1.Duration{Duration: 720 * time.Hour},
		PublishAhead:   metav1.Duration{Duration: 24 * time.Hour},
		RetireAfter:    metav1.Duration{Duration: 24 * time.Hour},
	}
}

// createKS creates a KeySet named name in ns.
func createKS(t testing.TB, ns, name string, s v1alpha1.KeySetSpec) *v1alpha1.KeySet {
	t.Helper()
	ks := &v1alpha1.KeySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: s}
	if err := k8s.Create(context.Background(), ks); err != nil {
		t.Fatalf("create KeySet: %v", err)
	}
	return ks
}
