package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CommunityValue is a BGP community: standard "65000:100" (two 16-bit numbers) or large
// "large:1:2:3" (three 32-bit numbers).
//
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="(self.matches('^[0-9]{1,5}:[0-9]{1,5}$') && int(self.split(':')[0]) <= 65535 && int(self.split(':')[1]) <= 65535) || (self.matches('^large:[0-9]{1,10}:[0-9]{1,10}:[0-9]{1,10}$') && int(self.split(':')[1]) <= 4294967295 && int(self.split(':')[2]) <= 4294967295 && int(self.split(':')[3]) <= 4294967295)",message="must be a standard community such as 65000:100 (each part 0-65535) or a large community such as large:65000:1:2 (each part 0-4294967295)"
type CommunityValue string

// CommunityAlias gives a BGP community a name that BGPAdvertisements can use.
type CommunityAlias struct {
	// Name is the alias BGPAdvertisement.spec.communities may refer to.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?$`
	Name string `json:"name,omitempty"`

	// Value is the community the name stands for.
	Value CommunityValue `json:"value,omitempty"`
}

// CommunitySpec holds community aliases.
type CommunitySpec struct {
	// Communities are the aliases. Names must be unique (also across Community objects, which the
	// webhook checks).
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="self.all(c, !has(c.name) || self.exists_one(d, has(d.name) && d.name == c.name))",message="community alias names must be unique"
	Communities []CommunityAlias `json:"communities,omitempty"`
}

// CommunityStatus is empty.
type CommunityStatus struct{}

// Community is a set of named BGP communities.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:categories=metallb;ironlb
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Community struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   CommunitySpec   `json:"spec,omitempty"`
	Status CommunityStatus `json:"status,omitempty"`
}

// CommunityList is a list of Community.
//
// +kubebuilder:object:root=true
type CommunityList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Community `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Community{}, &CommunityList{})
}
