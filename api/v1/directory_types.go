package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxDirectoryGroups bounds spec.directory.groups of one ProxyUser.
const MaxDirectoryGroups = 512

// DirectoryUser is what the identity provider's directory (SCIM 2.0) says
// about a user. Written by the manager's SCIM service provider only.
type DirectoryUser struct {
	// userName is the SCIM userName.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=320
	UserName string `json:"userName"`

	// externalID is the SCIM externalId the directory gave the user.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ExternalID string `json:"externalID,omitempty"`

	// displayName is the SCIM displayName.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName,omitempty"`

	// active false means the directory deprovisioned the user: denied
	// (reason Deprovisioned), the row demoted and deactivated, every key
	// blocked.
	// +required
	Active bool `json:"active"`

	// deleted means the directory deleted the user (DELETE /Users/{id}):
	// deprovisioned, and this ProxyUser is deleted once the row is demoted
	// and the keys blocked.
	// +optional
	Deleted bool `json:"deleted,omitempty"`

	// groupsManaged: a directory group has listed the user as a member, so
	// the groups claim (--scim-groups-claim) comes from the directory alone
	// from then on, even after the user leaves every group.
	// +optional
	GroupsManaged bool `json:"groupsManaged,omitempty"`

	// groups are the directory groups the user is a member of.
	// +optional
	// +listType=map
	// +listMapKey=id
	// +kubebuilder:validation:MaxItems=512
	Groups []DirectoryGroupRef `json:"groups,omitempty"`

	// updatedAt is when the directory last changed what it says about the
	// user: a statement about the user's claims, as a login is (maxClaimAge).
	// +optional
	UpdatedAt *metav1.MicroTime `json:"updatedAt,omitempty"`
}

// DirectoryGroupRef is one directory group a user is a member of.
type DirectoryGroupRef struct {
	// id is the DirectoryGroup's name (its SCIM id).
	// +kubebuilder:validation:MaxLength=253
	ID string `json:"id"`
	// displayName is the group's SCIM displayName: the value the groups
	// claim holds.
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName"`
}

// DirectoryGroupSpec is a group as the identity provider's directory
// describes it. Its members are not listed here (a group may have more
// members than one object can hold): each member's ProxyUser lists the
// group in spec.directory.groups.
type DirectoryGroupSpec struct {
	// displayName is the SCIM displayName: the value of the groups claim of
	// every member.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	DisplayName string `json:"displayName"`

	// externalID is the SCIM externalId.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ExternalID string `json:"externalID,omitempty"`
}

// DirectoryGroup is a group the identity provider's directory pushed over
// SCIM. Written by the manager's SCIM service provider only.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=dg,categories=rolesync
// +kubebuilder:printcolumn:name="Group",type=string,JSONPath=".spec.displayName"
// +kubebuilder:printcolumn:name="External ID",type=string,JSONPath=".spec.externalID",priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=".metadata.creationTimestamp"
type DirectoryGroup struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec DirectoryGroupSpec `json:"spec"`
}

// DirectoryGroupList is a list of DirectoryGroups.
//
// +kubebuilder:object:root=true
type DirectoryGroupList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DirectoryGroup `json:"items"`
}
