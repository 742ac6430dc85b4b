// Package v1alpha1 holds the custom resources of group strongroom.dev
// (CONTRACT.md, Kubernetes resources): what the operator reconciles and
// what `kubectl` shows. The CRD manifests in api/crds are generated from
// these types by controller-gen (`make generate`); never edit them by hand.
//
// +kubebuilder:object:generate=true
// +groupName=strongroom.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the group and version of these resources.
var GroupVersion = schema.GroupVersion{Group: "strongroom.dev", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the types of this group version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &PinnedCertificate{}, &PinnedCertificateList{}, &KeySet{}, &KeySetList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
