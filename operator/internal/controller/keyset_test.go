package controller

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"strongroom.dev/api/keyset"
	"strongroom.dev/api/v1alpha1"
)

// TestKeySetTwoYears drives each policy through two years on a fake clock
// against the real API server, with reconciles sometimes early (another
// event) and revokes at random. After every reconcile the invariants hold
// on the real Secret (ksWorld.check).
func TestKeySetTwoYears(t *testing.T) {
	sealing := ksSpec()
	sealing.Purpose, sealing.Algorithm, sealing.SecretName = v1alpha1.PurposePayloadSealing, keyset.XWing, "authd-sealing-keys"
	sealing.RotationPeriod.Duration, sealing.PublishAhead.Duration, sealing.RetireAfter.Duration = 120*time.Hour, 12*time.Hour, 30*time.Minute
	hmac := ksSpec()
	hmac.Purpose, hmac.SecretName = v1alpha1.PurposeHMACSecret, "authd-hmac"
	hmac.RetireAfter.Duration = 48 * time.Hour
	for name, s := range map[string]v1alpha1.KeySetSpec{
		"token-signing defaults":       ksSpec(),
		"payload-sealing X-Wing, 120h": sealing,
		"hmac-secret, 48h retireAfter": hmac,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newKSWorld(t, s, start)
			rng := rand.New(rand.NewPCG(uint64(len(name)), 8))
			end := start.AddDate(2, 0, 0)
			revokes := 0
			for w.clk.Now().Before(end) {
				next := w.reconcile()
				if next <= 0 {
					t.Fatalf("%s: no next transition was asked for", w.at())
				}
				if rng.IntN(3) == 0 {
					next = time.Duration(rng.Int64N(int64(next))) + time.Second
				}
				w.clk.Step(next)
				if rng.IntN(30) == 0 {
					w.annotate(v1alpha1.AnnotationRotateNow, v1alpha1.RotateNowRevoke)
					revokes++
				}
			}
			period := s.RotationPeriod.Duration
			if want := int(2*365*24*time.Hour/period) - 1; len(w.activated) < want {
				t.Fatalf("%d keys active in two years; want at least %d", len(w.activated), want)
			}
			t.Logf("%d keys active in turn, %d revokes", len(w.activated), revokes)
		})
	}
}

// TestKeySetInterruptedReconciles fails the n-th write of a run through a
// first start, a successor, its activation, the old key's retirement and
// a revoke (mark, remove, clear), for every n, in two ways: the write is
// refused, or it is done but its answer is lost. The work queue retries;
// the invariants hold throughout and the end state is right.
func TestKeySetInterruptedReconciles(t *testing.T) {
	total := runKeySetScenario(t, 0, false)
	if total < 10 {
		t.Fatalf("the scenario made only %d writes", total)
	}
	eachFailedWrite(t, total, func(t *testing.T, n int, lost bool) { runKeySetScenario(t, n, lost) })
}

// runKeySetScenario returns the number of writes. With failAt > 0, write
// number failAt fails: refused, or (lost) done but reported as failed.
func runKeySetScenario(t *testing.T, failAt int, lost bool) int {
	t.Helper()
	s := ksSpec()
	s.RotationPeriod.Duration, s.PublishAhead.Duration, s.RetireAfter.Duration = 10*time.Hour, 2*time.Hour, time.Hour
	w := newKSWorld(t, s, start)
	c, writes := failingClient(failAt, lost)
	w.r = w.reconciler(c)
	// First start (key 1); key 2 published (at 8h), active (10h); key 1
	// retired (11h); key 3 published (18h); a revoke of key 2 (19h), which
	// makes key 3 active at once.
	for !w.clk.Now().After(start.Add(11 * time.Hour)) {
		w.clk.Step(w.reconcile())
	}
	w.reconcile()
	if len(w.activated) != 2 || len(w.file.Keys) != 2 {
		t.Fatalf("failAt %d lost %v: %d keys activated, %d in the Secret; want 2 and 2", failAt, lost, len(w.activated), len(w.file.Keys))
	}
	revoked, next := w.activated[1], w.file.Keys[1].KID
	w.clk.Step(time.Hour)
	w.annotate(v1alpha1.AnnotationRotateNow, v1alpha1.RotateNowRevoke)
	w.reconcile()
	w.checkRevoked(revoked)
	if w.active != next {
		t.Fatalf("failAt %d lost %v: %s is active, want the published %s", failAt, lost, w.active, next)
	}
	return *writes
}

// checkRevoked asserts the end of a revoke: kid is gone from the Secret,
// another key is active, the annotations are gone, an event says so.
func (w *ksWorld) checkRevoked(kid string) {
	w.t.Helper()
	_, f := w.secret()
	if slices.ContainsFunc(f.Keys, func(k keyset.Key) bool { return k.KID == kid }) {
		w.t.Fatalf("the revoked key %s is still in the Secret", kid)
	}
	if a, ok := f.Active(w.clk.Now()); !ok || a.KID == kid || w.active != a.KID {
		w.t.Fatalf("after the revoke of %s, %s is active", kid, a.KID)
	}
	ks := w.keySet()
	for _, a := range []string{v1alpha1.AnnotationRotateNow, v1alpha1.AnnotationRevoking} {
		if _, still := ks.Annotations[a]; still {
			w.t.Fatalf("annotation %s left after the revoke", a)
		}
	}
	// (Events follow successful writes: one whose answer was lost has
	// none, but then the marking's event names the key.)
	if !slices.ContainsFunc(w.events.notes(), func(e string) bool {
		return (strings.Contains(e, "KeyRevoked") || strings.Contains(e, "KeyRevoking")) && strings.Contains(e, kid)
	}) {
		w.t.Fatalf("no event names the revoked key %s: %v", kid, w.events.notes())
	}
}

// TestKeySetRevoke: the active key leaves the Secret in the revoke's
// write and the published successor is active at once; later, with no
// successor published, a new key is; both times the annotations are
// cleared and an event names the key.
func TestKeySetRevoke(t *testing.T) {
	t.Parallel()
	s := ksSpec()
	w := newKSWorld(t, s, start)
	w.reconcile()
	w.clk.Step(s.RotationPeriod.Duration - time.Hour) // the successor is published
	w.reconcile()
	if len(w.file.Keys) != 2 {
		t.Fatalf("keys %v", w.file.Keys)
	}
	first, successor := w.file.Keys[0].KID, w.file.Keys[1].KID
	w.annotate(v1alpha1.AnnotationRotateNow, v1alpha1.RotateNowRevoke)
	w.reconcile()
	w.checkRevoked(first)
	if !slices.ContainsFunc(w.events.notes(), func(e string) bool { return strings.Contains(e, "Warning KeyRevoked") && strings.Contains(e, first) }) {
		t.Fatalf("no KeyRevoked event: %v", w.events.notes())
	}
	if w.active != successor || len(w.file.Keys) != 1 {
		t.Fatalf("active %s, keys %v: want the successor %s alone", w.active, w.file.Keys, successor)
	}
	if st := w.keySet().Status; st.ActiveKeyID != successor || st.Keys[0].State != v1alpha1.KeyActive {
		t.Fatalf("status %+v", st)
	}

	w.clk.Step(24 * time.Hour)
	w.reconcile()
	w.annotate(v1alpha1.AnnotationRotateNow, v1alpha1.RotateNowRevoke)
	w.reconcile()
	w.checkRevoked(successor)
	if len(w.file.Keys) != 1 || !w.file.Keys[0].NotBefore.Equal(w.clk.Now()) {
		t.Fatalf("after the second revoke: %v", w.file.Keys)
	}
	// And the plan goes on from the new key.
	for range 6 {
		w.clk.Step(w.reconcile())
	}
}

// TestKeySetRotateNowOther: any other rotate-now value changes nothing;
// the condition and one Warning event say it was ignored.
func TestKeySetRotateNowOther(t *testing.T) {
	t.Parallel()
	w := newKSWorld(t, ksSpec(), start)
	w.reconcile()
	before := w.file
	w.annotate(v1alpha1.AnnotationRotateNow, "backup")
	for range 3 {
		w.reconcile()
	}
	if fmt.Sprint(w.file.Keys) != fmt.Sprint(before.Keys) {
		t.Fatalf("keys changed: %v", w.file.Keys)
	}
	ks := w.keySet()
	if ks.Annotations[v1alpha1.AnnotationRotateNow] != "backup" {
		t.Fatal("the annotation was removed")
	}
	c := meta.FindStatusCondition(ks.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || !strings.Contains(c.Message, `ignored strongroom.dev/rotate-now="backup"`) {
		t.Fatalf("Ready: %+v", c)
	}
	n := 0
	for _, e := range w.events.notes() {
		if strings.Contains(e, "RotateNowIgnored") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d RotateNowIgnored events, want 1: %v", n, w.events.notes())
	}
}

// TestKeySetSecretNotOurs: a Secret of that name that is not the
// KeySet's, or whose keys.json does not parse, is never overwritten;
// Ready says why and a Warning event is recorded; the reconcile fails (a
// retry with backoff).
func TestKeySetSecretNotOurs(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		secret func(ns string, ks *v1alpha1.KeySet) *corev1.Secret
		reason string
	}{
		"someone else's Secret": {func(ns string, _ *v1alpha1.KeySet) *corev1.Secret {
			return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "authd-token-keys"}, Data: map[string][]byte{"x": []byte("y")}}
		}, v1alpha1.ReasonNotOwned},
		"ours, keys.json broken": {func(ns string, ks *v1alpha1.KeySet) *corev1.Secret {
			sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "authd-token-keys",
				Labels: map[string]string{v1alpha1.LabelKeySet: ks.Name}}, Data: map[string][]byte{keyset.FileName: []byte(`{"purpose":"token-signing","keys":[{"kid":"secret-looking-bytes"}]}`)}}
			if err := controllerutil.SetControllerReference(ks, sec, scheme); err != nil {
				t.Fatal(err)
			}
			return sec
		}, v1alpha1.ReasonInvalidSecret},
	} {
		t.Run(name, func(t *testing.T) {
			ns := newNamespace(t)
			ks := createKS(t, ns, "tokens", ksSpec())
			sec := tc.secret(ns, ks)
			if err := k8s.Create(context.Background(), sec); err != nil {
				t.Fatal(err)
			}
			events := &recordedEvents{}
			r := &KeySetReconciler{Client: k8s, Reader: k8s, Clock: clocktesting.NewFakeClock(start), Recorder: events}
			req := types.NamespacedName{Namespace: ns, Name: "tokens"}
			for range 2 {
				if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: req}); err == nil {
					t.Fatal("the reconcile succeeded")
				}
			}
			var after corev1.Secret
			if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: sec.Name}, &after); err != nil {
				t.Fatal(err)
			}
			if after.ResourceVersion != sec.ResourceVersion {
				t.Fatal("the Secret was written")
			}
			if err := k8s.Get(context.Background(), req, ks); err != nil {
				t.Fatal(err)
			}
			c := meta.FindStatusCondition(ks.Status.Conditions, v1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != tc.reason {
				t.Fatalf("Ready: %+v, want False %s", c, tc.reason)
			}
			if len(events.notes()) != 1 || !strings.Contains(events.notes()[0], "Warning "+tc.reason) {
				t.Fatalf("events: %v", events.notes())
			}
			if strings.Contains(c.Message, "secret-looking-bytes") {
				t.Fatalf("the condition quotes the Secret: %s", c.Message)
			}
		})
	}
}

// TestKeySetSpecChanges: a new algorithm applies to keys made afterwards;
// a new protectedLifetime is written into keys.json at once.
func TestKeySetSpecChanges(t *testing.T) {
	t.Parallel()
	s := ksSpec()
	s.Purpose, s.Algorithm, s.SecretName = v1alpha1.PurposePayloadSealing, keyset.XWing, "sealing"
	w := newKSWorld(t, s, start)
	w.reconcile()
	ks := w.keySet()
	ks.Spec.Algorithm = keyset.X25519
	ks.Spec.ProtectedLifetime = &metav1.Duration{Duration: 20 * time.Minute}
	if err := k8s.Update(context.Background(), ks); err != nil {
		t.Fatal(err)
	}
	w.eff = effectiveSpec(ks)
	w.clk.Step(time.Minute)
	w.reconcile()
	if got := time.Duration(w.file.ProtectedLifetime); got != 20*time.Minute || w.file.Keys[0].Algorithm != keyset.XWing {
		t.Fatalf("protected lifetime %s, first key %s", got, w.file.Keys[0].Algorithm)
	}
	for len(w.file.Keys) < 2 {
		w.clk.Step(w.reconcile())
	}
	if a := w.file.Keys[1].Algorithm; a != keyset.X25519 {
		t.Fatalf("the successor is %s", a)
	}
}

// TestInvalidKeySetsAreRefused: the API server refuses bad KeySets with a
// message that says what is wrong (CEL and OpenAPI rules of the CRD),
// before the operator sees them, and applies the defaults.
func TestInvalidKeySetsAreRefused(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	d := func(s string) metav1.Duration {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return metav1.Duration{Duration: v}
	}
	sealing := func(s *v1alpha1.KeySetSpec) { s.Purpose = v1alpha1.PurposePayloadSealing }
	hmac := func(s *v1alpha1.KeySetSpec) { s.Purpose = v1alpha1.PurposeHMACSecret }
	for _, tc := range []struct {
		name string
		edit func(*v1alpha1.KeySetSpec)
		want string // "" when it must be accepted
	}{
		{"HS256 for token-signing", func(s *v1alpha1.KeySetSpec) { s.Algorithm = keyset.HS256 },
			"algorithm does not suit the purpose: token-signing takes ES256"},
		{"ES256 for payload-sealing", func(s *v1alpha1.KeySetSpec) { sealing(s); s.Algorithm = keyset.ES256 },
			"algorithm does not suit the purpose"},
		{"DHKEM-X25519 for payload-sealing", func(s *v1alpha1.KeySetSpec) { sealing(s); s.Algorithm = keyset.X25519 }, ""},
		{"an unknown algorithm", func(s *v1alpha1.KeySetSpec) { s.Algorithm = "RS256" }, `spec.algorithm: Unsupported value: "RS256"`},
		{"an unknown purpose", func(s *v1alpha1.KeySetSpec) { s.Purpose = "signing" }, `spec.purpose: Unsupported value: "signing"`},
		{"token-signing, retireAfter 59m", func(s *v1alpha1.KeySetSpec) { s.RetireAfter = d("59m") },
			"retireAfter must be at least 1h for token-signing: a key must verify the access tokens it signed until they expire"},
		{"token-signing, retireAfter 1h", func(s *v1alpha1.KeySetSpec) { s.RetireAfter = d("1h") }, ""},
		{"hmac-secret, retireAfter 23h", func(s *v1alpha1.KeySetSpec) { hmac(s); s.RetireAfter = d("23h") },
			"retireAfter must be at least 24h for hmac-secret: a secret must check the activation codes it MACed"},
		{"payload-sealing, retireAfter 9m", func(s *v1alpha1.KeySetSpec) { sealing(s); s.RetireAfter = d("9m") },
			"retireAfter must be at least 10m for payload-sealing: a key must open what apps sealed to it"},
		{"payload-sealing, retireAfter 10m", func(s *v1alpha1.KeySetSpec) { sealing(s); s.RetireAfter = d("10m") }, ""},
		{"retireAfter shorter than protectedLifetime", func(s *v1alpha1.KeySetSpec) { s.ProtectedLifetime = ptrDuration(d("30h")) },
			"retireAfter must be at least protectedLifetime"},
		{"a shorter protectedLifetime allows a shorter retireAfter", func(s *v1alpha1.KeySetSpec) {
			s.ProtectedLifetime, s.RetireAfter = ptrDuration(d("5m")), d("5m")
		}, ""},
		{"publishAhead = rotationPeriod", func(s *v1alpha1.KeySetSpec) { s.PublishAhead = s.RotationPeriod },
			"publishAhead must be shorter than rotationPeriod"},
		{"publishAhead > rotationPeriod", func(s *v1alpha1.KeySetSpec) { s.PublishAhead = d("1000h") },
			"publishAhead must be shorter than rotationPeriod"},
		{"retireAfter > 100 rotation periods", func(s *v1alpha1.KeySetSpec) {
			s.RotationPeriod, s.PublishAhead, s.RetireAfter = d("1h"), d("10m"), d("101h")
		}, "retireAfter must be at most 100 times rotationPeriod"},
		{"zero rotationPeriod", func(s *v1alpha1.KeySetSpec) { s.RotationPeriod = d("0s") }, "rotationPeriod must be positive"},
		{"negative publishAhead", func(s *v1alpha1.KeySetSpec) { s.PublishAhead = d("-1h") }, "spec.publishAhead"},
		{"no Secret name", func(s *v1alpha1.KeySetSpec) { s.SecretName = "" }, "spec.secretName"},
		{"a Secret name with a space", func(s *v1alpha1.KeySetSpec) { s.SecretName = "a b" }, "spec.secretName: Invalid value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ksSpec()
			tc.edit(&s)
			ks := &v1alpha1.KeySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "ks-"}, Spec: s}
			err := k8s.Create(context.Background(), ks)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
			case !apierrors.IsInvalid(err):
				t.Fatalf("created or failed otherwise: %v", err)
			case !containsFold(err.Error(), tc.want):
				t.Fatalf("the refusal does not say %q:\n%v", tc.want, err)
			}
		})
	}

	// Durations are Go durations ("30d" is refused); the defaults.
	u := map[string]any{
		"apiVersion": "strongroom.dev/v1alpha1", "kind": "KeySet",
		"metadata": map[string]any{"namespace": ns, "name": "days"},
		"spec":     map[string]any{"purpose": "hmac-secret", "secretName": "hmac", "rotationPeriod": "30d"},
	}
	if err := k8s.Create(context.Background(), unstructuredObject(u)); !apierrors.IsInvalid(err) || !containsFold(err.Error(), "spec.rotationPeriod") {
		t.Fatalf("rotationPeriod 30d: %v", err)
	}
	u["metadata"] = map[string]any{"namespace": ns, "name": "defaults"}
	delete(u["spec"].(map[string]any), "rotationPeriod")
	if err := k8s.Create(context.Background(), unstructuredObject(u)); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	var ks v1alpha1.KeySet
	if err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "defaults"}, &ks); err != nil {
		t.Fatal(err)
	}
	if ks.Spec.RotationPeriod.Duration != 720*time.Hour || ks.Spec.PublishAhead.Duration != 24*time.Hour ||
		ks.Spec.RetireAfter.Duration != 24*time.Hour || ks.Spec.Algorithm != "" || ks.Spec.ProtectedLifetime != nil {
		t.Fatalf("defaults: %+v", ks.Spec)
	}
	if eff := effectiveSpec(&ks); eff.Algorithm != keyset.HS256 || eff.ProtectedLifetime != 24*time.Hour || eff.Validate() != nil {
		t.Fatalf("effective: %+v (%v)", eff, eff.Validate())
	}

	// purpose and secretName are immutable; the algorithm may change.
	for _, tc := range []struct {
		edit func(*v1alpha1.KeySetSpec)
		want string
	}{
		{func(s *v1alpha1.KeySetSpec) { s.Purpose = v1alpha1.PurposeTokenSigning }, "purpose is immutable"},
		{func(s *v1alpha1.KeySetSpec) { s.SecretName = "other" }, "secretName is immutable"},
	} {
		changed := ks.DeepCopy()
		tc.edit(&changed.Spec)
		if err := k8s.Update(context.Background(), changed); !apierrors.IsInvalid(err) || !containsFold(err.Error(), tc.want) {
			t.Fatalf("want %q: %v", tc.want, err)
		}
	}
	sealed := createKS(t, ns, "sealing", func() v1alpha1.KeySetSpec { s := ksSpec(); sealing(&s); s.SecretName = "sealing"; return s }())
	sealed.Spec.Algorithm = keyset.X25519
	if err := k8s.Update(context.Background(), sealed); err != nil {
		t.Fatalf("algorithm change: %v", err)
	}
	// The name is a label value on the Secret: at most 63 characters.
	long := &v1alpha1.KeySet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: strings.Repeat("k", 64)}, Spec: ksSpec()}
	if err := k8s.Create(context.Background(), long); !apierrors.IsInvalid(err) || !containsFold(err.Error(), "at most 63 characters") {
		t.Fatalf("a 64-character name: %v", err)
	}
}

func ptrDuration(d metav1.Duration) *metav1.Duration { return &d }
