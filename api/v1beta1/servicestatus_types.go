package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels set on ServiceL2Status and ServiceBGPStatus objects, so they can be listed per node or
// per Service.
const (
	LabelNode             = "metallb.io/node"
	LabelServiceName      = "metallb.io/service-name"
	LabelServiceNamespace = "metallb.io/service-namespace"
)

// InterfaceInfo names a node interface.
type InterfaceInfo struct {
	// Name of the interface, such as eth0.
	Name string `json:"name,omitempty"`
}

// MetalLBServiceL2Status says which node announces a Service in layer 2 mode and on which
// interfaces.
type MetalLBServiceL2Status struct {
	// Node is the node that answers ARP/NDP for the Service's IPs.
	Node string `json:"node,omitempty"`
	// ServiceName is the announced Service's name.
	ServiceName string `json:"serviceName,omitempty"`
	// ServiceNamespace is the announced Service's namespace.
	ServiceNamespace string `json:"serviceNamespace,omitempty"`
	// Interfaces are the interfaces the node answers on.
	// +optional
	Interfaces []InterfaceInfo `json:"interfaces,omitempty"`
}

// ServiceL2StatusSpec is empty: the object is written by the announcing speaker.
type ServiceL2StatusSpec struct{}

// ServiceL2Status reports a Service announced in layer 2 mode. The announcing speaker creates
// it (name prefix l2-) and deletes it when it stops announcing.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="Allocated Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Service Name",type=string,JSONPath=`.status.serviceName`
// +kubebuilder:printcolumn:name="Service Namespace",type=string,JSONPath=`.status.serviceNamespace`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.status.interfaces[*].name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceL2Status struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec   ServiceL2StatusSpec    `json:"spec,omitempty"`
	Status MetalLBServiceL2Status `json:"status,omitempty"`
}

// ServiceL2StatusList is a list of ServiceL2Status.
//
// +kubebuilder:object:root=true
type ServiceL2StatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceL2Status `json:"items"`
}

// MetalLBServiceBGPStatus says to which peers one node announces a Service over BGP.
type MetalLBServiceBGPStatus struct {
	// Node is the announcing node.
	Node string `json:"node,omitempty"`
	// ServiceName is the announced Service's name.
	ServiceName string `json:"serviceName,omitempty"`
	// ServiceNamespace is the announced Service's namespace.
	ServiceNamespace string `json:"serviceNamespace,omitempty"`
	// Peers are the BGPPeers (by name) the Service's routes are sent to.
	// +optional
	Peers []string `json:"peers,omitempty"`
}

// ServiceBGPStatusSpec is empty: the object is written by the announcing speaker.
type ServiceBGPStatusSpec struct{}

// ServiceBGPStatus reports a Service announced over BGP by one node; there is one per node per
// Service (name prefix bgp-).
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="Node",type=string,JSONPath=`.status.node`
// +kubebuilder:printcolumn:name="Service Name",type=string,JSONPath=`.status.serviceName`
// +kubebuilder:printcolumn:name="Service Namespace",type=string,JSONPath=`.status.serviceNamespace`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.status.peers`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ServiceBGPStatus struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +optional
	Spec   ServiceBGPStatusSpec    `json:"spec,omitempty"`
	Status MetalLBServiceBGPStatus `json:"status,omitempty"`
}

// ServiceBGPStatusList is a list of ServiceBGPStatus.
//
// +kubebuilder:object:root=true
type ServiceBGPStatusList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ServiceBGPStatus `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ServiceL2Status{}, &ServiceL2StatusList{})
	SchemeBuilder.Register(&ServiceBGPStatus{}, &ServiceBGPStatusList{})
}
