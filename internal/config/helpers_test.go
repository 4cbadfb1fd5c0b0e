package config

import (
	"bufio"
	"errors"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/ironlb/ironlb/api/v1beta1"
)

// testNamespace is the config namespace of every test object.
const testNamespace = "metallb-system"

// m writes one manifest of kind with the given name and spec (YAML flow style, "" for none).
func m(kind, name, spec string) string {
	version := "metallb.io/v1beta1"
	switch kind {
	case "BGPPeer":
		version = "metallb.io/v1beta2"
	case "Secret":
		version = "v1"
	}
	s := "apiVersion: " + version + "\nkind: " + kind + "\nmetadata: {name: '" + name + "', namespace: " + testNamespace + "}\n"
	if spec != "" {
		s += spec + "\n"
	}
	return s
}

// Shorthands for the kinds; spec is the value of the spec field.
func pool(name, spec string) string   { return m("IPAddressPool", name, "spec: "+spec) }
func l2(name, spec string) string     { return m("L2Advertisement", name, specOrNone(spec)) }
func bgpAdv(name, spec string) string { return m("BGPAdvertisement", name, specOrNone(spec)) }
func peer(name, spec string) string   { return m("BGPPeer", name, "spec: "+spec) }
func bfd(name, spec string) string    { return m("BFDProfile", name, specOrNone(spec)) }
func comm(name, spec string) string   { return m("Community", name, "spec: "+spec) }

func specOrNone(spec string) string {
	if spec == "" {
		return ""
	}
	return "spec: " + spec
}

// router is a valid eBGP peer at addr.
func router(name, addr string) string {
	return peer(name, "{myASN: 64500, peerASN: 64501, peerAddress: '"+addr+"'}")
}

// yamls joins manifests into one multi-document stream.
func yamls(docs ...string) string { return strings.Join(docs, "\n---\n") }

// load decodes a multi-document YAML stream into a Snapshot, strictly (a typo in a test
// manifest fails the test rather than silently dropping a field). Services are skipped, so the
// seeds' files load as they are.
func load(t testing.TB, stream string) Snapshot {
	t.Helper()
	var s Snapshot
	for _, doc := range splitDocs(stream) {
		var head struct {
			metav1.TypeMeta `json:",inline"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("bad test manifest: %v\n%s", err, doc)
		}
		var err error
		switch head.Kind {
		case "":
			var any map[string]any
			if err := yaml.Unmarshal([]byte(doc), &any); err != nil || len(any) != 0 {
				t.Fatalf("test manifest without kind:\n%s", doc)
			}
			continue
		case "Service":
			continue
		case "IPAddressPool":
			err = decodeInto(doc, &s.Pools)
		case "L2Advertisement":
			err = decodeInto(doc, &s.L2Advs)
		case "BGPAdvertisement":
			err = decodeInto(doc, &s.BGPAdvs)
		case "BGPPeer":
			if head.APIVersion == "metallb.io/v1beta1" {
				// v1beta1 holds a subset of v1beta2's fields under the same names.
				var old v1beta1.BGPPeer
				if err = yaml.UnmarshalStrict([]byte(doc), &old); err == nil {
					err = decodeInto(strings.Replace(doc, "metallb.io/v1beta1", "metallb.io/v1beta2", 1), &s.Peers)
				}
			} else {
				err = decodeInto(doc, &s.Peers)
			}
		case "BFDProfile":
			err = decodeInto(doc, &s.BFDProfiles)
		case "Community":
			err = decodeInto(doc, &s.Communities)
		case "Secret":
			var sec corev1.Secret
			if err = yaml.UnmarshalStrict([]byte(doc), &sec); err == nil {
				if s.Secrets == nil {
					s.Secrets = map[string]corev1.Secret{}
				}
				s.Secrets[sec.Name] = sec
			}
		default:
			t.Fatalf("test manifest of unknown kind %q", head.Kind)
		}
		if err != nil {
			t.Fatalf("bad test manifest: %v\n%s", err, doc)
		}
	}
	return s
}

func decodeInto[T any](doc string, list *[]T) error {
	var obj T
	if err := yaml.UnmarshalStrict([]byte(doc), &obj); err != nil {
		return err
	}
	*list = append(*list, obj)
	return nil
}

// splitDocs splits a YAML stream at lines starting with "---" (comments and trailing spaces
// after the marker allowed, as in the seeds).
func splitDocs(stream string) []string {
	var docs []string
	var cur strings.Builder
	sc := bufio.NewScanner(strings.NewReader(stream))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "---") {
			docs = append(docs, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteString(line + "\n")
	}
	return append(docs, cur.String())
}

// mustCompile compiles the stream and fails the test on any problem.
func mustCompile(t testing.TB, stream string) *Config {
	t.Helper()
	cfg, err := Compile(load(t, stream))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return cfg
}

// problemsOf compiles the stream and returns its problems; it fails the test when Compile
// succeeds or returns another kind of error.
func problemsOf(t testing.TB, stream string) []Problem {
	t.Helper()
	cfg, err := Compile(load(t, stream))
	if err == nil {
		t.Fatalf("Compile accepted an invalid snapshot:\n%s", stream)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Compile returned %T, want *Error: %v", err, err)
	}
	// A Config comes along exactly when every problem is a missing reference.
	if (cfg != nil) != OnlyMissingReferences(err) {
		t.Errorf("Compile returned Config %v with %d problems (only missing references: %v)", cfg != nil, len(e.Problems), OnlyMissingReferences(err))
	}
	return e.Problems
}
