//go:build tools

// Package helm records the helm CLI built from this module so `go mod tidy` keeps it.
package helm

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
