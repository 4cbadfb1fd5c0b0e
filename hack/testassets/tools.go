//go:build tools

// Package testassets records the commands built from this module so `go mod tidy` keeps them.
package testassets

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
