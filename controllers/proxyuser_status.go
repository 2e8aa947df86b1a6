package controllers

import "github.com/rolesync/rolesync/internal/rolemap"

// resolution is the role a ProxyUser should hold and why.
type resolution = rolemap.Resolution
