package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations, labels and values of a KeySet.
const (
	// RotateNowRevoke, as the value of AnnotationRotateNow on a KeySet:
	// the active key is taken as compromised and leaves the Secret at
	// once; the key published to follow it (or a new one) takes over.
	RotateNowRevoke = "revoke"
	// AnnotationRevoking is set by the operator on a KeySet while a
	// revoke is under way: the kid of the key being revoked. The operator
	// removes it, with AnnotationRotateNow, once the key is gone from the
	// Secret. Never set it by hand.
	AnnotationRevoking = "strongroom.dev/revoking"
	// LabelKeySet names, on the Secret the operator writes for a KeySet,
	// the KeySet it belongs to.
	LabelKeySet = "strongroom.dev/keyset"
)

// Condition reasons of a KeySet's Ready condition (type ConditionReady).
// Ready is set by the operator after every reconcile: True with reason
// KeyActive while a key is active; False with InvalidSecret (keys.json in
// the Secret does not parse: the operator does not overwrite it), NotOwned
// (a Secret of that name exists and is not this KeySet's), InvalidSpec or
// ReconcileError, until the cause is gone.
const (
	ReasonKeyActive     = "KeyActive"
	ReasonInvalidSecret = "InvalidSecret"
	ReasonNotOwned      = "NotOwned"
)

// KeySetPurpose is what the keys of a set are for.
// +kubebuilder:validation:Enum=token-signing;payload-sealing;hmac-secret
type KeySetPurpose string

// Purposes (the values of strongroom.dev/api/keyset).
const (
	// PurposeTokenSigning: authd signs access tokens (JWKS).
	PurposeTokenSigning KeySetPurpose = "token-signing"
	// PurposePayloadSealing: apps seal secrets to authd
	// (sealing-keys.json).
	PurposePayloadSealing KeySetPurpose = "payload-sealing"
	// PurposeHMACSecret: authd MACs what it hands out (activation codes).
	PurposeHMACSecret KeySetPurpose = "hmac-secret"
)

// KeySetAlgorithm is the algorithm of a set's keys.
// +kubebuilder:validation:Enum=ES256;MLKEM768-X25519;DHKEM-X25519;HS256
type KeySetAlgorithm string

// KeySetSpec is the policy of one set of keys, rotated by time.
//
// +kubebuilder:validation:XValidation:rule="duration(self.publishAhead) < duration(self.rotationPeriod)",message="publishAhead must be shorter than rotationPeriod: each key is published publishAhead before it becomes active, while the key before it is active"
// +kubebuilder:validation:XValidation:rule="duration(self.retireAfter).getMilliseconds() <= 100 * duration(self.rotationPeriod).getMilliseconds()",message="retireAfter must be at most 100 times rotationPeriod: the Secret holds every key retired within retireAfter"
// +kubebuilder:validation:XValidation:rule="!has(self.algorithm) || (self.purpose == 'token-signing' && self.algorithm == 'ES256') || (self.purpose == 'payload-sealing' && self.algorithm in ['MLKEM768-X25519', 'DHKEM-X25519']) || (self.purpose == 'hmac-secret' && self.algorithm == 'HS256')",message="algorithm does not suit the purpose: token-signing takes ES256, payload-sealing MLKEM768-X25519 or DHKEM-X25519, hmac-secret HS256"
// +kubebuilder:validation:XValidation:rule="!has(self.protectedLifetime) || duration(self.retireAfter) >= duration(self.protectedLifetime)",message="retireAfter must be at least protectedLifetime: a key is kept that long after it stops being active, so that what it signed, sealed or MACed can still be checked"
// +kubebuilder:validation:XValidation:rule="has(self.protectedLifetime) || self.purpose != 'token-signing' || duration(self.retireAfter) >= duration('1h')",message="retireAfter must be at least 1h for token-signing: a key must verify the access tokens it signed until they expire (authd's longest access-token lifetime is 1h; set protectedLifetime if yours differs)"
// +kubebuilder:validation:XValidation:rule="has(self.protectedLifetime) || self.purpose != 'hmac-secret' || duration(self.retireAfter) >= duration('24h')",message="retireAfter must be at least 24h for hmac-secret: a secret must check the activation codes it MACed until they expire (24h; set protectedLifetime if yours differs)"
// +kubebuilder:validation:XValidation:rule="has(self.protectedLifetime) || self.purpose != 'payload-sealing' || duration(self.retireAfter) >= duration('10m')",message="retireAfter must be at least 10m for payload-sealing: a key must open what apps sealed to it, for up to 10m (a sealed request, plus the 5-minute cache of sealing-keys.json; set protectedLifetime if yours differs)"
type KeySetSpec struct {
	// Purpose of the keys. Immutable.
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="purpose is immutable"
	Purpose KeySetPurpose `json:"purpose"`

	// Algorithm of new keys; keys made before a change keep theirs.
	// Default: the purpose's first (ES256, MLKEM768-X25519, HS256).
	// +optional
	Algorithm KeySetAlgorithm `json:"algorithm,omitempty"`

	// SecretName is the Opaque Secret the operator writes keys.json to
	// (authd mounts it). Immutable.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="secretName is immutable"
	SecretName string `json:"secretName"`

	// RotationPeriod: how long each key is active (Go duration: 720h is
	// 30 days).
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="rotationPeriod must be positive"
	RotationPeriod metav1.Duration `json:"rotationPeriod,omitempty"`

	// PublishAhead: a key is in the Secret this long before it becomes
	// active, so that every verifier and app has fetched it by then.
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="publishAhead must be positive"
	PublishAhead metav1.Duration `json:"publishAhead,omitempty"`

	// RetireAfter: a key stays in the Secret this long after it stops
	// being active (except a revoked key, which leaves at once).
	// +kubebuilder:default="24h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="retireAfter must be positive"
	RetireAfter metav1.Duration `json:"retireAfter,omitempty"`

	// ProtectedLifetime is the longest lifetime of anything a key of the
	// set signs, seals or MACs; retireAfter must be at least as long.
	// Default, by purpose: token-signing 1h (authd's longest access
	// token), hmac-secret 24h (activation codes), payload-sealing 10m (a
	// sealed request, plus the 5-minute cache of sealing-keys.json). The
	// operator writes it into keys.json, where authd checks it.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="protectedLifetime must be positive"
	ProtectedLifetime *metav1.Duration `json:"protectedLifetime,omitempty"`
}

// Key states in a KeySet's status.
const (
	KeyPublished = "published" // in the Secret, not active yet
	KeyActive    = "active"    // the one to sign, seal to or MAC with
	KeyRetiring  = "retiring"  // no longer active, kept to check what it made
)

// KeyStatus is one key of the set: its public identity and window, never
// its private half.
type KeyStatus struct {
	// KID identifies the key (derived from it: the JWKS or sealing-keys
	// kid).
	KID       string      `json:"kid"`
	Algorithm string      `json:"algorithm"`
	NotBefore metav1.Time `json:"notBefore"`
	NotAfter  metav1.Time `json:"notAfter"`
	// State is published (not_before in the future), active or retiring.
	// +kubebuilder:validation:Enum=published;active;retiring
	State string `json:"state"`
}

// KeySetStatus is what the operator observed at its last reconcile. Never
// key material.
type KeySetStatus struct {
	// ObservedGeneration is the spec generation this status is about.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (see the Reason constants).
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// ActiveKeyID is the kid of the active key.
	// +optional
	ActiveKeyID string `json:"activeKeyID,omitempty"`
	// NextRotationTime is when the next key becomes active: the
	// not_before of the key published to follow, or, before it is
	// published, when it is planned to.
	// +optional
	NextRotationTime *metav1.Time `json:"nextRotationTime,omitempty"`
	// NextTransitionTime is when the operator acts next (publishes,
	// activates or retires a key).
	// +optional
	NextTransitionTime *metav1.Time `json:"nextTransitionTime,omitempty"`
	// Keys are the keys in the Secret, oldest first.
	// +listType=atomic
	// +optional
	Keys []KeyStatus `json:"keys,omitempty"`
}

// KeySet is a set of keys the operator rotates by time in one Secret
// (keys.json): every key carries the window the operator gave it, and
// authd activates keys by time, so all replicas switch at once.
// `kubectl annotate keyset <name> strongroom.dev/rotate-now=revoke`
// retires the active key at once.
//
// +kubebuilder:object:root=true
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="the name must be at most 63 characters: it is the value of the strongroom.dev/keyset label on its Secret"
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ks,categories=strongroom
// +kubebuilder:printcolumn:name="Purpose",type=string,JSONPath=`.spec.purpose`
// +kubebuilder:printcolumn:name="Algorithm",type=string,JSONPath=`.status.keys[?(@.state=="active")].algorithm`
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.activeKeyID`
// +kubebuilder:printcolumn:name="Next Rotation",type=string,JSONPath=`.status.nextRotationTime`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type KeySet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   KeySetSpec   `json:"spec"`
	Status KeySetStatus `json:"status,omitempty"`
}

// KeySetList is a list of KeySets.
//
// +kubebuilder:object:root=true
type KeySetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []KeySet `json:"items"`
}
