package allocation_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/ironlb/ironlb/controller/allocation"
)

// BenchmarkStatusWriteKinds compares ways of writing N Service statuses (ingress and pool
// annotation), 32 at a time, from objects listed beforehand: the merge patch computed by
// client.MergeFrom, the same merge patch written out (what the controller sends), an update
// of /status (protobuf body, resourceVersion-checked), and a server-side apply. Three rounds,
// kinds interleaved, statuses cleared (untimed) before each pass; the medians are reported.
// It takes minutes, so it runs only with IRONLB_BENCH_WRITE_KINDS=1.
func BenchmarkStatusWriteKinds(b *testing.B) {
	if os.Getenv("IRONLB_BENCH_WRITE_KINDS") == "" {
		b.Skip("set IRONLB_BENCH_WRITE_KINDS=1 to compare status write kinds")
	}
	n := benchN()
	ctx := context.Background()
	_, ns := benchSetup(b)
	createServices(b, ns, n)
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		b.Fatal(err)
	}
	list := func() []corev1.Service {
		l := &corev1.ServiceList{}
		if err := env.Client.List(ctx, l, client.InNamespace(ns)); err != nil {
			b.Fatal(err)
		}
		return l.Items
	}
	const key = allocation.AnnotationAllocatedFromPool
	vip := corev1.LoadBalancerIPModeVIP
	type writeFunc func(pass, i int, s *corev1.Service) error
	ip := func(pass, i int) string { return fmt.Sprintf("10.%d.%d.%d", 100+pass, i/256, i%256) }
	set := func(pass, i int, s *corev1.Service) {
		s.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: ip(pass, i), IPMode: &vip}}
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[key] = "bench"
	}
	kinds := []struct {
		name  string
		write writeFunc
	}{
		{"merge-computed", func(pass, i int, s *corev1.Service) error {
			p := client.MergeFrom(s.DeepCopy())
			set(pass, i, s)
			return env.Client.Status().Patch(ctx, s, p)
		}},
		{"merge-written", func(pass, i int, s *corev1.Service) error {
			body := fmt.Sprintf(`{"metadata":{"annotations":{%q:"bench"}},"status":{"loadBalancer":{"ingress":[{"ip":%q,"ipMode":"VIP"}]}}}`, key, ip(pass, i))
			return env.Client.Status().Patch(ctx, s, client.RawPatch(types.MergePatchType, []byte(body)))
		}},
		{"update", func(pass, i int, s *corev1.Service) error {
			set(pass, i, s)
			return env.Client.Status().Update(ctx, s)
		}},
		{"apply", func(pass, i int, s *corev1.Service) error {
			ac := corev1ac.Service(s.Name, s.Namespace).WithAnnotations(map[string]string{key: "bench"}).
				WithStatus(corev1ac.ServiceStatus().WithLoadBalancer(corev1ac.LoadBalancerStatus().
					WithIngress(corev1ac.LoadBalancerIngress().WithIP(ip(pass, i)).WithIPMode(vip))))
			_, err := cs.CoreV1().Services(s.Namespace).ApplyStatus(ctx, ac, metav1.ApplyOptions{FieldManager: "bench", Force: true})
			return err
		}},
	}
	run := func(items []corev1.Service, pass int, f writeFunc) time.Duration {
		next := make(chan int)
		var wg sync.WaitGroup
		start := time.Now()
		for range 32 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := f(pass, i, &items[i]); err != nil {
						b.Error(err)
					}
				}
			}()
		}
		for i := range items {
			next <- i
		}
		close(next)
		wg.Wait()
		return time.Since(start)
	}
	clear := func(_, _ int, s *corev1.Service) error {
		body := fmt.Sprintf(`{"metadata":{"annotations":{%q:null}},"status":{"loadBalancer":{"ingress":null}}}`, key)
		return env.Client.Status().Patch(ctx, s, client.RawPatch(types.MergePatchType, []byte(body)))
	}
	secs := map[string][]float64{}
	apiCPU := map[string][]float64{}
	pass := 0
	for round := range 3 {
		for _, k := range kinds {
			run(list(), 0, clear)
			items := list()
			cpu := cpuSeconds()
			d := run(items, pass, k.write)
			after := cpuSeconds()
			pass++
			secs[k.name] = append(secs[k.name], d.Seconds())
			apiCPU[k.name] = append(apiCPU[k.name], after["kube-apiserver"]-cpu["kube-apiserver"])
			b.Logf("round %d %-15s %.2fs (%.0f/s), kube-apiserver CPU %.2fs", round, k.name, d.Seconds(), float64(n)/d.Seconds(),
				after["kube-apiserver"]-cpu["kube-apiserver"])
		}
	}
	for _, k := range kinds {
		b.ReportMetric(median(secs[k.name]), k.name+"-s")
		b.ReportMetric(median(apiCPU[k.name]), k.name+"-apiserver-cpu-s")
	}
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}
