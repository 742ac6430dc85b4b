package e2e

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"strongroom.dev/api/v1alpha1"
)

// kube is a real kube-apiserver and etcd (envtest) with the project's
// CRDs and a namespace "bank", and a client for it.
type kube struct {
	env    *envtest.Environment
	client client.Client
	root   string // the repository
}

// startKube starts the API server; it is stopped when the test ends.
func startKube(t *testing.T) *kube {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run through `make test` (or export KUBEBUILDER_ASSETS=$(make -s testbins))")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// controller-runtime's own logs (envtest, the client) are not the
	// tests' subject.
	ctrllog.SetLogger(logr.Discard())
	env := &envtest.Environment{CRDDirectoryPaths: []string{filepath.Join(root, "api", "crds")}, ErrorIfCRDPathMissing: true}
	cfg, err := env.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	k8s, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := k8s.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "bank"}}); err != nil {
		t.Fatal(err)
	}
	return &kube{env: env, client: k8s, root: root}
}
