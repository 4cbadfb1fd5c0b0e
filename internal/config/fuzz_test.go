package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// fuzzSnapshot decodes a multi-document YAML or JSON stream into a Snapshot, leniently: a
// document that does not decode, or whose kind is not one Compile reads, is left out, so every
// mutation of the fuzzer still reaches Compile with whatever it kept.
func fuzzSnapshot(stream string) Snapshot {
	var s Snapshot
	for _, doc := range splitDocs(stream) {
		var head struct {
			metav1.TypeMeta `json:",inline"`
		}
		if yaml.Unmarshal([]byte(doc), &head) != nil {
			continue
		}
		b := []byte(doc)
		switch head.Kind {
		case "IPAddressPool":
			_ = decodeLenient(b, &s.Pools)
		case "L2Advertisement":
			_ = decodeLenient(b, &s.L2Advs)
		case "BGPAdvertisement":
			_ = decodeLenient(b, &s.BGPAdvs)
		case "BGPPeer":
			_ = decodeLenient(b, &s.Peers)
		case "BFDProfile":
			_ = decodeLenient(b, &s.BFDProfiles)
		case "Community":
			_ = decodeLenient(b, &s.Communities)
		case "Secret":
			var sec corev1.Secret
			if yaml.Unmarshal(b, &sec) == nil {
				if s.Secrets == nil {
					s.Secrets = map[string]corev1.Secret{}
				}
				s.Secrets[sec.Name] = sec
			}
		}
	}
	return s
}

func decodeLenient[T any](doc []byte, list *[]T) error {
	var obj T
	if err := yaml.Unmarshal(doc, &obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	return nil
}

// snapshotNames counts the objects of each kind and name in a snapshot.
func snapshotNames(s Snapshot) map[ObjectRef]int {
	n := map[ObjectRef]int{}
	for _, o := range s.Pools {
		n[ObjectRef{Kind: KindIPAddressPool, Name: o.Name}]++
	}
	for _, o := range s.L2Advs {
		n[ObjectRef{Kind: KindL2Advertisement, Name: o.Name}]++
	}
	for _, o := range s.BGPAdvs {
		n[ObjectRef{Kind: KindBGPAdvertisement, Name: o.Name}]++
	}
	for _, o := range s.Peers {
		n[ObjectRef{Kind: KindBGPPeer, Name: o.Name}]++
	}
	for _, o := range s.BFDProfiles {
		n[ObjectRef{Kind: KindBFDProfile, Name: o.Name}]++
	}
	for _, o := range s.Communities {
		n[ObjectRef{Kind: KindCommunity, Name: o.Name}]++
	}
	return n
}

// FuzzCompile compiles snapshots decoded from fuzzed multi-document YAML/JSON streams (the format
// of the other tests: "---" between documents, each with its kind). Properties: Compile never
// panics; it returns a Config, or an *Error listing at least one problem, each reported on an
// object of the snapshot and naming a field of it (only a name used twice is reported on the
// object as a whole), with a Config alongside exactly when every problem is a missing reference;
// the same input compiles to the same result twice; and the pools of a returned Config never
// overlap.
func FuzzCompile(f *testing.F) {
	for _, stream := range []string{
		"",
		poolP,
		yamls(poolP, poolV6, l2("l2", ""), bgpAdv("b", "{aggregationLength: 24, localPref: 100, communities: [65000:1, large:1:2:3, alias]}"),
			comm("c", "{communities: [{name: alias, value: '65000:2'}]}"), r1, r2, bfd("slow", "{receiveInterval: 300, echoMode: false}")),
		yamls(pool("a", "{addresses: [10.0.0.0/24, 10.0.0.1-10.0.0.9]}"), pool("b", "{addresses: ['10.0.0.128/25', 'fc00::1-fc00::ff']}")),
		yamls(pool("a", "{addresses: [10.0.0.0/24]}"), pool("a", "{addresses: [10.0.1.0/24]}")),
		pool("r", "{addresses: ['0.0.0.0-255.255.255.255', '::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'], avoidBuggyIPs: true, autoAssign: false}"),
		pool("s", "{addresses: [10.1.0.0/16], serviceAllocation: {priority: -1, namespaces: [a, a], namespaceSelectors: [{matchLabels: {x: y}}], serviceSelectors: [{matchExpressions: [{key: k, operator: In, values: []}]}]}}"),
		yamls(poolP, l2("l2", "{ipAddressPools: [p, missing, p], interfaces: ['', eth0], nodeSelectors: [{matchLabels: {'bad key!': v}}]}")),
		yamls(poolP, poolV6, bgpAdv("x", "{localPref: 1}"), bgpAdv("y", "{localPref: 2, peers: [r1]}"), r1),
		yamls(poolV6, bgpAdv("x", ""), bfd("echo", "{echoMode: true}"), peerWith("bfdProfile: echo")),
		yamls(peerWith("passwordSecret: {name: bgp-auth}"), m("Secret", "bgp-auth", "type: kubernetes.io/basic-auth\nstringData: {password: x}")),
		yamls(peerWith("password: s3cret, passwordSecret: {name: other, namespace: default}, holdTime: 1s, keepaliveTime: 5s")),
		peer("u", "{myASN: 64500, dynamicASN: external, interface: eth0, peerAddress: 'fe80::1%eth0', ebgpMultiHop: true}"),
		yamls(bgpAdv("agg", "{aggregationLength: 8, aggregationLengthV6: 200, serviceSelectors: [{matchLabels: {a: b}}]}"), pool("q", "{addresses: [10.2.0.0/16]}")),
		`{"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "json"}, "spec": {"addresses": ["192.168.1.0/24"]}}`,
		"kind: IPAddressPool\nspec: {addresses: [1.2.3.4/32]}\n", // no name
	} {
		f.Add(stream)
	}
	// The e2e seeds are real configurations.
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "e2etest", "testdata", "seeds", "*.yaml"))
	for _, file := range seeds {
		raw, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(raw))
	}

	f.Fuzz(func(t *testing.T, stream string) {
		snap := fuzzSnapshot(stream)
		cfg, err := Compile(snap)
		checkCompiled(t, snap, cfg, err)

		cfg2, err2 := Compile(fuzzSnapshot(stream))
		if !reflect.DeepEqual(cfg, cfg2) {
			t.Fatalf("Compile is not deterministic: Config\n%s\nthen\n%s", dumpConfig(cfg), dumpConfig(cfg2))
		}
		if fmt.Sprint(err) != fmt.Sprint(err2) || !reflect.DeepEqual(err, err2) {
			t.Fatalf("Compile is not deterministic: error\n%v\nthen\n%v", err, err2)
		}
	})
}

func checkCompiled(t *testing.T, snap Snapshot, cfg *Config, err error) {
	t.Helper()
	if err == nil {
		if cfg == nil {
			t.Fatal("Compile returned neither a Config nor an error")
		}
	} else {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Compile returned %T, want *Error: %v", err, err)
		}
		if len(e.Problems) == 0 {
			t.Fatalf("Compile returned an *Error without problems")
		}
		if (cfg != nil) != OnlyMissingReferences(err) {
			t.Fatalf("Compile returned a Config: %v, only missing references: %v (%v)", cfg != nil, OnlyMissingReferences(err), err)
		}
		names := snapshotNames(snap)
		for _, p := range e.Problems {
			n := names[ObjectRef{Kind: p.Kind, Name: p.Name}]
			if n == 0 {
				t.Fatalf("problem %q is reported on %s %q, which is not in the snapshot", p, p.Kind, p.Name)
			}
			if p.Field == "" && n < 2 {
				t.Fatalf("problem %q names no field", p)
			}
			if p.Type < ProblemInvalid || p.Type > ProblemMissingReference || p.Msg == "" {
				t.Fatalf("problem %+v has no type or no message", p)
			}
		}
	}
	if cfg == nil {
		return
	}
	type owned struct {
		pool   string
		prefix netip.Prefix
	}
	var all []owned
	for _, p := range cfg.Pools {
		for _, pfx := range p.CIDRs {
			if !pfx.IsValid() || pfx != pfx.Masked() {
				t.Fatalf("pool %q has prefix %v, want valid and masked", p.Name, pfx)
			}
			for _, o := range all {
				if o.prefix.Overlaps(pfx) {
					t.Fatalf("pool %q prefix %v overlaps pool %q prefix %v (error %v)", p.Name, pfx, o.pool, o.prefix, err)
				}
			}
			all = append(all, owned{p.Name, pfx})
		}
	}
}

// dumpConfig prints a Config for a failure message.
func dumpConfig(cfg *Config) string {
	if cfg == nil {
		return "<nil>"
	}
	var b strings.Builder
	for _, p := range cfg.Pools {
		fmt.Fprintf(&b, "pool %+v\n", *p)
	}
	for _, a := range cfg.BGPAdvertisements {
		fmt.Fprintf(&b, "bgpAdvertisement %+v\n", *a)
	}
	for _, a := range cfg.L2Advertisements {
		fmt.Fprintf(&b, "l2Advertisement %+v\n", *a)
	}
	for _, p := range cfg.Peers {
		fmt.Fprintf(&b, "peer %+v\n", *p)
	}
	for _, p := range cfg.BFDProfiles {
		fmt.Fprintf(&b, "bfdProfile %+v\n", *p)
	}
	fmt.Fprintf(&b, "communities %v\n", cfg.Communities)
	return b.String()
}
