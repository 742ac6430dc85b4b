// Package controller holds the operator's reconcilers, one per resource
// kind. They observe, ask the pure policies of internal/rotation what to
// do next, and carry it out one API write at a time.
package controller

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
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
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"strongroom.dev/api/pinset"
	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/operator/internal/rotation"
)

// What the operator writes on the objects it owns.
const (
	// annotationCertsExpire, on a key Secret: when the last certificate
	// issued (or about to be issued) with the key expires.
	annotationCertsExpire = "strongroom.dev/certificates-expire"
	// annotationServingKey, on the serving Secret: the key Secret it uses.
	annotationServingKey = "strongroom.dev/key"
	// annotationPublishedAt, on the pin-set ConfigMap: JSON {pin: time}
	// of when a pin set first carried each published pin. It is written
	// in the same update as the pin set, so the two never disagree.
	annotationPublishedAt = "strongroom.dev/published-at"
	// annotationManifestKey, on the pin-set ConfigMap: the manifest-key
	// Secret that signed it. When spec.pinSet.manifestKeys[0] names
	// another, the pin set is signed again.
	annotationManifestKey = "strongroom.dev/manifest-key"

	keyData    = "key.pem"
	pinData    = "pin"
	pinSetData = "pinset.json"
	androidXML = "android.xml"

	// maxSteps bounds the writes of one reconcile. A converging policy
	// needs far fewer (a first start takes about eight); hitting it is a
	// bug, reported rather than looped on.
	maxSteps = 64
)

// PinnedCertificateReconciler keeps each PinnedCertificate's keys, pin
// set and serving certificate as the rotation policy wants them.
//
// The state lives only in the objects it writes (key Secrets, the serving
// Secret, the pin-set ConfigMap), never in memory between reconciles and
// never in the status, which is a report. Each write changes one object
// and is checked against the resourceVersion it was decided on, so a
// reconcile killed or failing between any two writes resumes from what
// the API server holds.
type PinnedCertificateReconciler struct {
	// Client writes.
	Client client.Client
	// Reader reads the PinnedCertificate and its owned Secrets and
	// ConfigMaps straight from the API server (the manager's APIReader):
	// deciding on a stale cache could create a key twice.
	Reader   client.Reader
	Clock    clock.PassiveClock
	Recorder events.EventRecorder
	Signers  ManifestSigners
	// TracerProvider traces each reconcile; nil means the global one.
	TracerProvider trace.TracerProvider
	// Metrics, if set, shows the times of each status written.
	Metrics *Metrics
}

// +kubebuilder:rbac:groups=strongroom.dev,resources=pinnedcertificates,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=strongroom.dev,resources=pinnedcertificates/status,verbs=get;update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;update;delete
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// SetupWithManager registers the reconciler: it runs on spec and
// annotation changes of PinnedCertificates (not on its own status writes)
// and on changes to the Secrets and ConfigMaps it owns.
func (r *PinnedCertificateReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.PinnedCertificate{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&corev1.Secret{}).
		Owns(&corev1.ConfigMap{}).
		Named("pinnedcertificate").
		Complete(r)
}

// observed is a PinnedCertificate and what the API server holds for it.
type observed struct {
	pc        *v1alpha1.PinnedCertificate
	spec      rotation.Spec
	keys      map[string]*corev1.Secret
	signers   map[string]crypto.Signer
	serving   *corev1.Secret
	pinSet    *corev1.ConfigMap
	published map[string]time.Time // pin → first published
	state     rotation.State
}

// Reconcile implements reconcile.Reconciler.
func (r *PinnedCertificateReconciler) Reconcile(ctx context.Context, req ctrl.Request) (res ctrl.Result, err error) {
	ctx, span := startSpan(ctx, r.TracerProvider, kindPinnedCertificate, req)
	defer func() { endSpan(span, res, err) }()
	// The PinnedCertificate too is read from the API server: the cache may
	// not have this controller's own last writes yet, and deciding on it
	// would only end in conflicts.
	var pc v1alpha1.PinnedCertificate
	if err := r.Reader.Get(ctx, req.NamespacedName, &pc); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.forget(kindPinnedCertificate, req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !pc.DeletionTimestamp.IsZero() {
		r.Metrics.forget(kindPinnedCertificate, req.NamespacedName)
		return ctrl.Result{}, nil // owner references delete the rest
	}
	// The gauges show the status as the API server holds it: as read,
	// then as written below. A reconcile that fails leaves the times
	// last written, which run out: what the alerts look for.
	written := pinnedCertificateDeadlines(&pc.Status, r.Clock)
	defer func() { r.Metrics.set(kindPinnedCertificate, req.NamespacedName, written) }()
	now := r.Clock.Now()
	o, err := r.observe(ctx, &pc)
	if err != nil {
		return r.failed(ctx, &pc, err)
	}
	var step rotation.Step
	for i := 0; ; i++ {
		if i == maxSteps {
			return r.failed(ctx, &pc, fmt.Errorf("no steady state after %d steps (last: %s %s)", maxSteps, step.Action, step.Reason))
		}
		step = rotation.Decide(now, o.spec, o.state)
		if step.Action == rotation.StepWait {
			break
		}
		if err := r.apply(ctx, o, now, step); err != nil {
			if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
				// Someone else wrote first (or our own write whose answer
				// was lost): the retry decides again on what is there.
				return ctrl.Result{}, fmt.Errorf("%s: %w", step.Action, err)
			}
			return r.failed(ctx, &pc, fmt.Errorf("%s: %w", step.Action, err))
		}
	}
	if err := r.report(ctx, o, step); err != nil {
		return ctrl.Result{}, fmt.Errorf("status: %w", err)
	}
	written = pinnedCertificateDeadlines(&pc.Status, r.Clock)
	if step.At.IsZero() {
		return ctrl.Result{}, nil
	}
	// The exact next transition, never a poll.
	return ctrl.Result{RequeueAfter: requeueAfter(r.Clock, step.At.Sub(now))}, nil
}

// observe reads what the API server holds for pc.
func (r *PinnedCertificateReconciler) observe(ctx context.Context, pc *v1alpha1.PinnedCertificate) (*observed, error) {
	o := &observed{
		pc: pc,
		spec: rotation.Spec{
			Validity:     pc.Spec.Validity.Duration,
			RenewBefore:  pc.Spec.RenewBefore.Duration,
			PublishAhead: pc.Spec.PublishAhead.Duration,
			Backups:      int(pc.Spec.BackupKeys),
		},
		keys:      map[string]*corev1.Secret{},
		signers:   map[string]crypto.Signer{},
		published: map[string]time.Time{},
	}
	if err := o.spec.Validate(); err != nil {
		return nil, &specError{err}
	}
	if len(pc.Spec.PinSet.ManifestKeys) == 0 {
		return nil, &specError{errors.New("pinSet.manifestKeys names no manifest key")}
	}
	o.state.EmergencyRequested = pc.Annotations[v1alpha1.AnnotationRotateNow] == v1alpha1.RotateNowBackup

	var list corev1.SecretList
	if err := r.Reader.List(ctx, &list, client.InNamespace(pc.Namespace),
		client.MatchingLabels{v1alpha1.LabelPinnedCertificate: pc.Name}, client.HasLabels{v1alpha1.LabelRole}); err != nil {
		return nil, fmt.Errorf("list key Secrets: %w", err)
	}
	for i := range list.Items {
		sec := &list.Items[i]
		if !metav1.IsControlledBy(sec, pc) {
			continue // left over from a deleted namesake, or not ours
		}
		signer, err := decodeKey(sec.Data[keyData])
		if err != nil {
			// A key that no longer parses cannot serve: treat its Secret
			// as retired so that it is unpublished and deleted.
			log.FromContext(ctx).Error(err, "key Secret unusable; retiring it", "secret", sec.Name)
			o.state.Keys = append(o.state.Keys, rotation.Key{Name: sec.Name, Role: rotation.Retired})
			o.keys[sec.Name] = sec
			continue
		}
		pin, err := pinset.PinOf(signer.Public())
		if err != nil {
			return nil, fmt.Errorf("key Secret %q: %w", sec.Name, err)
		}
		k := rotation.Key{Name: sec.Name, Pin: pin, Role: rotation.Role(sec.Labels[v1alpha1.LabelRole])}
		switch k.Role {
		case rotation.Current, rotation.Next, rotation.Backup, rotation.Retired, rotation.Compromised:
		default:
			k.Role = rotation.Retired // edited by hand: never serve it again
		}
		if v, ok := sec.Annotations[annotationCertsExpire]; ok {
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				k.CertsExpire = t
			}
		}
		o.keys[sec.Name], o.signers[sec.Name] = sec, signer
		o.state.Keys = append(o.state.Keys, k)
	}
	slices.SortFunc(o.state.Keys, func(a, b rotation.Key) int { return strings.Compare(a.Name, b.Name) })

	if err := r.getOwned(ctx, pc, pc.Spec.PinSet.ConfigMapName, &o.pinSet); err != nil {
		return nil, err
	}
	o.state.PinSetVersion = pc.Status.PinSetVersion
	if o.pinSet != nil {
		if set, err := unverifiedPayload(o.pinSet.Data[pinSetData]); err == nil {
			// The version only grows, even if the ConfigMap was deleted
			// and recreated: the status remembers the highest seen.
			o.state.PinSetVersion = max(o.state.PinSetVersion, set.Version)
			for _, p := range set.Pins {
				o.state.PublishedPins = append(o.state.PublishedPins, p.SHA256)
			}
		}
		o.state.Resign = o.pinSet.Annotations[annotationManifestKey] != pc.Spec.PinSet.ManifestKeys[0].SecretName
		if v := o.pinSet.Annotations[annotationPublishedAt]; v != "" {
			_ = json.Unmarshal([]byte(v), &o.published) // unreadable: pins count as new
		}
	}
	for i, k := range o.state.Keys {
		if t, ok := o.published[k.Pin]; ok && slices.Contains(o.state.PublishedPins, k.Pin) {
			o.state.Keys[i].Published = t
		}
	}

	if err := r.getOwned(ctx, pc, pc.Spec.SecretName, &o.serving); err != nil {
		return nil, err
	}
	if o.serving != nil {
		if cert, err := decodeCert(o.serving.Data[corev1.TLSCertKey]); err == nil {
			pin := pinset.CertPin(cert)
			name := "(deleted key " + pin + ")"
			for _, k := range o.state.Keys {
				if k.Pin == pin {
					name = k.Name
				}
			}
			o.state.Serving = &rotation.Cert{Key: name, NotBefore: cert.NotBefore, NotAfter: cert.NotAfter}
		}
	}
	return o, nil
}

// getOwned reads the Secret or ConfigMap name into *into (nil when it does
// not exist). One that exists but is not pc's is an error: the operator
// never overwrites what it does not own.
func (r *PinnedCertificateReconciler) getOwned(ctx context.Context, pc *v1alpha1.PinnedCertificate, name string, into any) error {
	var obj client.Object
	switch into.(type) {
	case **corev1.Secret:
		obj = &corev1.Secret{}
	case **corev1.ConfigMap:
		obj = &corev1.ConfigMap{}
	}
	err := r.Reader.Get(ctx, types.NamespacedName{Namespace: pc.Namespace, Name: name}, obj)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case err != nil:
		return fmt.Errorf("read %s: %w", name, err)
	case !metav1.IsControlledBy(obj, pc):
		return &conflictError{name: name}
	}
	switch p := into.(type) {
	case **corev1.Secret:
		*p = obj.(*corev1.Secret)
	case **corev1.ConfigMap:
		*p = obj.(*corev1.ConfigMap)
	}
	return nil
}

// apply carries out one step as one write and updates o to match.
func (r *PinnedCertificateReconciler) apply(ctx context.Context, o *observed, now time.Time, step rotation.Step) error {
	pc := o.pc
	switch step.Action {
	case rotation.StepCreateKey:
		key, err := generateKey(pc.Spec.KeyAlgorithm)
		if err != nil {
			return err
		}
		pemKey, err := encodeKey(key)
		if err != nil {
			return err
		}
		pin, err := pinset.PinOf(key.Public())
		if err != nil {
			return err
		}
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: pc.Namespace,
				Name:      o.nextKeyName(),
				Labels: map[string]string{v1alpha1.LabelPinnedCertificate: pc.Name, v1alpha1.LabelRole: string(step.Role),
					v1alpha1.LabelManagedBy: v1alpha1.ManagedBy},
			},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{keyData: pemKey, pinData: []byte(pin)},
		}
		if err := r.own(pc, sec); err != nil {
			return err
		}
		if err := r.Client.Create(ctx, sec); err != nil {
			return err
		}
		o.keys[sec.Name], o.signers[sec.Name] = sec, key
		o.state.Keys = append(o.state.Keys, rotation.Key{Name: sec.Name, Pin: pin, Role: step.Role})
		r.event(pc, corev1.EventTypeNormal, "KeyCreated", "CreateKey", "created %s key %s (pin %s): %s", step.Role, sec.Name, pin, step.Reason)

	case rotation.StepSetRole:
		sec := o.keys[step.Key]
		sec.Labels[v1alpha1.LabelRole] = string(step.Role)
		sec.Labels[v1alpha1.LabelManagedBy] = v1alpha1.ManagedBy
		if err := r.Client.Update(ctx, sec); err != nil {
			return err
		}
		k := o.key(step.Key)
		k.Role = step.Role
		reason, typ := "KeyRole", corev1.EventTypeNormal
		switch {
		case step.Role == rotation.Compromised:
			reason, typ = "EmergencyRotation", corev1.EventTypeWarning
		case step.NoAgedBackup:
			reason, typ = "NoAgedBackup", corev1.EventTypeWarning
			setCondition(&pc.Status.Conditions, pc.Generation, v1alpha1.ConditionNoAgedBackup, metav1.ConditionTrue, "NoAgedBackup", step.Reason)
		}
		r.event(pc, typ, reason, "SetRole", "key %s (pin %s) is now %s: %s", step.Key, k.Pin, step.Role, step.Reason)

	case rotation.StepPublish:
		if err := r.publish(ctx, o, now, step); err != nil {
			return err
		}
		r.event(pc, corev1.EventTypeNormal, "PinSetPublished", "Publish", "published pin set version %d with %d pins: %s", step.Version, len(step.Pins), step.Reason)

	case rotation.StepRecordExpiry:
		sec := o.keys[step.Key]
		if sec.Annotations == nil {
			sec.Annotations = map[string]string{}
		}
		sec.Annotations[annotationCertsExpire] = step.NotAfter.UTC().Format(time.RFC3339Nano)
		if err := r.Client.Update(ctx, sec); err != nil {
			return err
		}
		o.key(step.Key).CertsExpire = step.NotAfter

	case rotation.StepIssue:
		if err := r.issue(ctx, o, step); err != nil {
			return err
		}
		r.event(pc, corev1.EventTypeNormal, "CertificateIssued", "Issue", "serving a certificate with key %s (pin %s) valid until %s: %s",
			step.Key, o.key(step.Key).Pin, step.NotAfter.UTC().Format(time.RFC3339), step.Reason)

	case rotation.StepDeleteKey:
		sec := o.keys[step.Key]
		err := r.Client.Delete(ctx, sec, client.Preconditions{UID: &sec.UID, ResourceVersion: &sec.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		delete(o.keys, step.Key)
		delete(o.signers, step.Key)
		o.state.Keys = slices.DeleteFunc(o.state.Keys, func(k rotation.Key) bool { return k.Name == step.Key })
		r.event(pc, corev1.EventTypeNormal, "KeyDeleted", "DeleteKey", "deleted key %s: %s", step.Key, step.Reason)

	case rotation.StepClearEmergency:
		if step.NoAgedBackup {
			// The refusal is reported before the request is cleared, so
			// it is never lost between the two writes.
			setCondition(&pc.Status.Conditions, pc.Generation, v1alpha1.ConditionNoAgedBackup, metav1.ConditionTrue, "NoAgedBackup", step.Reason)
			if err := r.Client.Status().Update(ctx, pc); err != nil {
				return err
			}
			r.event(pc, corev1.EventTypeWarning, "NoAgedBackup", "EmergencyRotation", "emergency rotation refused: %s", step.Reason)
		}
		patch := client.MergeFromWithOptions(pc.DeepCopy(), client.MergeFromWithOptimisticLock{})
		delete(pc.Annotations, v1alpha1.AnnotationRotateNow)
		if err := r.Client.Patch(ctx, pc, patch); err != nil {
			return err
		}
		if !step.NoAgedBackup {
			setCondition(&pc.Status.Conditions, pc.Generation, v1alpha1.ConditionNoAgedBackup, metav1.ConditionFalse, "EmergencyRotation", "an aged backup key took over")
		}
		o.state.EmergencyRequested = false

	default:
		return fmt.Errorf("unknown step %q", step.Action)
	}
	return nil
}

// publish signs and writes the pin set of step, with the publication time
// of every new pin, in one ConfigMap update.
func (r *PinnedCertificateReconciler) publish(ctx context.Context, o *observed, now time.Time, step rotation.Step) error {
	pc := o.pc
	signer, kid, err := r.Signers.Signer(ctx, pc.Namespace, pc.Spec.PinSet.ManifestKeys)
	if err != nil {
		return &manifestError{err}
	}
	published := map[string]time.Time{}
	for _, pin := range step.Pins {
		if t, ok := o.published[pin]; ok && slices.Contains(o.state.PublishedPins, pin) {
			published[pin] = t
		} else {
			published[pin] = now
		}
	}
	set := pinset.Set{Version: step.Version, IssuedAt: now.UTC(), ExpiresAt: now.Add(2 * o.spec.Validity).UTC()}
	for _, pin := range step.Pins {
		set.Pins = append(set.Pins, o.pinWindow(pin, published[pin], set.ExpiresAt))
	}
	jws, err := pinset.Sign(set, signer, kid)
	if err != nil {
		return &manifestError{err}
	}
	android, err := pinset.Android(set)
	if err != nil {
		return err
	}
	at, err := json.Marshal(published)
	if err != nil {
		return err
	}
	cm := o.pinSet
	if cm == nil {
		cm = &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: pc.Namespace, Name: pc.Spec.PinSet.ConfigMapName}}
		if err := r.own(pc, cm); err != nil {
			return err
		}
	}
	if cm.Labels == nil {
		cm.Labels = map[string]string{}
	}
	if cm.Annotations == nil {
		cm.Annotations = map[string]string{}
	}
	cm.Labels[v1alpha1.LabelPinnedCertificate] = pc.Name
	cm.Labels[v1alpha1.LabelManagedBy] = v1alpha1.ManagedBy
	cm.Annotations[annotationPublishedAt] = string(at)
	cm.Annotations[annotationManifestKey] = pc.Spec.PinSet.ManifestKeys[0].SecretName
	cm.Data = map[string]string{pinSetData: jws, androidXML: string(android)}
	if o.pinSet == nil {
		err = r.Client.Create(ctx, cm)
	} else {
		err = r.Client.Update(ctx, cm)
	}
	if err != nil {
		return err
	}
	o.pinSet, o.published = cm, published
	o.state.PinSetVersion, o.state.PublishedPins = step.Version, slices.Clone(step.Pins)
	o.state.Resign = false
	pc.Status.ManifestKeyID = kid
	for i, k := range o.state.Keys {
		o.state.Keys[i].Published = time.Time{}
		if slices.Contains(step.Pins, k.Pin) {
			o.state.Keys[i].Published = published[k.Pin]
		}
	}
	return nil
}

// pinWindow describes a pin for the pin set: its role, from when its key
// may serve (publication + publishAhead, or the served certificate's
// start) and until when a certificate with it may be valid.
func (o *observed) pinWindow(pin string, published, setExpires time.Time) pinset.Pin {
	p := pinset.Pin{SHA256: pin, Role: string(rotation.Backup), NotBefore: published.Add(o.spec.PublishAhead).UTC(), NotAfter: setExpires}
	for _, k := range o.state.Keys {
		if k.Pin != pin {
			continue
		}
		p.Role = string(k.Role)
		if !k.CertsExpire.IsZero() {
			p.NotAfter = k.CertsExpire.UTC()
		}
		if s := o.state.Serving; s != nil && s.Key == k.Name {
			p.NotBefore = s.NotBefore.UTC()
		}
	}
	return p
}

// issue writes the serving Secret: a certificate with step's key and
// window, signed by the issuer.
func (r *PinnedCertificateReconciler) issue(ctx context.Context, o *observed, step rotation.Step) error {
	pc := o.pc
	key := o.signers[step.Key]
	if key == nil {
		return fmt.Errorf("key %s is not usable", step.Key)
	}
	var iss *issuer
	var caPEM []byte
	if ca := pc.Spec.Issuer.CA; ca != nil {
		var sec corev1.Secret
		if err := r.Reader.Get(ctx, types.NamespacedName{Namespace: pc.Namespace, Name: ca.SecretName}, &sec); err != nil {
			return &issuerError{fmt.Errorf("CA Secret %q: %w", ca.SecretName, err)}
		}
		cert, err := decodeCert(sec.Data[corev1.TLSCertKey])
		if err != nil {
			return &issuerError{fmt.Errorf("CA Secret %q, %s: %w", ca.SecretName, corev1.TLSCertKey, err)}
		}
		caKey, err := decodeKey(sec.Data[corev1.TLSPrivateKeyKey])
		if err != nil {
			return &issuerError{fmt.Errorf("CA Secret %q, %s: %w", ca.SecretName, corev1.TLSPrivateKeyKey, err)}
		}
		iss, caPEM = &issuer{cert: cert, key: caKey}, sec.Data[corev1.TLSCertKey]
	}
	chain, err := issueCert(key, pc.Spec.DNSNames, step.NotBefore, step.NotAfter, iss)
	if err != nil {
		return &issuerError{err}
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return err
	}
	sec := o.serving
	if sec == nil {
		sec = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: pc.Namespace, Name: pc.Spec.SecretName}, Type: corev1.SecretTypeTLS}
		if err := r.own(pc, sec); err != nil {
			return err
		}
	}
	if sec.Labels == nil {
		sec.Labels = map[string]string{}
	}
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	sec.Labels[v1alpha1.LabelPinnedCertificate] = pc.Name
	sec.Labels[v1alpha1.LabelManagedBy] = v1alpha1.ManagedBy
	sec.Annotations[annotationServingKey] = step.Key
	sec.Data = map[string][]byte{corev1.TLSCertKey: chain, corev1.TLSPrivateKeyKey: keyPEM}
	if caPEM != nil {
		sec.Data["ca.crt"] = caPEM
	}
	if o.serving == nil {
		err = r.Client.Create(ctx, sec)
	} else {
		err = r.Client.Update(ctx, sec)
	}
	if err != nil {
		return err
	}
	leaf, err := decodeCert(chain)
	if err != nil {
		return err
	}
	o.serving = sec
	o.state.Serving = &rotation.Cert{Key: step.Key, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
	return nil
}

// report writes the status: the pins with their windows, the served
// certificate, the next transition and Ready. Nothing secret.
func (r *PinnedCertificateReconciler) report(ctx context.Context, o *observed, wait rotation.Step) error {
	pc := o.pc
	before := pc.Status.DeepCopy()
	st := &pc.Status
	st.ObservedGeneration = pc.Generation
	st.PinSetVersion = o.state.PinSetVersion
	st.CurrentPin, st.NextPin, st.NotAfter, st.NextRotationTime = "", "", nil, nil
	st.Pins = nil
	for _, k := range o.state.Keys {
		if !slices.Contains(o.state.PublishedPins, k.Pin) {
			continue
		}
		p := v1alpha1.PinStatus{SHA256: k.Pin, Role: string(k.Role), PublishedAt: timeOrNil(k.Published), CertificatesExpire: timeOrNil(k.CertsExpire)}
		if !k.Published.IsZero() {
			p.ServableAt = timeOrNil(k.Published.Add(o.spec.PublishAhead))
		}
		st.Pins = append(st.Pins, p)
		switch k.Role {
		case rotation.Current:
			st.CurrentPin = k.Pin
		case rotation.Next:
			st.NextPin = k.Pin
		}
	}
	slices.SortStableFunc(st.Pins, func(a, b v1alpha1.PinStatus) int { return roleRank(a.Role) - roleRank(b.Role) })
	if s := o.state.Serving; s != nil {
		st.NotAfter = timeOrNil(s.NotAfter)
	}
	st.NextRotationTime = timeOrNil(wait.At)
	if o.state.Serving != nil {
		setCondition(&pc.Status.Conditions, pc.Generation, v1alpha1.ConditionReady, metav1.ConditionTrue, "Serving",
			fmt.Sprintf("serving pin %s until %s; pin set version %d", st.CurrentPin, o.state.Serving.NotAfter.UTC().Format(time.RFC3339), st.PinSetVersion))
	} else {
		setCondition(&pc.Status.Conditions, pc.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, "NotServing", wait.Reason)
	}
	if sameStatus(before, st) {
		return nil
	}
	return r.Client.Status().Update(ctx, pc)
}

// failed reports err in the Ready condition and returns it for a retry
// with backoff, except for errors only a person can fix.
func (r *PinnedCertificateReconciler) failed(ctx context.Context, pc *v1alpha1.PinnedCertificate, err error) (ctrl.Result, error) {
	reason := "ReconcileError"
	var (
		spec     *specError
		conflict *conflictError
		manifest *manifestError
		iss      *issuerError
	)
	switch {
	case errors.As(err, &spec):
		reason = "InvalidSpec"
	case errors.As(err, &conflict):
		reason = "NotOwned"
	case errors.As(err, &manifest):
		reason = "ManifestKeyUnavailable"
	case errors.As(err, &iss):
		reason = "IssuerUnavailable"
	}
	reportNotReady(ctx, r.Client, r.Recorder, pc, &pc.Status.Conditions, reason, err)
	if spec != nil {
		recordWaitingError(ctx, err)
		return ctrl.Result{}, nil // waits for a new spec
	}
	return ctrl.Result{}, err
}

func (r *PinnedCertificateReconciler) own(pc *v1alpha1.PinnedCertificate, obj client.Object) error {
	return controllerutil.SetControllerReference(pc, obj, r.Client.Scheme())
}

func (r *PinnedCertificateReconciler) event(pc *v1alpha1.PinnedCertificate, typ, reason, action, note string, args ...any) {
	event(r.Recorder, pc, typ, reason, action, note, args...)
}

// nextKeyName names a new key Secret <pc>-key-<n>, n one more than any
// observed. A name chosen by the controller rather than generated by the
// API server makes a create whose answer was lost harmless: the next
// reconcile sees the key it made instead of making a second one.
func (o *observed) nextKeyName() string {
	prefix := o.pc.Name + "-key-"
	n := 0
	for name := range o.keys {
		if i, err := strconv.Atoi(strings.TrimPrefix(name, prefix)); err == nil && strings.HasPrefix(name, prefix) {
			n = max(n, i)
		}
	}
	return prefix + strconv.Itoa(n+1)
}

func (o *observed) key(name string) *rotation.Key {
	for i := range o.state.Keys {
		if o.state.Keys[i].Name == name {
			return &o.state.Keys[i]
		}
	}
	return &rotation.Key{} // not reached: steps name observed keys
}

// unverifiedPayload reads the pin set the operator itself wrote. The
// signature is the apps' business; the operator only needs the version
// and the pins.
func unverifiedPayload(jws string) (*pinset.Set, error) {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var s pinset.Set
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

func timeOrNil(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t)
	return &mt
}

func roleRank(role string) int {
	return slices.Index([]string{"current", "next", "backup", "retired"}, role)
}

// Errors a person has to fix, told apart for the Ready condition.
type (
	specError     struct{ error }
	conflictError struct{ name string }
	manifestError struct{ error }
	issuerError   struct{ error }
)

func (e *specError) Unwrap() error     { return e.error }
func (e *manifestError) Unwrap() error { return e.error }
func (e *issuerError) Unwrap() error   { return e.error }
func (e *conflictError) Error() string {
	return fmt.Sprintf("%s exists and is not owned by this PinnedCertificate: the operator does not overwrite it", e.name)
}
