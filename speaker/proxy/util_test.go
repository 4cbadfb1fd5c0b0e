package proxy_test

import (
	"fmt"
	"slices"

	"github.com/ironlb/ironlb/speaker/proxy/healthcheck"
)

func slicesSort(s []string) { slices.Sort(s) }

func fmtStatus(st map[uint16]healthcheck.Status) string { return fmt.Sprint(st) }
