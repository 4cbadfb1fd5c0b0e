package v1beta2

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DynamicASNMode says which kind of peer to accept when the peer's ASN is not configured.
// +kubebuilder:validation:Enum=internal;external
type DynamicASNMode string

// Dynamic ASN modes.
const (
	// InternalASNMode accepts only a peer in our own AS (iBGP).
	InternalASNMode DynamicASNMode = "internal"
	// ExternalASNMode accepts only a peer in another AS (eBGP).
	ExternalASNMode DynamicASNMode = "external"
)

// BGPPeerSpec configures a BGP session opened by the speakers on the selected nodes.
//
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || duration(self.holdTime) == duration('0s') || duration(self.holdTime) >= duration('3s')",message="holdTime must be 0s (keepalives off) or at least 3s",fieldPath=".holdTime"
// +kubebuilder:validation:XValidation:rule="!has(self.holdTime) || !has(self.keepaliveTime) || duration(self.keepaliveTime) <= duration(self.holdTime)",message="keepaliveTime must not be greater than holdTime",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="has(self.holdTime) || !has(self.keepaliveTime) || duration(self.keepaliveTime) == duration('0s') || duration(self.keepaliveTime) >= duration('1s')",message="keepaliveTime without holdTime must be 0s or at least 1s: holdTime is then 3 x keepaliveTime and must be at least 3s",fieldPath=".keepaliveTime"
// +kubebuilder:validation:XValidation:rule="!(has(self.peerASN) && self.peerASN != 0 && has(self.dynamicASN))",message="peerASN and dynamicASN are mutually exclusive: set one of them",fieldPath=".dynamicASN"
// +kubebuilder:validation:XValidation:rule="(has(self.peerASN) && self.peerASN != 0) || has(self.dynamicASN)",message="one of peerASN or dynamicASN is required",fieldPath=".peerASN"
// +kubebuilder:validation:XValidation:rule="!(has(self.password) && size(self.password) > 0 && has(self.passwordSecret) && has(self.passwordSecret.name) && size(self.passwordSecret.name) > 0)",message="password and passwordSecret are mutually exclusive: keep passwordSecret and remove password",fieldPath=".password"
// +kubebuilder:validation:XValidation:rule="has(self.peerAddress) != has(self.interface)",message="exactly one of peerAddress or interface (BGP unnumbered) is required",fieldPath=".peerAddress"
// +kubebuilder:validation:XValidation:rule="(has(self.enableGracefulRestart) && self.enableGracefulRestart) == (has(oldSelf.enableGracefulRestart) && oldSelf.enableGracefulRestart)",message="enableGracefulRestart cannot be changed: delete and recreate the BGPPeer",fieldPath=".enableGracefulRestart"
type BGPPeerSpec struct {
	// MyASN is the local autonomous system number.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	MyASN uint32 `json:"myASN"`

	// ASN is the peer's autonomous system number. Exactly one of peerASN and dynamicASN.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=4294967295
	// +kubebuilder:validation:Format=int64
	ASN uint32 `json:"peerASN,omitempty"`

	// DynamicASN accepts the peer's ASN from its OPEN message: internal (same AS as myASN) or
	// external (any other AS). Exactly one of peerASN and dynamicASN.
	// +optional
	DynamicASN DynamicASNMode `json:"dynamicASN,omitempty"`

	// Address is the peer's IP address. Exactly one of peerAddress and interface.
	// +optional
	// +kubebuilder:validation:XValidation:rule="isIP(self)",message="must be an IP address such as 192.168.1.1 or fc00::1"
	Address string `json:"peerAddress,omitempty"`

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

	// ConnectTime is how long to wait between attempts to open the TCP connection.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1s') && duration(self) <= duration('65535s')",message="connectTime must be between 1s and 65535s"
	ConnectTime *metav1.Duration `json:"connectTime,omitempty"`

	// RouterID overrides the BGP router ID (an IPv4 address).
	// +optional
	// +kubebuilder:validation:XValidation:rule="isIP(self) && ip(self).family() == 4",message="must be an IPv4 address: BGP router IDs are 32 bits"
	RouterID string `json:"routerID,omitempty"`

	// NodeSelectors limit the nodes that open this session. Empty means every node.
	// +optional
	NodeSelectors []metav1.LabelSelector `json:"nodeSelectors,omitempty"`

	// Password is the TCP MD5 password, in clear text. Prefer passwordSecret.
	// +optional
	Password string `json:"password,omitempty"`

	// PasswordSecret references a Secret of type kubernetes.io/basic-auth in the BGPPeer's
	// namespace whose "password" key holds the TCP MD5 password.
	// +optional
	PasswordSecret *corev1.SecretReference `json:"passwordSecret,omitempty"`

	// BFDProfile names a BFDProfile; when set, a BFD session watches the peer and takes the BGP
	// session down as soon as BFD declares the peer down.
	// +optional
	BFDProfile string `json:"bfdProfile,omitempty"`

	// EnableGracefulRestart advertises the graceful restart capability (RFC 4724), so the peer
	// keeps our routes while a speaker restarts. It cannot be changed after creation.
	// +optional
	EnableGracefulRestart bool `json:"enableGracefulRestart,omitempty"`

	// EBGPMultiHop allows an eBGP peer that is more than one hop away.
	// +optional
	EBGPMultiHop bool `json:"ebgpMultiHop,omitempty"`

	// VRFName is the VRF the session is opened in.
	// +optional
	VRFName string `json:"vrf,omitempty"`

	// DisableMP opens one session per address family instead of carrying both on one session.
	// +optional
	DisableMP bool `json:"disableMP,omitempty"`

	// DualStackAddressFamily carries IPv4 and IPv6 routes on the one session.
	// +optional
	DualStackAddressFamily bool `json:"dualStackAddressFamily,omitempty"`

	// Interface is the node interface to peer over with BGP unnumbered (IPv6 link-local).
	// Exactly one of peerAddress and interface.
	// +optional
	Interface string `json:"interface,omitempty"`
}

// BGPPeerStatus is empty; session state is reported in metrics and Events.
type BGPPeerStatus struct{}

// BGPPeer is a BGP session to a router.
//
// +kubebuilder:object:root=true
// +kubebuilder:storageversion
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="Address",type=string,JSONPath=`.spec.peerAddress`
// +kubebuilder:printcolumn:name="ASN",type=integer,JSONPath=`.spec.peerASN`
// +kubebuilder:printcolumn:name="Dynamic ASN",type=string,JSONPath=`.spec.dynamicASN`
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
