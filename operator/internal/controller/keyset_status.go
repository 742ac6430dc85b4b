package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	"strongroom.dev/api/v1alpha1"
	"strongroom.dev/operator/internal/keyrotation"
)

// report writes the status: the keys with their windows and states, the
// active key, the next rotation and transition, and Ready. Nothing
// secret. A change of the active key is reported as an event.
func (r *KeySetReconciler) report(ctx context.Context, o *keySetObserved, now time.Time, wait keyrotation.Step) error {
	ks := o.ks
	before := ks.Status.DeepCopy()
	st := &ks.Status
	st.ObservedGeneration = ks.Generation
	active, ok := keyrotation.Active(now, o.state.Keys)
	st.ActiveKeyID = active.KID
	st.Keys = nil
	for _, k := range o.state.Keys { // sorted by not_before (keyset.File.Marshal)
		state := v1alpha1.KeyRetiring
		switch {
		case k.NotBefore.After(now):
			state = v1alpha1.KeyPublished
		case ok && k.KID == active.KID:
			state = v1alpha1.KeyActive
		}
		st.Keys = append(st.Keys, v1alpha1.KeyStatus{
			KID: k.KID, Algorithm: k.Algorithm, NotBefore: metav1.NewTime(k.NotBefore), NotAfter: metav1.NewTime(k.NotAfter), State: state,
		})
	}
	st.NextRotationTime, st.NextTransitionTime = timeOrNil(wait.NextRotation), timeOrNil(wait.At)

	ignored := ""
	if v, set := ks.Annotations[v1alpha1.AnnotationRotateNow]; set && v != v1alpha1.RotateNowRevoke {
		ignored = fmt.Sprintf("ignored %s=%q: a KeySet understands only %q", v1alpha1.AnnotationRotateNow, v, v1alpha1.RotateNowRevoke)
	}
	if !ok {
		// Not reached: Decide waits only with a key active.
		setCondition(&ks.Status.Conditions, ks.Generation, v1alpha1.ConditionReady, metav1.ConditionFalse, "NoActiveKey", "no key is active")
	} else {
		msg := fmt.Sprintf("key %s (%s) is active; the next one from %s", active.KID, active.Algorithm, wait.NextRotation.UTC().Format(time.RFC3339))
		if ignored != "" {
			msg += "; " + ignored
		}
		setCondition(&ks.Status.Conditions, ks.Generation, v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonKeyActive, msg)
	}
	if sameStatus(before, st) {
		return nil
	}
	if err := r.Client.Status().Update(ctx, ks); err != nil {
		return err
	}
	if ok && before.ActiveKeyID != st.ActiveKeyID {
		r.event(ks, corev1.EventTypeNormal, "KeyActivated", "ActivateKey", "key %s (%s) is active since %s",
			active.KID, active.Algorithm, active.NotBefore.UTC().Format(time.RFC3339))
	}
	if c := meta.FindStatusCondition(before.Conditions, v1alpha1.ConditionReady); ignored != "" && (c == nil || !strings.Contains(c.Message, ignored)) {
		// Once per value: the request stays on the KeySet, unheeded.
		r.event(ks, corev1.EventTypeWarning, "RotateNowIgnored", "Revoke", "%s", ignored)
	}
	return nil
}

// failed reports err in the Ready condition and returns it for a retry
// with backoff, except for errors only a new spec can fix.
func (r *KeySetReconciler) failed(ctx context.Context, ks *v1alpha1.KeySet, err error) (ctrl.Result, error) {
	reason := "ReconcileError"
	var (
		spec     *specError
		conflict *keySetConflictError
		invalid  *invalidSecretError
	)
	switch {
	case errors.As(err, &spec):
		reason = "InvalidSpec"
	case errors.As(err, &conflict):
		reason = v1alpha1.ReasonNotOwned
	case errors.As(err, &invalid):
		reason = v1alpha1.ReasonInvalidSecret
	}
	reportNotReady(ctx, r.Client, r.Recorder, ks, &ks.Status.Conditions, reason, err)
	if spec != nil {
		recordWaitingError(ctx, err)
		return ctrl.Result{}, nil // waits for a new spec
	}
	return ctrl.Result{}, err
}
