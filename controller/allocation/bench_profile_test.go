package allocation_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
)

// benchProfile, when IRONLB_BENCH_PROFILE names a directory, records CPU profiles of this test
// process (controller, benchmark informer) and of the kube-apiserver (its /debug/pprof, on by
// default as in any cluster) over the measured part of a benchmark, into <dir>/<name>-*.pprof.
// It returns the function that ends the recording.
func benchProfile(b *testing.B, name string, maxDur time.Duration) (stop func()) {
	b.Helper()
	dir := os.Getenv("IRONLB_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, name+"-test.pprof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	reqBefore := apiRequests(b, cs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		// The API server profiles for a fixed time; ask for maxDur so the window covers the run.
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/debug/pprof/profile").
			Param("seconds", fmt.Sprint(int(maxDur.Seconds()))).Timeout(maxDur + time.Minute).DoRaw(context.Background())
		if err != nil {
			b.Errorf("profile kube-apiserver: %v", err)
			return
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-apiserver.pprof"), body, 0o644); err != nil {
			b.Error(err)
		}
	}()
	return func() {
		after := apiRequests(b, cs)
		var lines []string
		for k, v := range after {
			if d := v - reqBefore[k]; d > 0 {
				lines = append(lines, fmt.Sprintf("%6.0f %s", d, k))
			}
		}
		slices.Sort(lines)
		_ = os.WriteFile(filepath.Join(dir, name+"-requests.txt"), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
		pprof.StopCPUProfile()
		_ = f.Close()
		<-done
	}
}

// cpuSeconds reads the CPU time (user+system) used so far by this process and by its child
// processes named kube-apiserver and etcd, from /proc: which part of the machine a benchmark
// keeps busy.
func cpuSeconds() map[string]float64 {
	out := map[string]float64{}
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ... utime(14) stime(15); comm may hold spaces, so cut at ')'.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		j := strings.IndexByte(s, '(')
		if i < 0 || j < 0 {
			continue
		}
		comm, f := s[j+1:i], strings.Fields(s[i+1:])
		if len(f) < 13 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		name := ""
		switch {
		case pid == self:
			name = "test"
		case ppid == self && (comm == "kube-apiserver" || comm == "etcd"):
			name = comm
		default:
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		out[name] += (ut + st) / clockTicks
	}
	return out
}

// clockTicks is USER_HZ, 100 on every Linux this runs on.
const clockTicks = 100

// reportCPU reports the CPU seconds each process used since before.
func reportCPU(b *testing.B, before map[string]float64) {
	after := cpuSeconds()
	for _, name := range []string{"kube-apiserver", "etcd", "test"} {
		b.ReportMetric(after[name]-before[name], name+"-cpu-s")
	}
}

// apiRequests reads the API server's apiserver_request_total, summed by verb, resource and
// subresource.
func apiRequests(b *testing.B, cs *kubernetes.Clientset) map[string]float64 {
	body, err := cs.Discovery().RESTClient().Get().AbsPath("/metrics").DoRaw(context.Background())
	if err != nil {
		b.Errorf("read kube-apiserver metrics: %v", err)
		return nil
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		labels, value, _ := strings.Cut(line[len("apiserver_request_total{"):], "} ")
		v, _ := strconv.ParseFloat(value, 64)
		var key []string
		for _, l := range strings.Split(labels, ",") {
			k, val, _ := strings.Cut(l, "=")
			if k == "verb" || k == "resource" || k == "subresource" || k == "code" {
				key = append(key, k+"="+strings.Trim(val, `"`))
			}
		}
		out[strings.Join(key, " ")] += v
	}
	return out
}
