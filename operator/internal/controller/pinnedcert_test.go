package controller

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"strongroom.dev/api/pinset"
	"strongroom.dev/api/v1alpha1"
)

var start = time.Date(2027, 1, 4, 9, 0, 0, 0, time.UTC)

// TestTwoYearsOfRotations drives each policy through two years on a fake
// clock against the real API server. After every reconcile the invariant
// holds (world.check): the served pin was in every pin set an app could
// have fetched within publishAhead, pins stay published while their
// certificates are valid, the backups are there, the version only grows.
func TestTwoYearsOfRotations(t *testing.T) {
	short := spec()
	short.Validity.Duration, short.RenewBefore.Duration, short.PublishAhead.Duration = 7*24*time.Hour, 2*24*time.Hour, 3*24*time.Hour
	ca := spec()
	ca.Issuer = v1alpha1.IssuerSpec{CA: &v1alpha1.CAIssuer{SecretName: "bank-ca"}}
	ca.BackupKeys = 3
	ca.KeyAlgorithm = v1alpha1.ECDSAP384
	for name, s := range map[string]v1alpha1.PinnedCertificateSpec{
		"90d self-signed":   spec(),
		"7d self-signed":    short,
		"90d CA, 3 backups": ca,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, s, start)
			rng := rand.New(rand.NewPCG(uint64(len(name)), 7))
			end := start.AddDate(2, 0, 0)
			for w.clk.Now().Before(end) {
				next := w.reconcile()
				if next <= 0 {
					t.Fatalf("%s: no next transition was asked for", w.clk.Now())
				}
				// Mostly jump to the transition the controller asked
				// for; sometimes stop short of it, as a reconcile
				// triggered by something else would.
				if rng.IntN(3) == 0 {
					next = time.Duration(rng.Int64N(int64(next))) + time.Second
				}
				w.clk.Step(next)
			}
			period := s.Validity.Duration - s.RenewBefore.Duration
			if want := int(2*365*24*time.Hour/period) - 1; len(w.rotation) < want {
				t.Fatalf("%d keys served in two years; want at least %d", len(w.rotation), want)
			}
			t.Logf("%d keys served, %d pin set versions", len(w.rotation), len(w.sets))
		})
	}
}

// TestInterruptedReconciles fails the n-th write of a run that spans a
// first start, a rotation and an emergency, for every n, in two ways: the
// write is refused, or it is done but its answer is lost. The work queue
// retries; the invariant holds throughout.
func TestInterruptedReconciles(t *testing.T) {
	s := spec()
	s.Validity.Duration, s.RenewBefore.Duration, s.PublishAhead.Duration = 10*24*time.Hour, 3*24*time.Hour, 4*24*time.Hour
	// One clean run counts the writes.
	total := runScenario(t, s, 0, false)
	if total < 15 {
		t.Fatalf("the scenario made only %d writes", total)
	}
	eachFailedWrite(t, total, func(t *testing.T, n int, lost bool) { runScenario(t, s, n, lost) })
}

// runScenario returns the number of writes. With failAt > 0, write number
// failAt fails: refused, or (lost) done but reported as failed.
func runScenario(t *testing.T, s v1alpha1.PinnedCertificateSpec, failAt int, lost bool) int {
	t.Helper()
	w := newWorld(t, s, start)
	c, writes := failingClient(failAt, lost)
	w.r = w.reconciler(c)
	step := func() { w.clk.Step(w.reconcile()) }
	// First start, then through a rotation and the retirement of the
	// old key, an emergency, and the next rotation.
	for w.clk.Now().Before(start.Add(18 * 24 * time.Hour)) {
		step()
	}
	w.emergency(true)
	for w.clk.Now().Before(start.Add(30 * 24 * time.Hour)) {
		step()
	}
	if len(w.rotation) < 3 {
		t.Fatalf("failAt %d lost %v: %d keys served, want ≥ 3", failAt, lost, len(w.rotation))
	}
	return *writes
}

// emergency annotates the PinnedCertificate with rotate-now: backup,
// reconciles, and checks the outcome: a new serving key (promoted), or
// nothing changed and NoAgedBackup.
func (w *world) emergency(wantPromoted bool) {
	w.t.Helper()
	ctx := context.Background()
	before := w.servedPin()
	var pc v1alpha1.PinnedCertificate
	if err := k8s.Get(ctx, w.req().NamespacedName, &pc); err != nil {
		w.t.Fatal(err)
	}
	patch := client.MergeFrom(pc.DeepCopy())
	if pc.Annotations == nil {
		pc.Annotations = map[string]string{}
	}
	pc.Annotations[v1alpha1.AnnotationRotateNow] = v1alpha1.RotateNowBackup
	if err := k8s.Patch(ctx, &pc, patch); err != nil {
		w.t.Fatal(err)
	}
	// The compromised pin may go at once: that is the emergency.
	w.exempt[before] = true
	w.reconcile()
	after := w.servedPin()
	if err := k8s.Get(ctx, w.req().NamespacedName, &pc); err != nil {
		w.t.Fatal(err)
	}
	if _, still := pc.Annotations[v1alpha1.AnnotationRotateNow]; still {
		w.t.Fatal("the rotate-now annotation was not cleared")
	}
	noAged := meta.IsStatusConditionTrue(pc.Status.Conditions, v1alpha1.ConditionNoAgedBackup)
	switch {
	case wantPromoted && (after == before || noAged):
		w.t.Fatalf("emergency: serving %s before and %s after, NoAgedBackup %v; want a promoted backup", before, after, noAged)
	case !wantPromoted && (after != before || !noAged):
		w.t.Fatalf("emergency without an aged backup: serving %s before and %s after, NoAgedBackup %v; want no change and NoAgedBackup", before, after, noAged)
	}
	if !wantPromoted {
		delete(w.exempt, before)
		return
	}
	// The compromised pin is gone from the pin set right away.
	var cm corev1.ConfigMap
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: w.ns, Name: w.spec.PinSet.ConfigMapName}, &cm); err != nil {
		w.t.Fatal(err)
	}
	set, err := pinset.Verify(cm.Data[pinSetData], w.manifest, 0, w.clk.Now())
	if err != nil {
		w.t.Fatal(err)
	}
	for _, p := range set.Pins {
		if p.SHA256 == before {
			w.t.Fatalf("the compromised pin %s is still published", before)
		}
	}
}

func (w *world) servedPin() string {
	var tls corev1.Secret
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: w.spec.SecretName}, &tls); err != nil {
		w.t.Fatal(err)
	}
	cert, err := decodeCert(tls.Data[corev1.TLSCertKey])
	if err != nil {
		w.t.Fatal(err)
	}
	return pinset.CertPin(cert)
}

// TestEmergency: an aged backup takes over at once; a second emergency
// within publishAhead, with no other aged backup, changes nothing and says
// NoAgedBackup; with two backups, a second one can take over once more.
func TestEmergency(t *testing.T) {
	t.Run("one backup: the second emergency has no aged backup", func(t *testing.T) {
		t.Parallel()
		s := spec()
		s.BackupKeys = 1
		w := newWorld(t, s, start)
		w.reconcile()
		// Before any backup is aged: refused.
		w.emergency(false)
		w.clk.Step(s.PublishAhead.Duration)
		w.reconcile()
		w.emergency(true)
		w.clk.Step(time.Hour)
		w.reconcile()
		w.emergency(false) // the new backup was published an hour ago
		w.clk.Step(s.PublishAhead.Duration)
		w.reconcile()
		w.emergency(true) // now it is aged
	})
	t.Run("backups deleted by hand mid-emergency: the key serves on", func(t *testing.T) {
		t.Parallel()
		s := spec()
		s.BackupKeys = 1
		w := newWorld(t, s, start)
		w.reconcile()
		w.clk.Step(s.PublishAhead.Duration)
		w.reconcile()
		before := w.servedPin()
		// As if a reconcile had marked the serving key compromised and
		// died, and someone then deleted the backup.
		ctx := context.Background()
		var keys corev1.SecretList
		if err := k8s.List(ctx, &keys, client.InNamespace(w.ns), client.HasLabels{v1alpha1.LabelRole}); err != nil {
			t.Fatal(err)
		}
		for i := range keys.Items {
			k := &keys.Items[i]
			switch k.Labels[v1alpha1.LabelRole] {
			case "current":
				k.Labels[v1alpha1.LabelRole] = "compromised"
				if err := k8s.Update(ctx, k); err != nil {
					t.Fatal(err)
				}
			case "backup":
				if err := k8s.Delete(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
		}
		w.reconcile()
		var pc v1alpha1.PinnedCertificate
		if err := k8s.Get(ctx, w.req().NamespacedName, &pc); err != nil {
			t.Fatal(err)
		}
		if after := w.servedPin(); after != before || !meta.IsStatusConditionTrue(pc.Status.Conditions, v1alpha1.ConditionNoAgedBackup) {
			t.Fatalf("serving %s (before %s), NoAgedBackup %v: want the same key and NoAgedBackup", after, before, pc.Status.Conditions)
		}
	})
	t.Run("two backups: two emergencies, the third is refused", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, spec(), start)
		w.reconcile()
		w.clk.Step(spec().PublishAhead.Duration)
		w.reconcile()
		w.emergency(true)
		w.clk.Step(time.Minute)
		w.emergency(true)
		w.clk.Step(time.Minute)
		w.emergency(false)
		// Service goes on: renewals and rotations continue.
		for range 20 {
			w.clk.Step(w.reconcile())
		}
	})
}

// TestManifestKeyChange: apps ship two manifest keys; moving the second to
// the front of spec.pinSet.manifestKeys re-signs the same pins with it
// under a new version, which an app holding the old version accepts.
func TestManifestKeyChange(t *testing.T) {
	s := spec()
	s.PinSet.ManifestKeys = []v1alpha1.ManifestKeyRef{{SecretName: "manifest-a"}, {SecretName: "manifest-b"}}
	w := newWorld(t, s, start)
	onlyA := maps.Clone(w.manifest)
	onlyB := manifestKey(t, w.ns, "manifest-b")
	maps.Copy(w.manifest, onlyB) // the app ships both
	w.reconcile()
	before := w.sets[len(w.sets)-1]
	if _, err := pinset.Verify(w.pinSetJWS(), onlyA, 0, w.clk.Now()); err != nil {
		t.Fatalf("the first pin set is not signed by manifest-a: %v", err)
	}

	var pc v1alpha1.PinnedCertificate
	if err := k8s.Get(context.Background(), w.req().NamespacedName, &pc); err != nil {
		t.Fatal(err)
	}
	pc.Spec.PinSet.ManifestKeys = []v1alpha1.ManifestKeyRef{{SecretName: "manifest-b"}, {SecretName: "manifest-a"}}
	if err := k8s.Update(context.Background(), &pc); err != nil {
		t.Fatal(err)
	}
	w.clk.Step(time.Minute)
	w.reconcile()
	after := w.sets[len(w.sets)-1]
	if after.version != before.version+1 || !slices.Equal(after.pins, before.pins) {
		t.Fatalf("after the switch: version %d pins %v; want version %d with the same pins", after.version, after.pins, before.version+1)
	}
	if _, err := pinset.Verify(w.pinSetJWS(), onlyB, before.version, w.clk.Now()); err != nil {
		t.Fatalf("the new pin set is not signed by manifest-b: %v", err)
	}
	if err := k8s.Get(context.Background(), w.req().NamespacedName, &pc); err != nil {
		t.Fatal(err)
	}
	for kid := range onlyB {
		if pc.Status.ManifestKeyID != kid {
			t.Fatalf("status.manifestKeyID %q, want %q", pc.Status.ManifestKeyID, kid)
		}
	}
	// Nothing more to sign: the next reconcile changes nothing.
	w.reconcile()
	if n := w.sets[len(w.sets)-1].version; n != after.version {
		t.Fatalf("signed again without a reason: version %d", n)
	}
}

func (w *world) pinSetJWS() string {
	var cm corev1.ConfigMap
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: w.ns, Name: w.spec.PinSet.ConfigMapName}, &cm); err != nil {
		w.t.Fatal(err)
	}
	return cm.Data[pinSetData]
}

// TestInvalidPinnedCertificatesAreRefused: the API server refuses bad
// specs with a message that says what is wrong (CEL and OpenAPI rules of
// the CRD), before the operator ever sees them.
func TestInvalidPinnedCertificatesAreRefused(t *testing.T) {
	ns := newNamespace(t)
	d := func(s string) metav1.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return metav1.Duration{Duration: v}
	}
	for _, tc := range []struct {
		name string
		edit func(*v1alpha1.PinnedCertificateSpec)
		want string
	}{
		{"publishAhead too long", func(s *v1alpha1.PinnedCertificateSpec) { s.PublishAhead = d("1440h") },
			"publishAhead must be shorter than validity - renewBefore"},
		{"renewBefore not shorter than validity", func(s *v1alpha1.PinnedCertificateSpec) { s.RenewBefore = d("2160h") },
			"renewBefore must be shorter than validity"},
		{"no backup keys", func(s *v1alpha1.PinnedCertificateSpec) { s.BackupKeys = -1 },
			"spec.backupKeys: Invalid value: -1: spec.backupKeys in body should be greater than or equal to 1"},
		{"too many backup keys", func(s *v1alpha1.PinnedCertificateSpec) { s.BackupKeys = 11 },
			"should be less than or equal to 10"},
		{"two issuers", func(s *v1alpha1.PinnedCertificateSpec) { s.Issuer.CA = &v1alpha1.CAIssuer{SecretName: "ca"} },
			"set exactly one of issuer.selfSigned and issuer.ca"},
		{"no issuer", func(s *v1alpha1.PinnedCertificateSpec) { s.Issuer = v1alpha1.IssuerSpec{} },
			"set exactly one of issuer.selfSigned and issuer.ca"},
		{"no DNS names", func(s *v1alpha1.PinnedCertificateSpec) { s.DNSNames = nil },
			"spec.dnsNames"},
		{"a DNS name with a space", func(s *v1alpha1.PinnedCertificateSpec) { s.DNSNames = []string{"auth bank"} },
			"spec.dnsNames[0]: Invalid value"},
		{"negative validity", func(s *v1alpha1.PinnedCertificateSpec) { s.Validity = d("-1h") },
			"spec.validity"},
		{"unknown key algorithm", func(s *v1alpha1.PinnedCertificateSpec) { s.KeyAlgorithm = "DSA-1024" },
			`spec.keyAlgorithm: Unsupported value: "DSA-1024"`},
		{"no manifest key", func(s *v1alpha1.PinnedCertificateSpec) { s.PinSet.ManifestKeys = nil },
			"spec.pinSet.manifestKeys"},
		{"no pin-set ConfigMap", func(s *v1alpha1.PinnedCertificateSpec) { s.PinSet.ConfigMapName = "" },
			"spec.pinSet.configMapName"},
		{"no Secret name", func(s *v1alpha1.PinnedCertificateSpec) { s.SecretName = "" },
			"spec.secretName"},
		{"a name longer than a label value", func(*v1alpha1.PinnedCertificateSpec) {},
			"the name must be at most 63 characters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := spec()
			tc.edit(&s)
			pc := &v1alpha1.PinnedCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "bad-"}, Spec: s}
			if tc.name == "a name longer than a label value" {
				pc.GenerateName, pc.Name = "", "a"+strings.Repeat("b", 63)
			}
			err := k8s.Create(context.Background(), pc)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("created or failed otherwise: %v", err)
			}
			if !containsFold(err.Error(), tc.want) {
				t.Fatalf("the refusal does not say %q:\n%v", tc.want, err)
			}
		})
	}
	// Durations are Go durations; "14d" is refused by the schema (the
	// typed client cannot even send it, kubectl can).
	u := map[string]any{
		"apiVersion": "strongroom.dev/v1alpha1", "kind": "PinnedCertificate",
		"metadata": map[string]any{"namespace": ns, "name": "days"},
		"spec": map[string]any{
			"secretName": "tls", "dnsNames": []any{"a.example"}, "issuer": map[string]any{"selfSigned": map[string]any{}},
			"publishAhead": "14d", "pinSet": map[string]any{"configMapName": "p", "manifestKeys": []any{map[string]any{"secretName": "m"}}},
		},
	}
	err := k8s.Create(context.Background(), unstructuredObject(u))
	if !apierrors.IsInvalid(err) || !containsFold(err.Error(), "spec.publishAhead") {
		t.Fatalf("publishAhead 14d: %v", err)
	}
	// The defaults make a valid spec.
	var pc v1alpha1.PinnedCertificate
	u["metadata"] = map[string]any{"namespace": ns, "name": "defaults"}
	delete(u["spec"].(map[string]any), "publishAhead")
	if err := k8s.Create(context.Background(), unstructuredObject(u)); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "defaults"}, &pc); err != nil {
		t.Fatal(err)
	}
	if pc.Spec.Validity.Duration != 90*24*time.Hour || pc.Spec.RenewBefore.Duration != 30*24*time.Hour ||
		pc.Spec.PublishAhead.Duration != 14*24*time.Hour || pc.Spec.BackupKeys != 2 || pc.Spec.KeyAlgorithm != v1alpha1.ECDSAP256 {
		t.Fatalf("defaults: %+v", pc.Spec)
	}
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func unstructuredObject(m map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: m}
}
