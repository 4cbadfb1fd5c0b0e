// Package v1beta1 contains the metallb.io/v1beta1 API that ironlb serves: the same group, kinds and
// fields as MetalLB, so existing MetalLB manifests apply unchanged. BGPPeer is also served at
// v1beta2 (the storage version, see ../v1beta2).
//
// Validation that needs only the object itself lives here as OpenAPI and CEL rules, so the API
// server rejects a malformed object with the field's path. Checks that need other objects
// (overlapping pools, references) are the controller's validating webhook.
//
// +kubebuilder:object:generate=true
// +groupName=metallb.io
package v1beta1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is group version used to register these objects.
	GroupVersion = schema.GroupVersion{Group: "metallb.io", Version: "v1beta1"}

	// SchemeBuilder is used to add go types to the GroupVersionKind scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types in this group-version to the given scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
