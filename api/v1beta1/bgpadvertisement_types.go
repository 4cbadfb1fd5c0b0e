package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// BGPAdvertisementSpec says which pools are announced over BGP, to which peers, from which
// nodes and with which attributes.
type BGPAdvertisementSpec struct {
	// AggregationLength is the prefix length announced for IPv4 addresses: 32 announces each
	// address, shorter lengths announce the covering prefix. Default 32.
	// +optional
	// +kubebuilder:default:=32
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32
	AggregationLength *int32 `json:"aggregationLength,omitempty"`

	// AggregationLengthV6 is the prefix length announced for IPv6 addresses. Default 128.
	// +optional
	// +kubebuilder:default:=128
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=128
	AggregationLengthV6 *int32 `json:"aggregationLengthV6,omitempty"`

	// LocalPref is the BGP LOCAL_PREF attribute, sent to iBGP peers only.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	LocalPref uint32 `json:"localPref,omitempty"`

	// Communities are attached to the announcements: "65000:100", "large:1:2:3", or the name of
	// an alias in a Community object.
	// +optional
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self.all(c, !c.contains(':') || (c.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(c.split(':')[0]) <= 65535 && int(c.split(':')[1]) <= 65535) || (c.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && int(c.split(':')[1]) <= 4294967295 && int(c.split(':')[2]) <= 4294967295 && int(c.split(':')[3]) <= 4294967295))",message="each community must be a standard community such as 65000:100, a large community such as large:65000:1:2, or the name of a Community alias"
	// +kubebuilder:validation:MaxItems=256
	Communities []string `json:"communities,omitempty"`

	// IPAddressPools names the pools to announce. When neither this nor ipAddressPoolSelectors is
	// set, every pool is announced.
	// +optional
	IPAddressPools []string `json:"ipAddressPools,omitempty"`

	// IPAddressPoolSelectors select pools to announce by label.
	// +optional
	IPAddressPoolSelectors []metav1.LabelSelector `json:"ipAddressPoolSelectors,omitempty"`

	// NodeSelectors limit the nodes that announce. Empty means every node.
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Peers limits the BGPPeers (by name) the announcements go to. Empty means every peer.
	// +optional
	Peers []string `json:"peers,omitempty"`

	// ServiceSelectors limit the Services announced by label. Empty means every Service.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// BGPAdvertisementStatus is empty; per-Service announcements are reported by ServiceBGPStatus.
type BGPAdvertisementStatus struct{}

// BGPAdvertisement announces pools over BGP.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="IPAddressPools",type=string,JSONPath=`.spec.ipAddressPools`
// +kubebuilder:printcolumn:name="IPAddressPool Selectors",type=string,JSONPath=`.spec.ipAddressPoolSelectors`
// +kubebuilder:printcolumn:name="Peers",type=string,JSONPath=`.spec.peers`
// +kubebuilder:printcolumn:name="Node Selectors",type=string,JSONPath=`.spec.nodeSelectors`,priority=10
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPAdvertisement struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec may be omitted: it defaults to {} so the aggregation defaults still show.
	// +optional
	// +kubebuilder:default:={}
	Spec   BGPAdvertisementSpec   `json:"spec,omitempty"`
	Status BGPAdvertisementStatus `json:"status,omitempty"`
}

// BGPAdvertisementList is a list of BGPAdvertisement.
//
// +kubebuilder:object:root=true
type BGPAdvertisementList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPAdvertisement `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BGPAdvertisement{}, &BGPAdvertisementList{})
}
