package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Annotations and labels the operator reads and writes.
const (
	// AnnotationRotateNow asks for an emergency rotation. On a
	// PinnedCertificate its value is RotateNowBackup, on a KeySet
	// RotateNowRevoke.
	AnnotationRotateNow = "strongroom.dev/rotate-now"
	// RotateNowBackup: the serving key is taken as compromised and a
	// backup key whose pin has been published for publishAhead serves.
	RotateNowBackup = "backup"

	// LabelPinnedCertificate names, on every object the operator writes
	// for a PinnedCertificate, the PinnedCertificate it belongs to.
	LabelPinnedCertificate = "strongroom.dev/pinned-certificate"
	// LabelRole is a key Secret's role: current, next, backup, retired or
	// compromised.
	LabelRole = "strongroom.dev/role"

	// LabelManagedBy is on every Secret and ConfigMap the operator
	// writes, with the value ManagedBy: the operator's cache holds only
	// those, and its watches of them trigger reconciles.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is the value of LabelManagedBy.
	ManagedBy = "strongroom-operator"
)

// Condition types and reasons of a PinnedCertificate.
const (
	// ConditionReady: a certificate is served and the pin set is
	// published as the policy wants.
	ConditionReady = "Ready"
	// ConditionNoAgedBackup: the last emergency rotation was refused
	// because no backup key's pin had been published for publishAhead;
	// nothing changed.
	ConditionNoAgedBackup = "NoAgedBackup"
)

// KeyAlgorithm is the algorithm of the certificate's keys.
// +kubebuilder:validation:Enum=ECDSA-P256;ECDSA-P384;RSA-3072
type KeyAlgorithm string

// Key algorithms.
const (
	ECDSAP256 KeyAlgorithm = "ECDSA-P256"
	ECDSAP384 KeyAlgorithm = "ECDSA-P384"
	RSA3072   KeyAlgorithm = "RSA-3072"
)

// PinnedCertificateSpec is the policy of one pinned serving certificate.
//
// +kubebuilder:validation:XValidation:rule="duration(self.renewBefore) < duration(self.validity)",message="renewBefore must be shorter than validity"
// +kubebuilder:validation:XValidation:rule="duration(self.publishAhead) < duration(self.validity) - duration(self.renewBefore)",message="publishAhead must be shorter than validity - renewBefore: the next key's pin must be published for publishAhead before the certificate is renewed"
type PinnedCertificateSpec struct {
	// SecretName is the kubernetes.io/tls Secret the operator writes the
	// serving certificate and key to (authd mounts it).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	SecretName string `json:"secretName"`

	// DNSNames are the certificate's subject alternative names; the
	// first is also its common name.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=100
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	// +listType=set
	DNSNames []string `json:"dnsNames"`

	// Issuer signs the certificates.
	Issuer IssuerSpec `json:"issuer"`

	// Validity of each certificate (Go duration: 2160h is 90 days).
	// +kubebuilder:default="2160h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="validity must be positive"
	Validity metav1.Duration `json:"validity,omitempty"`

	// RenewBefore: a certificate is renewed this long before it expires.
	// +kubebuilder:default="720h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="renewBefore must be positive"
	RenewBefore metav1.Duration `json:"renewBefore,omitempty"`

	// PublishAhead: a key serves only once its pin has been published
	// this long (apps refresh their pin set at least this often).
	// +kubebuilder:default="336h"
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$`
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="publishAhead must be positive"
	PublishAhead metav1.Duration `json:"publishAhead,omitempty"`

	// BackupKeys is how many backup keys are kept published for
	// emergencies.
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	BackupKeys int32 `json:"backupKeys,omitempty"`

	// KeyAlgorithm of new keys.
	// +kubebuilder:default="ECDSA-P256"
	KeyAlgorithm KeyAlgorithm `json:"keyAlgorithm,omitempty"`

	// PinSet is where the signed pin set is published.
	PinSet PinSetSpec `json:"pinSet"`
}

// IssuerSpec names what signs the certificates: exactly one of its fields.
//
// +kubebuilder:validation:XValidation:rule="has(self.selfSigned) != has(self.ca)",message="set exactly one of issuer.selfSigned and issuer.ca"
type IssuerSpec struct {
	// SelfSigned: each certificate signs itself (apps pin it anyway).
	// +optional
	SelfSigned *SelfSignedIssuer `json:"selfSigned,omitempty"`
	// CA: a CA whose certificate and key are in a Secret.
	// +optional
	CA *CAIssuer `json:"ca,omitempty"`
}

// SelfSignedIssuer has no settings.
type SelfSignedIssuer struct{}

// CAIssuer is a CA held in a kubernetes.io/tls Secret (tls.crt, tls.key)
// in the PinnedCertificate's namespace.
type CAIssuer struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// PinSetSpec says where the pin set goes and what signs it.
type PinSetSpec struct {
	// ConfigMapName is the ConfigMap the operator writes pinset.json and
	// android.xml to (authd mounts it).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	ConfigMapName string `json:"configMapName"`

	// ManifestKeys are Secrets holding pin-manifest keys (key.pem: a
	// PKCS#8 ECDSA P-256 private key). The first one signs; apps ship
	// the public halves of all of them, so the signing key can change by
	// reordering. The kid is the key's RFC 7638 thumbprint.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=4
	// +listType=atomic
	ManifestKeys []ManifestKeyRef `json:"manifestKeys"`
}

// ManifestKeyRef names a Secret with a pin-manifest key.
type ManifestKeyRef struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
}

// PinStatus is one published pin.
type PinStatus struct {
	// SHA256 is base64(SHA-256(SubjectPublicKeyInfo)).
	SHA256 string `json:"sha256"`
	// Role is current, next, backup or retired.
	Role string `json:"role"`
	// PublishedAt is when a pin set first carried the pin.
	// +optional
	PublishedAt *metav1.Time `json:"publishedAt,omitempty"`
	// ServableAt is when the pin will have been published for
	// publishAhead, so its key may serve.
	// +optional
	ServableAt *metav1.Time `json:"servableAt,omitempty"`
	// CertificatesExpire is when the last certificate with the key
	// expires; the pin stays published until then.
	// +optional
	CertificatesExpire *metav1.Time `json:"certificatesExpire,omitempty"`
}

// PinnedCertificateStatus is what the operator observed at its last
// reconcile. Never a private key.
type PinnedCertificateStatus struct {
	// ObservedGeneration is the spec generation this status is about.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// CurrentPin is the pin of the served certificate.
	// +optional
	CurrentPin string `json:"currentPin,omitempty"`
	// NextPin is the pin that serves next.
	// +optional
	NextPin string `json:"nextPin,omitempty"`
	// NotAfter is when the served certificate expires.
	// +optional
	NotAfter *metav1.Time `json:"notAfter,omitempty"`
	// NextRotationTime is when the operator acts next.
	// +optional
	NextRotationTime *metav1.Time `json:"nextRotationTime,omitempty"`
	// PinSetVersion is the version of the published pin set.
	// +optional
	PinSetVersion int64 `json:"pinSetVersion,omitempty"`
	// ManifestKeyID is the kid that signed the published pin set.
	// +optional
	ManifestKeyID string `json:"manifestKeyID,omitempty"`
	// Pins are the published pins with their windows.
	// +listType=atomic
	// +optional
	Pins []PinStatus `json:"pins,omitempty"`
}

// PinnedCertificate is a serving certificate whose keys apps pin: the
// operator keeps a current, a next and backup keys, publishes their pins
// in a signed pin set long before a key serves, and rotates.
//
// +kubebuilder:object:root=true
// +kubebuilder:validation:XValidation:rule="self.metadata.name.size() <= 63",message="the name must be at most 63 characters: it is the value of the strongroom.dev/pinned-certificate label on the Secrets and ConfigMap it owns"
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=pincert,categories=strongroom
// +kubebuilder:printcolumn:name="Current",type=string,JSONPath=`.status.currentPin`
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=`.status.nextPin`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.notAfter`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type PinnedCertificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   PinnedCertificateSpec   `json:"spec"`
	Status PinnedCertificateStatus `json:"status,omitempty"`
}

// PinnedCertificateList is a list of PinnedCertificates.
//
// +kubebuilder:object:root=true
type PinnedCertificateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PinnedCertificate `json:"items"`
}
