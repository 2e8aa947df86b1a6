// Package scim is rolesync's SCIM 2.0 service provider (RFC 7643/7644): the
// identity provider's directory (Entra ID, Okta, OneLogin) pushes users and
// groups to https://<scim host>/scim/v2/<namespace>, and rolesync keeps
// them in the cluster: a SCIM user is the namespace's ProxyUser for that
// person (spec.directory), a SCIM group a DirectoryGroup whose members are
// listed on their ProxyUsers (spec.directory.groups), so a group of 50,000
// members never has to fit in one object. The protocol (routing, schemas,
// filter and PATCH validation, the error schema) is
// github.com/elimity-com/scim with github.com/scim2/filter-parser; this
// package authenticates (bearer tokens per namespace), bounds and
// rate-limits requests, and stores resources through the manager's client.
// The controller then decides from what the directory says (package
// proxyuser): directory groups as the groups claim, deprovisioning.
package scim
