package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// NodeSelector is MetalLB's v1beta1 node selector; it has the shape of a metav1.LabelSelector.
type NodeSelector struct {
	// +optional
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
	// +optional
	MatchExpressions []MatchExpression `json:"matchExpressions,omitempty"`
}

// MatchExpression is one requirement of a NodeSelector.
type MatchExpression struct {
	Key string `json:"key"`
	// +kubebuilder:validation:Enum=In;NotIn;Exists;DoesNotExist
	Operator string   `json:"operator"`
	Values   []string `json:"values,omitempty"`
}

// BGPPeerSpec is the v1beta1 BGPPeer spec, kept so v1beta1 manifests still apply. It holds a
// subset of v1beta2's fields under the same names; the API server converts between the two by
// name (conversion strategy None), so the fields both hold survive either way.
//
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || duration(self.holdTime) == duration('0s') || duration(self.holdTime) >= duration('3s')",message="holdTime must be 0s (keepalives off) or at least 3s",fieldPath=".holdTime"
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || !has(self.keepaliveTime) || duration(self.keepaliveTime) <= duration(self.holdTime)",message="keepaliveTime must not be greater than holdTime",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="has(self.holdTime) || !has(self.keepaliveTime) || duration(self.keepaliveTime) == duration('0s') || duration(self.keepaliveTime) >= duration('1s')",message="keepaliveTime without holdTime must be 0s or at least 1s: holdTime is then 3 x keepaliveTime and must be at least 3s",fieldPath=".keepaliveTime"
type BGPPeerSpec struct {
	// MyASN is the local autonomous system number.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	MyASN uint32 `json:"myASN"`

	// ASN is the peer's autonomous system number.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	ASN uint32 `json:"peerASN"`

	// Address is the peer's IP address.
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address such as 192.168.1.1 or fc00::1"
	Address string `json:"peerAddress"`

	// SrcAddress is the local address the session is opened from.
	// +optional
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address"
	SrcAddress string `json:"sourceAddress,omitempty"`

	// Port is the peer's TCP port. Default 179.
	// +optional
	// +kubebuilder:default:=179
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=16384
	Port uint16 `json:"peerPort,omitempty"`

	// HoldTime is the BGP hold time. Default 90s.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	HoldTime *metav1.Duration `json:"holdTime,omitempty"`

	// KeepaliveTime is the BGP keepalive interval. Default holdTime / 3.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	KeepaliveTime *metav1.Duration `json:"keepaliveTime,omitempty"`

	// RouterID overrides the BGP router ID (an IPv4 address).
	// +optional
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="must be an IPv4 address: BGP router IDs are 32 bits"
	RouterID string `json:"routerID,omitempty"`

	// NodeSelectors limit the nodes that open this session. Empty means every node.
	// +optional
	NodeSelectors []NodeSelector `json:"nodeSelectors,omitempty"`

	// Password is the TCP MD5 password, in clear text.
	// +optional
	Password string `json:"password,omitempty"`

	// BFDProfile names a BFDProfile; when set, a BFD session watches the peer.
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// EBGPMultiHop allows an eBGP peer that is more than one hop away.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// VRFName is the VRF the session is opened in.
	// +optional
	VRFName string `json:"vrf,omitempty"`
}

// BGPPeerStatus is empty; session state is reported in metrics and Events.
type BGPPeerStatus struct{}

// BGPPeer is a BGP session to a router (v1beta1; v1beta2 is the stored version).
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="BFD Profile",type=string,JSONPath=`.spec.bfdProfile`
// +kubebuilder:printcolumn:name="Multi Hops",type=boolean,JSONPath=`.spec.ebgpMultiHop`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type BGPPeer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   BGPPeerSpec   `json:"spec"`
	Status BGPPeerStatus `json:"status,omitempty"`
}

// BGPPeerList is a list of BGPPeer.
//
// +kubebuilder:object:root=true
type BGPPeerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BGPPeer `json:"items"`
}

func init() {
	SchemeBuilder.Register(&BGPPeer{}, &BGPPeerList{})
}
