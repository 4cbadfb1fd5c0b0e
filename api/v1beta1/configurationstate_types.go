package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConfigurationResult is the outcome of compiling the metallb.io configuration.
// +kubebuilder:validation:Enum=Valid;Invalid;Unknown
type ConfigurationResult string

// Configuration results.
const (
	ConfigurationValid   ConfigurationResult = "Valid"
	ConfigurationInvalid ConfigurationResult = "Invalid"
	ConfigurationUnknown ConfigurationResult = "Unknown"
)

// ConfigurationStateSpec is empty: each component writes its own object.
type ConfigurationStateSpec struct{}

// ConfigurationStateStatus reports whether a component accepted the configuration.
type ConfigurationStateStatus struct {
	// Result is Valid when the component runs with the current configuration, Invalid when it
	// rejected it (and keeps the last valid one), Unknown before the first compilation.
	// +optional
	Result ConfigurationResult `json:"result,omitempty"`

	// ErrorSummary says what is wrong with the configuration and how to fix it.
	// +optional
	ErrorSummary string `json:"errorSummary,omitempty"`

	// Conditions hold the details.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ConfigurationState is one component's view of the metallb.io configuration: one per
// controller and one per speaker.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.result`
// +kubebuilder:printcolumn:name="Error",type=string,JSONPath=`.status.errorSummary`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ConfigurationState struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec   ConfigurationStateSpec   `json:"spec,omitempty"`
	Status ConfigurationStateStatus `json:"status,omitempty"`
}

// ConfigurationStateList is a list of ConfigurationState.
//
// +kubebuilder:object:root=true
type ConfigurationStateList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ConfigurationState `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ConfigurationState{}, &ConfigurationStateList{})
}
