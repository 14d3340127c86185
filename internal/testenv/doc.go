// Package testenv starts the real services obol's tests run against: a
// kube-apiserver with etcd (through controller-runtime's envtest) and a
// Prometheus server, plus the promtool binary for rule tests.
//
// The binaries come from `make test-deps`. When one is missing, tests skip
// with a message naming that target; under CI=true they fail instead, so a
// CI run can never pass by skipping.
//
// A package that needs Kubernetes starts one API server for all its tests:
//
//	var kube *testenv.Kube
//	var kubeErr error
//
//	func TestMain(m *testing.M) {
//		kube, kubeErr = testenv.StartKube(testenv.WithCRDs("../../charts/obol/crds"))
//		code := m.Run()
//		kube.Stop()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		testenv.SkipOrFail(t, kubeErr)
//		kube.LogOnFailure(t)
//		ns := kube.NewNamespace(t)
//		// use kube.Client, kube.Config or kube.Kubeconfig (a file path for --kubeconfig)
//	}
//
// Prometheus starts in well under a second, so each test starts its own:
//
//	prom := testenv.StartPrometheus(t, testenv.PromConfig{Targets: []string{addr}})
//	prom.WaitForValue(t, `my_counter_total`, 42)
package testenv
