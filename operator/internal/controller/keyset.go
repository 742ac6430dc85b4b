package controller

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"strongroom.dev/api/keyset"
	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/operator/internal/keyrotation"
)

// KeySetReconciler keeps each KeySet's Secret (keys.json: every key with
// the window it is published, active and kept in) as the key rotation
// policy wants it.
//
// The state lives only in the Secret and in the KeySet's annotations
// (a revoke under way), never in memory between reconciles and never in
// the status, which is a report. Each write changes one object and is
// checked against the resourceVersion it was decided on, so a reconcile
// killed or failing between any two writes, or whose write was done but
// not answered, resumes from what the API server holds.
type KeySetReconciler struct {
	// Client writes.
	Client client.Client
	// Reader reads the KeySet and its Secret straight from the API server
	// (the manager's APIReader): deciding on a stale cache could publish a
	// key twice, or activate one too early.
	Reader   client.Reader
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	// TracerProvider traces each reconcile; nil means the global one.
	TracerProvider trace.TracerProvider
	// Metrics, if set, shows the times of each status written.
	Metrics *Metrics
}

// +kubebuilder:rbac:groups=strongroom.dev,resources=keysets,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=strongroom.dev,resources=keysets/status,verbs=get;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler: it runs on spec and
// annotation changes of KeySets (not on its own status writes) and on
// changes to the Secrets they own.
func (r *KeySetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.KeySet{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		Named("keyset").
		Complete(r)
}

// keySetObserved is a KeySet and what the API server holds for it.
type keySetObserved struct {
	ks     *v1alpha1.KeySet
	spec   keyrotation.Spec
	secret *corev1.Secret // nil before the first key
	file   *keyset.File   // its keys.json
	state  keyrotation.State
}

// Reconcile implements reconcile.Reconciler.
func (r *KeySetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	ctx, span := startSpan(ctx, r.TracerProvider, kindKeySet, req)
	defer func() { endSpan(span, res, err) }()
	// The KeySet too is read from the API server: the cache may not have
	// this controller's own last writes yet, and deciding on it would
	// only end in conflicts.
	var ks v1alpha1.KeySet
	if err := r.Reader.Get(ctx, req.NamespacedName, &ks); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(kindKeySet, req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !ks.DeletionTimestamp.IsZero() {
		r.Metrics.forget(kindKeySet, req.NamespacedName)
		return ctrl.Result{}, nil // the owner reference deletes the Secret
	}
	// The gauge shows the status as the API server holds it: as read,
	// then as written below. A reconcile that fails leaves the time last
	// written, which runs out: what the alerts look for.
	written := keySetDeadlines(&ks.Status, r.Clock)
	defer func() { r.Metrics.set(kindKeySet, req.NamespacedName, written) }()
	now := r.Clock.Now()
	o, err := r.observe(ctx, &ks)
	if err != nil {
		return r.failed(ctx, &ks, err)
	}
	var step keyrotation.Step
	for i := 0; ; i++ {
		if i == maxSteps {
			return r.failed(ctx, &ks, fmt.Errorf("no steady state after %d steps (last: %s %s)", maxSteps, step.Action, step.Reason))
		}
		step = keyrotation.Decide(now, o.spec, o.state)
		if step.Action == keyrotation.StepWait {
			break
		}
		if err := r.apply(ctx, o, step); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
				// Someone else wrote first (or our own write whose answer
				// was lost): the retry decides again on what is there.
				return ctrl.Result{}, fmt.Errorf("%s: %w", step.Action, err)
			}
			return r.failed(ctx, &ks, fmt.Errorf("%s: %w", step.Action, err))
		}
	}
	if err := r.report(ctx, o, now, step); err != nil {
		return ctrl.Result{}, fmt.Errorf("status: %w", err)
	}
	written = keySetDeadlines(&ks.Status, r.Clock)
	// The exact next transition, never a poll.
	return ctrl.Result{RequeueAfter: requeueAfter(r.Clock, step.At.Sub(now))}, nil
}

// effectiveSpec is ks's policy with the defaults the CRD cannot express
// (they depend on the purpose) applied.
func effectiveSpec(ks *v1alpha1.KeySet) keyrotation.Spec {
	sp := keyrotation.Spec{
		Purpose:           string(ks.Spec.Purpose),
		Algorithm:         string(ks.Spec.Algorithm),
		RotationPeriod:    ks.Spec.RotationPeriod.Duration,
		PublishAhead:      ks.Spec.PublishAhead.Duration,
		RetireAfter:       ks.Spec.RetireAfter.Duration,
		ProtectedLifetime: keyrotation.DefaultProtectedLifetime(string(ks.Spec.Purpose)),
	}
	if algs := keyset.Algorithms(sp.Purpose); sp.Algorithm == "" && len(algs) > 0 {
		sp.Algorithm = algs[0]
	}
	if pl := ks.Spec.ProtectedLifetime; pl != nil {
		sp.ProtectedLifetime = pl.Duration
	}
	return sp
}

// observe reads what the API server holds for ks.
func (r *KeySetReconciler) observe(ctx context.Context, ks *v1alpha1.KeySet) (*keySetObserved, error) {
	o := &keySetObserved{ks: ks, spec: effectiveSpec(ks)}
	if err := o.spec.Validate(); err != nil {
		return nil, &specError{err}
	}
	o.state.RevokeRequested = ks.Annotations[v1alpha1.AnnotationRotateNow] == v1alpha1.RotateNowRevoke
	o.state.Revoking = ks.Annotations[v1alpha1.AnnotationRevoking]

	var sec corev1.Secret
	err := r.Reader.Get(ctx, types.NamespacedName{Namespace: ks.Namespace, Name: ks.Spec.SecretName}, &sec)
	switch {
	case apierrors.IsNotFound(err):
		return o, nil
	case err != nil:
		return nil, fmt.Errorf("read Secret %s: %w", ks.Spec.SecretName, err)
	case !metav1.IsControlledBy(&sec, ks) || sec.Labels[v1alpha1.LabelKeySet] != ks.Name:
		return nil, &keySetConflictError{name: sec.Name}
	}
	f, err := keyset.Parse(sec.Data[keyset.FileName]) // errors never quote key material
	if err != nil {
		return nil, &invalidSecretError{name: sec.Name, err: err}
	}
	if f.Purpose != o.spec.Purpose {
		return nil, &invalidSecretError{name: sec.Name, err: fmt.Errorf("its keys are for %s, not %s", f.Purpose, o.spec.Purpose)}
	}
	o.secret, o.file = &sec, f
	o.state.Exists = true
	o.state.PublishAhead, o.state.ProtectedLifetime = time.Duration(f.PublishAhead), time.Duration(f.ProtectedLifetime)
	for _, k := range f.Keys {
		o.state.Keys = append(o.state.Keys, keyrotation.Key{KID: k.KID, Algorithm: k.Algorithm, NotBefore: k.NotBefore, NotAfter: k.NotAfter})
	}
	return o, nil
}

// apply carries out one step as one write and updates o to match.
func (r *KeySetReconciler) apply(ctx context.Context, o *keySetObserved, step keyrotation.Step) error {
	ks := o.ks
	switch step.Action {
	case keyrotation.StepMarkRevoking:
		if err := r.patchAnnotations(ctx, ks, map[string]*string{v1alpha1.AnnotationRevoking: &step.KID}); err != nil {
			return err
		}
		o.state.Revoking = step.KID
		r.event(ks, corev1.EventTypeWarning, "KeyRevoking", "Revoke", "revoking key %s: %s", step.KID, step.Reason)
		return nil

	case keyrotation.StepClearRevoke:
		remove := map[string]*string{v1alpha1.AnnotationRevoking: nil}
		if o.state.RevokeRequested {
			remove[v1alpha1.AnnotationRotateNow] = nil
		}
		if err := r.patchAnnotations(ctx, ks, remove); err != nil {
			return err
		}
		if step.Refused {
			r.event(ks, corev1.EventTypeWarning, "RevokeRefused", "Revoke", "revoke refused: %s", step.Reason)
		}
		o.state.Revoking, o.state.RevokeRequested = "", false
		return nil
	}
	return r.writeSecret(ctx, o, step)
}

// writeSecret writes the keys.json of step, with new keys generated, in
// one create or update of the Secret.
func (r *KeySetReconciler) writeSecret(ctx context.Context, o *keySetObserved, step keyrotation.Step) error {
	ks := o.ks
	f := &keyset.File{Purpose: o.spec.Purpose, PublishAhead: keyset.Duration(step.PublishAhead), ProtectedLifetime: keyset.Duration(step.ProtectedLifetime)}
	keys := make([]keyrotation.Key, len(step.Keys))
	var added []keyrotation.Key
	for i, k := range step.Keys {
		var priv keyset.Secret
		if k.KID == "" {
			var err error
			if priv, k.KID, err = keyset.Generate(k.Algorithm); err != nil {
				return err
			}
			added = append(added, k)
		} else if priv = o.privateKey(k.KID); priv == nil {
			return fmt.Errorf("key %s is not in the Secret", k.KID) // not reached: steps name observed keys
		}
		keys[i] = k
		f.Keys = append(f.Keys, keyset.Key{KID: k.KID, Algorithm: k.Algorithm, NotBefore: k.NotBefore, NotAfter: k.NotAfter, PrivateKey: priv})
	}
	data, err := f.Marshal()
	if err != nil {
		return err
	}
	sec := o.secret
	if sec == nil {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ks.Namespace, Name: ks.Spec.SecretName}, Type: corev1.SecretTypeOpaque}
		if err := controllerutil.SetControllerReference(ks, sec, r.Client.Scheme()); err != nil {
			return err
		}
	}
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	sec.Labels[v1alpha1.LabelKeySet] = ks.Name
	sec.Labels[v1alpha1.LabelManagedBy] = v1alpha1.ManagedBy
	sec.Data = map[string][]byte{keyset.FileName: data}
	if o.secret == nil {
		err = r.Client.Create(ctx, sec)
	} else {
		err = r.Client.Update(ctx, sec) // carries the resourceVersion it was decided on
	}
	if err != nil {
		return err
	}
	// In the order keys.json has them, as the next reconcile reads them.
	slices.SortFunc(keys, func(a, b keyrotation.Key) int {
		return cmp.Or(a.NotBefore.Compare(b.NotBefore), strings.Compare(a.KID, b.KID))
	})
	o.secret, o.file = sec, f
	o.state.Exists, o.state.Keys = true, keys
	o.state.PublishAhead, o.state.ProtectedLifetime = step.PublishAhead, step.ProtectedLifetime
	r.reportWrite(ks, step, added)
	return nil
}

// reportWrite records the events of a Secret write.
func (r *KeySetReconciler) reportWrite(ks *v1alpha1.KeySet, step keyrotation.Step, added []keyrotation.Key) {
	for _, k := range step.Retired {
		r.event(ks, corev1.EventTypeNormal, "KeyRetired", "RetireKey", "retired key %s: %s", k.KID, step.Reason)
	}
	typ, reason := corev1.EventTypeNormal, "KeyCreated"
	switch step.Action {
	case keyrotation.StepAddEmergencyKey:
		typ, reason = corev1.EventTypeWarning, "NoActiveKey"
	case keyrotation.StepRevoke:
		r.event(ks, corev1.EventTypeWarning, "KeyRevoked", "Revoke", "key %s is revoked and gone from the Secret: %s", step.KID, step.Reason)
	case keyrotation.StepUpdateParams:
		r.event(ks, corev1.EventTypeNormal, "ProtectedLifetimeChanged", "UpdateKeys", "keys.json promises a protected lifetime of %s: %s", step.ProtectedLifetime, step.Reason)
	}
	for _, k := range added {
		r.event(ks, typ, reason, "CreateKey", "created key %s (%s), active from %s, kept until %s: %s",
			k.KID, k.Algorithm, k.NotBefore.UTC().Format(time.RFC3339), k.NotAfter.UTC().Format(time.RFC3339), step.Reason)
	}
}

// patchAnnotations sets (or, for nil values, removes) annotations of ks,
// checked against the resourceVersion it was read at.
func (r *KeySetReconciler) patchAnnotations(ctx context.Context, ks *v1alpha1.KeySet, set map[string]*string) error {
	patch := client.MergeFromWithOptions(ks.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if ks.Annotations == nil {
		ks.Annotations = map[string]string{}
	}
	for k, v := range set {
		if v == nil {
			delete(ks.Annotations, k)
		} else {
			ks.Annotations[k] = *v
		}
	}
	return r.Client.Patch(ctx, ks, patch)
}

func (o *keySetObserved) privateKey(kid string) keyset.Secret {
	if o.file == nil {
		return nil
	}
	for _, k := range o.file.Keys {
		if k.KID == kid {
			return k.PrivateKey
		}
	}
	return nil
}

func (r *KeySetReconciler) event(ks *v1alpha1.KeySet, typ, reason, action, note string, args ...any) {
	event(r.Recorder, ks, typ, reason, action, note, args...)
}

// Errors a person has to fix, told apart for the Ready condition.
type (
	keySetConflictError struct{ name string }
	invalidSecretError  struct {
		name string
		err  error
	}
)

func (e *keySetConflictError) Error() string {
	return fmt.Sprintf("Secret %s exists and is not this KeySet's (owned by it and labelled %s): the operator does not overwrite it",
		e.name, v1alpha1.LabelKeySet)
}

func (e *invalidSecretError) Error() string {
	return fmt.Sprintf("Secret %s: %s is not usable, and the operator does not overwrite it: %v", e.name, keyset.FileName, e.err)
}

func (e *invalidSecretError) Unwrap() error { return e.err }
