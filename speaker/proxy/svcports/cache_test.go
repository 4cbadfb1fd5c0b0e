package svcports

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"sigs.k8s.io/knftables"
)

// TestCache: the cache gives what the plain conversion gives, after each change; it
// converts again only the Services whose object or slices changed (or carry no
// resourceVersion), and forgets deleted ones.
func TestCache(t *testing.T) {
	versioned := func(s corev1.Service, rv string) corev1.Service { s.ResourceVersion = rv; return s }
	sliceRV := func(s discoveryv1.EndpointSlice, rv string) discoveryv1.EndpointSlice {
		s.ResourceVersion = rv
		return s
	}
	web := versioned(svc("web", corev1.ServiceTypeClusterIP, []string{"10.96.0.10"}), "1")
	db := versioned(svc("db", corev1.ServiceTypeClusterIP, []string{"10.96.0.11"}), "1")
	unversioned := svc("legacy", corev1.ServiceTypeClusterIP, []string{"10.96.0.12"})
	svcs := []corev1.Service{web, db, unversioned}
	eps := []discoveryv1.EndpointSlice{
		sliceRV(slice("web", "web-b", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.2.1", "node-b")), "5"),
		sliceRV(slice("web", "web-a", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.1", "node-a")), "4"),
		sliceRV(slice("db", "db-a", discoveryv1.AddressTypeIPv4, "http", 5432, ep("10.244.1.2", "node-a")), "6"),
		slice("legacy", "legacy-a", discoveryv1.AddressTypeIPv4, "http", 80, ep("10.244.1.3", "node-a")),
	}
	c := &Cache{Family: knftables.IPv4Family}
	check := func(step string) {
		t.Helper()
		got, want := c.ServicePorts(svcs, eps), ServicePorts(knftables.IPv4Family, svcs, eps)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: cache gives\n%+v\nwant\n%+v", step, got, want)
		}
	}
	entryOf := func(name string) *entry {
		for k, e := range c.entries {
			if k.Name == name {
				return e
			}
		}
		return nil
	}
	check("first")
	webEntry, legacyEntry := entryOf("web"), entryOf("legacy")

	// Listed in another order, nothing changed: every versioned Service reused.
	eps[0], eps[1] = eps[1], eps[0]
	check("reordered")
	if entryOf("web") != webEntry {
		t.Error("web converted again though nothing changed")
	}
	if entryOf("legacy") == legacyEntry {
		t.Error("a Service without resourceVersion was not converted again")
	}

	// One slice of web changes.
	eps[0] = sliceRV(slice("web", "web-a", discoveryv1.AddressTypeIPv4, "http", 8080, ep("10.244.1.9", "node-a")), "7")
	dbEntry := entryOf("db")
	check("slice changed")
	if entryOf("web") == webEntry || entryOf("db") != dbEntry {
		t.Error("want web converted again and db reused")
	}

	// db's Service changes; then it goes.
	svcs[1] = versioned(svc("db", corev1.ServiceTypeNodePort, []string{"10.96.0.11"}), "2")
	check("Service changed")
	svcs = svcs[:1]
	check("Services deleted")
	if len(c.entries) != 1 {
		t.Errorf("cache keeps %d entries, want 1", len(c.entries))
	}
}
