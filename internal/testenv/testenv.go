// Package testenv starts the real control plane that integration tests run against: etcd and
// kube-apiserver built by `make test-assets` into bin/, driven by controller-runtime's envtest,
// with ironlb's CRDs from config/crd/bases installed and Established.
//
// There is no fake here on purpose: CEL rules, defaulting, pruning, version conversion and
// server-side apply are the API server's, and only the real one shows what users will see.
//
// A test package starts one Env in TestMain and shares it; each test works in its own namespace.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/ironlb/ironlb/internal/scheme"
)

// Env is a running control plane.
type Env struct {
	// Root is the repository root.
	Root string
	// Config reaches the API server as a cluster admin.
	Config *rest.Config
	// Client is a controller-runtime client over Config with the ironlb scheme.
	Client client.Client
	// Scheme holds the built-in and metallb.io types.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of a kubeconfig file for the admin user, for kubectl.
	Kubeconfig string

	env       *envtest.Environment
	dir       string
	restarted []*exec.Cmd // API servers started by RestartAPIServer
}

// Start builds nothing: it runs the binaries in KUBEBUILDER_ASSETS, or in the repository's bin/
// when that is unset, and fails with the command to run when they are missing.
func Start() (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin")
	}
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("start test control plane: %s not found in %s: run `make test-assets` (or `make test`, which does)", b, assets)
		}
	}
	s, err := scheme.New()
	if err != nil {
		return nil, err
	}
	te := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                s,
	}
	// Dual-stack, as many bare-metal clusters are, so tests can create IPv6 and dual-stack
	// Services; a /16 so benchmarks can create thousands of Services.
	te.ControlPlane.GetAPIServer().Configure().Set("service-cluster-ip-range", "10.96.0.0/16,fd00:10:96::/112")
	cfg, err := te.Start()
	if err != nil {
		return nil, fmt.Errorf("start test control plane from %s: %w", assets, err)
	}
	e := &Env{Root: root, Config: cfg, Scheme: s, env: te}
	if e.Client, err = client.New(cfg, client.Options{Scheme: s}); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("build client: %w", err)
	}
	if err := e.writeKubeconfig(); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

func (e *Env) writeKubeconfig() error {
	user, err := e.env.AddUser(envtest.User{Name: "ironlb-test-admin", Groups: []string{"system:masters"}}, e.Config)
	if err != nil {
		return fmt.Errorf("add admin user: %w", err)
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return fmt.Errorf("render kubeconfig: %w", err)
	}
	if e.dir, err = os.MkdirTemp("", "ironlb-testenv-"); err != nil {
		return fmt.Errorf("make kubeconfig dir: %w", err)
	}
	e.Kubeconfig = filepath.Join(e.dir, "kubeconfig")
	if err := os.WriteFile(e.Kubeconfig, kc, 0o600); err != nil {
		return fmt.Errorf("write kubeconfig: %w", err)
	}
	return nil
}

// Stop stops the control plane and removes its files.
func (e *Env) Stop() error {
	var err error
	for _, cmd := range e.restarted {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err = errors.Join(err, ignoreSignalled(cmd.Wait()))
	}
	err = errors.Join(err, e.env.Stop())
	if e.dir != "" {
		err = errors.Join(err, os.RemoveAll(e.dir))
	}
	return err
}

// Dirs are the working directories of the control plane: etcd's data directory, the API
// server's certificate directory and the kubeconfig's. Stop removes them; they also name the
// etcd and kube-apiserver processes on their command lines, so a tool can find what a killed
// process left behind (see e2etest/demo).
func (e *Env) Dirs() []string {
	var dirs []string
	if cp := e.env.ControlPlane; cp.Etcd != nil && cp.Etcd.DataDir != "" {
		dirs = append(dirs, cp.Etcd.DataDir)
	}
	if cp := e.env.ControlPlane; cp.APIServer != nil && cp.APIServer.CertDir != "" {
		dirs = append(dirs, cp.APIServer.CertDir)
	}
	if e.dir != "" {
		dirs = append(dirs, e.dir)
	}
	return dirs
}

// KubectlPath is the kubectl binary Kubectl runs.
func (e *Env) KubectlPath() string { return filepath.Join(e.env.BinaryAssetsDirectory, "kubectl") }

// Kubectl runs the real kubectl against the control plane and returns its standard output;
// the error carries standard error, which is what a user would read.
func (e *Env) Kubectl(ctx context.Context, stdin []byte, args ...string) (string, error) {
	bin := e.KubectlPath()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", e.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// Namespace creates a namespace with a name derived from prefix and returns its name.
func (e *Env) Namespace(ctx context.Context, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := e.Client.Create(ctx, ns); err != nil {
		return "", fmt.Errorf("create namespace %s-*: %w", prefix, err)
	}
	return ns.Name, nil
}

// EnsureNamespace creates the named namespace unless it exists.
func (e *Env) EnsureNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := e.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s: %w", name, err)
	}
	return nil
}

// RepoRoot finds the repository root: the nearest directory upward holding ironlb's go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/ironlb/ironlb\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find repository root: no go.mod of github.com/ironlb/ironlb above the working directory")
		}
		dir = parent
	}
}

// Main is a test binary's TestMain: it starts the control plane into *env, runs the tests and
// stops it, exiting with the tests' status. Controllers started by the tests log errors only,
// so a failing test shows why and a passing one stays quiet; IRONLB_TEST_LOG=info shows all.
// cleanups run after the tests, before the exit (which skips deferred calls), e.g. to remove
// binaries the tests built.
func Main(m *testing.M, env **Env, cleanups ...func()) {
	level := zapcore.ErrorLevel
	if os.Getenv("IRONLB_TEST_LOG") == "info" {
		level = zapcore.InfoLevel
	}
	// Millisecond timestamps: start-up steps of a controller are tens of milliseconds apart.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level), func(o *zap.Options) { o.TimeEncoder = zapcore.RFC3339NanoTimeEncoder }))
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*env = e
	code := m.Run()
	for _, c := range cleanups {
		c()
	}
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop test control plane:", err)
	}
	os.Exit(code)
}

// Eventually polls cond every 50ms until it holds, failing the test after timeout with what
// cond last reported. Tests synchronise with this, never with sleeps.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: not reached within %s; last seen: %s", what, timeout, last)
}

// ignoreSignalled drops the error of a process that exited because it was told to.
func ignoreSignalled(err error) error {
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return nil
		}
	}
	return err
}
