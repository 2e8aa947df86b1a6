// Package v1 contains the rolesync.dev/v1 API: RoleMapping, the claim-to-role
// table, and ProxyUser, one user of a LiteLLM proxy.
//
// +kubebuilder:object:generate=true
// +groupName=rolesync.dev
package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "rolesync.dev", Version: "v1"}

	// SchemeBuilder registers the kinds of this package with a scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the kinds of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &RoleMapping{}, &RoleMappingList{}, &ProxyUser{}, &ProxyUserList{}, &DirectoryGroup{}, &DirectoryGroupList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
