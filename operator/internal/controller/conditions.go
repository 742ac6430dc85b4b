package controller

import (
	"context"
	"encoding/json"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"strongroom.dev/api/v1alpha1"
)

// Status plumbing shared by the reconcilers.

// setCondition sets a condition of an object's status, stamped with the
// object's generation.
func setCondition(conds *[]metav1.Condition, gen int64, typ string, status metav1.ConditionStatus, reason, msg string) bool {
	return meta.SetStatusCondition(conds, metav1.Condition{
		Type: typ, Status: status, Reason: reason, Message: msg, ObservedGeneration: gen,
	})
}

// sameStatus reports whether two statuses are equal as the API server
// would store them, so an unchanged status is not written again.
func sameStatus[S any](a, b *S) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

// event records an event on obj, if there is a recorder.
func event(rec events.EventRecorder, obj client.Object, typ, reason, action, note string, args ...any) {
	if rec != nil {
		rec.Eventf(obj, nil, typ, reason, action, note, args...)
	}
}

// reportNotReady sets obj's Ready condition False with reason and err's
// message. Only a change is recorded as a warning event and written to
// the status, so a failure the work queue retries writes nothing more.
// A failed status write is logged: the caller returns err either way.
func reportNotReady(ctx context.Context, c client.Client, rec events.EventRecorder, obj client.Object, conds *[]metav1.Condition, reason string, err error) {
	if !setCondition(conds, obj.GetGeneration(), v1alpha1.ConditionReady, metav1.ConditionFalse, reason, err.Error()) {
		return
	}
	event(rec, obj, corev1.EventTypeWarning, reason, "Reconcile", "%s", err.Error())
	if uerr := c.Status().Update(ctx, obj); uerr != nil && !apierrors.IsConflict(uerr) {
		log.FromContext(ctx).Error(uerr, "status update failed")
	}
}
