package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// L2AdvertisementSpec says which pools are announced in layer 2 mode (ARP for IPv4, NDP for
// IPv6), from which nodes and on which interfaces. A pool's layer 2 behaviour is the union of
// every L2Advertisement that selects it.
type L2AdvertisementSpec struct {
	// IPAddressPools names the pools to announce. When neither this nor ipAddressPoolSelectors
	// is set, every pool is announced.
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select pools to announce by label.
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors limit the nodes that may be elected to announce. Empty means every node.
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Interfaces limits the node interfaces answered on. Empty means every eligible interface.
	// It does not take part in the election: a node is elected first, then answers on these.
	// +optional
	Interfaces []string `json:"interfaces,omitempty"`

	// ServiceSelectors limit the Services announced by label. Empty means every Service.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// L2AdvertisementStatus is empty; per-Service announcements are reported by ServiceL2Status.
type L2AdvertisementStatus struct{}

// L2Advertisement announces pools in layer 2 mode.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="IPAddressPools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="IPAddressPool Selectors",type=string,JSONPath=`.spec.ipAddressPoolSelectors`
// +kubebuilder:printcolumn:name="Interfaces",type=string,JSONPath=`.spec.interfaces`
// +kubebuilder:printcolumn:name="Node Selectors",type=string,JSONPath=`.spec.nodeSelectors`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type L2Advertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec may be omitted entirely: an L2Advertisement with no spec announces every pool.
	// +optional
	Spec   L2AdvertisementSpec   `json:"spec,omitempty"`
	Status L2AdvertisementStatus `json:"status,omitempty"`
}

// L2AdvertisementList is a list of L2Advertisement.
//
// +kubebuilder:object:root=true
type L2AdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []L2Advertisement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&L2Advertisement{}, &L2AdvertisementList{})
}
