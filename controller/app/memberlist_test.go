package app_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/controller/app"
	"github.com/ironlb/ironlb/controller/app/apptest"
	"github.com/ironlb/ironlb/internal/testenv"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// TestMemberlistSecret: the controller creates the speakers' memberlist Secret with a random
// key, and leaves an existing one alone.
func TestMemberlistSecret(t *testing.T) {
	ctx := context.Background()
	ns, err := env.Namespace(ctx, "ml")
	if err != nil {
		t.Fatal(err)
	}
	mine := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "users-own"},
		Data: map[string][]byte{app.MemberlistSecretKey: []byte("keep me")}}
	if err := env.Client.Create(ctx, mine); err != nil {
		t.Fatal(err)
	}
	stop := apptest.Start(t, env.Config, ns, func(c *app.Config) { c.MemberlistSecretName = "ironlb-memberlist" })
	var got corev1.Secret
	testenv.Eventually(t, 20*time.Second, "memberlist Secret created", func() (bool, string) {
		err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ironlb-memberlist"}, &got)
		return err == nil, errString(err)
	})
	if key := got.Data[app.MemberlistSecretKey]; len(key) < 128 {
		t.Errorf("generated key is %d bytes, want a long random one", len(key))
	}
	stop()

	// A restart, and a Secret that exists already: nothing is rewritten.
	apptest.Start(t, env.Config, ns, func(c *app.Config) { c.MemberlistSecretName = "users-own" })
	before := got.Data[app.MemberlistSecretKey]
	testenv.Eventually(t, 5*time.Second, "existing Secrets untouched", func() (bool, string) {
		var s, own corev1.Secret
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "ironlb-memberlist"}, &s); err != nil {
			return false, err.Error()
		}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: "users-own"}, &own); err != nil {
			return false, err.Error()
		}
		return bytes.Equal(s.Data[app.MemberlistSecretKey], before) && string(own.Data[app.MemberlistSecretKey]) == "keep me", "a Secret changed"
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
