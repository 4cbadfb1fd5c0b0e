package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The API server checks the shape of each entry. CEL has no ordering on IPs, so for IPv4 the
// "start is not after end" rule compares the octets as integers (about 4,900 cost units per
// entry, 5M for 1,024 entries, within the 10M budget). The same for IPv6 means expanding '::'
// in CEL, which the API server estimates at about 177,000 units per entry — 18 times the budget —
// so an IPv6 range out of order is rejected by the controller's webhook instead.

// AddressRange is one entry of IPAddressPool.spec.addresses: a CIDR ("192.168.10.0/24",
// "fc00:f853:ccd:e799::/124") or an inclusive range of one family ("192.168.10.0-192.168.10.255").
// Ranges are split into CIDRs when the pool is compiled.
//
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.contains('-') || isCIDR(self)",message="must be a CIDR such as 192.168.10.0/24 or a range such as 192.168.10.10-192.168.10.20"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || (size(self.split('-')) == 2 && isIP(self.split('-')[0].trim()) && isIP(self.split('-')[1].trim()))",message="a range must be two IP addresses joined by '-', such as 192.168.10.10-192.168.10.20"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || size(self.split('-')) != 2 || !isIP(self.split('-')[0].trim()) || !isIP(self.split('-')[1].trim()) || ip(self.split('-')[0].trim()).family() == ip(self.split('-')[1].trim()).family()",message="a range must not mix IPv4 and IPv6 addresses"
// +kubebuilder:validation:XValidation:rule="!self.contains('-') || size(self.split('-')) != 2 || !isIP(self.split('-')[0].trim()) || !isIP(self.split('-')[1].trim()) || ip(self.split('-')[0].trim()).family() != ip(self.split('-')[1].trim()).family() || ip(self.split('-')[0].trim()).family() != 4 || (int(self.split('-')[0].trim().split('.')[0]) < int(self.split('-')[1].trim().split('.')[0]) || (int(self.split('-')[0].trim().split('.')[0]) == int(self.split('-')[1].trim().split('.')[0]) && (int(self.split('-')[0].trim().split('.')[1]) < int(self.split('-')[1].trim().split('.')[1]) || (int(self.split('-')[0].trim().split('.')[1]) == int(self.split('-')[1].trim().split('.')[1]) && (int(self.split('-')[0].trim().split('.')[2]) < int(self.split('-')[1].trim().split('.')[2]) || (int(self.split('-')[0].trim().split('.')[2]) == int(self.split('-')[1].trim().split('.')[2]) && int(self.split('-')[0].trim().split('.')[3]) <= int(self.split('-')[1].trim().split('.')[3])))))))",message="the range's start address must not be after its end address"
type AddressRange string

// IPAddressPoolSpec defines the addresses the controller may hand out and to which Services.
type IPAddressPoolSpec struct {
	// Addresses are the CIDRs and ranges this pool hands out. Pools must not overlap, within one
	// pool or across pools (checked by the webhook).
	// +kubebuilder:validation:MaxItems=1024
	Addresses []AddressRange `json:"addresses"`

	// AutoAssign lets the controller hand out this pool's addresses to Services that did not ask
	// for it. With false, an address is used only when a Service names the pool
	// (metallb.io/address-pool) or one of its addresses. Default true.
	// +optional
	// +kubebuilder:default:=true
	AutoAssign *bool `json:"autoAssign,omitempty"`

	// AvoidBuggyIPs skips IPv4 addresses ending in .0 and .255, which some old client stacks
	// treat as broadcast addresses. Default false.
	// +optional
	// +kubebuilder:default:=false
	AvoidBuggyIPs bool `json:"avoidBuggyIPs,omitempty"`

	// AllocateTo restricts the pool to some namespaces or Services and orders it among other
	// pools. A pool with serviceAllocation is never used as a generic fallback.
	// +optional
	AllocateTo *ServiceAllocation `json:"serviceAllocation,omitempty"`
}

// ServiceAllocation selects the Services a pool serves. Namespaces, namespaceSelectors and
// serviceSelectors are ORed; when all three are empty the pool matches every Service.
type ServiceAllocation struct {
	// Priority orders matching pools: a lower number is tried first; 0 (unset) is tried last.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Priority int `json:"priority,omitempty"`

	// Namespaces whose Services may use the pool.
	// +optional
	Namespaces []string `json:"namespaces,omitempty"`

	// NamespaceSelectors select namespaces by label whose Services may use the pool.
	// +optional
	NamespaceSelectors []metav1.LabelSelector `json:"namespaceSelectors,omitempty"`

	// ServiceSelectors select Services by label that may use the pool.
	// +optional
	ServiceSelectors []metav1.LabelSelector `json:"serviceSelectors,omitempty"`
}

// IPAddressPoolStatus counts the pool's addresses per family. Counts saturate at the int64
// maximum: an IPv6 /64 holds more addresses than an int64 can count.
type IPAddressPoolStatus struct {
	// AssignedIPv4 is the number of IPv4 addresses of the pool held by Services.
	// +optional
	AssignedIPv4 int64 `json:"assignedIPv4"`
	// AssignedIPv6 is the number of IPv6 addresses of the pool held by Services.
	// +optional
	AssignedIPv6 int64 `json:"assignedIPv6"`
	// AvailableIPv4 is the number of IPv4 addresses of the pool still free.
	// +optional
	AvailableIPv4 int64 `json:"availableIPv4"`
	// AvailableIPv6 is the number of IPv6 addresses of the pool still free.
	// +optional
	AvailableIPv6 int64 `json:"availableIPv6"`
}

// IPAddressPool is a set of addresses the controller hands out to LoadBalancer Services.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="Addresses",type=string,JSONPath=`.spec.addresses`
// +kubebuilder:printcolumn:name="Auto Assign",type=boolean,JSONPath=`.spec.autoAssign`
// +kubebuilder:printcolumn:name="Avoid Buggy IPs",type=boolean,JSONPath=`.spec.avoidBuggyIPs`
// +kubebuilder:printcolumn:name="Assigned IPv4",type=integer,JSONPath=`.status.assignedIPv4`
// +kubebuilder:printcolumn:name="Available IPv4",type=integer,JSONPath=`.status.availableIPv4`
// +kubebuilder:printcolumn:name="Assigned IPv6",type=integer,JSONPath=`.status.assignedIPv6`
// +kubebuilder:printcolumn:name="Available IPv6",type=integer,JSONPath=`.status.availableIPv6`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type IPAddressPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   IPAddressPoolSpec   `json:"spec"`
	Status IPAddressPoolStatus `json:"status,omitempty"`
}

// IPAddressPoolList is a list of IPAddressPool.
//
// +kubebuilder:object:root=true
type IPAddressPoolList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []IPAddressPool `json:"items"`
}

func init() {
	SchemeBuilder.Register(&IPAddressPool{}, &IPAddressPoolList{})
}
