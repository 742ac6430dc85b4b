package controller

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"strongroom.dev/api"
	"strongroom.dev/api/v1alpha1"
)

// The tests run against a real kube-apiserver and etcd (envtest), with the
// CRDs the chart ships. `make test` builds the binaries once
// (hack/k8s-test-bins.sh) and sets KUBEBUILDER_ASSETS.
var (
	restConfig *rest.Config
	scheme     = runtime.NewScheme()
	k8s        client.WithWatch
	testEnv    *envtest.Environment
)

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprintln(os.Stderr, "KUBEBUILDER_ASSETS is not set: these tests need a real kube-apiserver and etcd.\n"+
			"Run them through `make test`, or: export KUBEBUILDER_ASSETS=$(make -s testbins)")
		return 1
	}
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	crds, err := loadCRDs()
	if err != nil {
		fmt.Fprintln(os.Stderr, "CRDs:", err)
		return 1
	}
	testEnv = &envtest.Environment{CRDs: crds, ErrorIfCRDPathMissing: true}
	restConfig, err = testEnv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "envtest:", err)
		return 1
	}
	defer func() {
		if err := testEnv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "envtest stop:", err)
		}
	}()
	// A burst of writes in the simulations must not be throttled by the
	// client's default 5 requests/s.
	restConfig.QPS, restConfig.Burst = 1000, 2000
	k8s, err = client.NewWithWatch(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		return 1
	}
	return m.Run()
}

// loadCRDs reads the generated CRD manifests embedded in the api module.
func loadCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	files, err := fs.Glob(api.CRDs, "crds/*.yaml")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no CRD manifests embedded (%v)", err)
	}
	var out []*apiextensionsv1.CustomResourceDefinition
	for _, f := range files {
		raw, err := api.CRDs.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(bytes.TrimPrefix(raw, []byte("---\n")), &crd); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, &crd)
	}
	return out, nil
}

// newNamespace makes a namespace for one test.
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "t-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatalf("namespace: %v", err)
	}
	return ns.Name
}

// manifestKey creates a Secret with a pin-manifest key and returns the
// public half keyed by kid, as an app ships it.
func manifestKey(t testing.TB, ns, name string) map[string]*ecdsa.PublicKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Data: map[string][]byte{ManifestKeyData: pemKey}}
	if err := k8s.Create(context.Background(), sec); err != nil {
		t.Fatalf("manifest key Secret: %v", err)
	}
	kid, err := ManifestKeyID(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]*ecdsa.PublicKey{kid: &key.PublicKey}
}

// caSecret creates a CA Secret (tls.crt, tls.key) and returns its
// certificate.
func caSecret(t testing.TB, ns, name string, now time.Time) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{
			corev1.TLSCertKey:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			corev1.TLSPrivateKeyKey: pemKey,
		}}
	if err := k8s.Create(context.Background(), sec); err != nil {
		t.Fatalf("CA Secret: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// spec is a valid PinnedCertificate spec; tests change what they need.
func spec() v1alpha1.PinnedCertificateSpec {
	return v1alpha1.PinnedCertificateSpec{
		SecretName:   "authd-tls",
		DNSNames:     []string{"auth.bank.example", "auth-internal.bank.example"},
		Issuer:       v1alpha1.IssuerSpec{SelfSigned: &v1alpha1.SelfSignedIssuer{}},
		Validity:     metav1.Duration{Duration: 90 * 24 * time.Hour},
		RenewBefore:  metav1.Duration{Duration: 30 * 24 * time.Hour},
		PublishAhead: metav1.Duration{Duration: 14 * 24 * time.Hour},
		BackupKeys:   2,
		KeyAlgorithm: v1alpha1.ECDSAP256,
		PinSet: v1alpha1.PinSetSpec{
			ConfigMapName: "authd-pinset",
			ManifestKeys:  []v1alpha1.ManifestKeyRef{{SecretName: "manifest-a"}},
		},
	}
}

// createPC creates a PinnedCertificate named name in ns.
func createPC(t testing.TB, ns, name string, s v1alpha1.PinnedCertificateSpec) *v1alpha1.PinnedCertificate {
	t.Helper()
	pc := &v1alpha1.PinnedCertificate{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: s}
	if err := k8s.Create(context.Background(), pc); err != nil {
		t.Fatalf("create PinnedCertificate: %v", err)
	}
	return pc
}

// failingClient is k8s with its writes counted: write number failAt (from
// 1) fails, either refused or, with lost, done and then reported as
// failed, as if the operator died before it heard the answer. *writes is
// the number of writes tried so far.
func failingClient(failAt int, lost bool) (c client.Client, writes *int) {
	writes = new(int)
	fail := func(do func() error) error {
		*writes++
		if *writes != failAt {
			return do()
		}
		if lost {
			if err := do(); err != nil {
				return err
			}
		}
		return apierrors.NewServiceUnavailable("injected: the operator died here")
	}
	return interceptor.NewClient(k8s, interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			return fail(func() error { return c.Create(ctx, obj, opts...) })
		},
		Update: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.UpdateOption) error {
			return fail(func() error { return c.Update(ctx, obj, opts...) })
		},
		Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, p client.Patch, opts ...client.PatchOption) error {
			return fail(func() error { return c.Patch(ctx, obj, p, opts...) })
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			return fail(func() error { return c.Delete(ctx, obj, opts...) })
		},
		SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
			return fail(func() error { return c.SubResource(sub).Update(ctx, obj, opts...) })
		},
	}), writes
}

// eachFailedWrite runs, in parallel subtests, a scenario of total writes
// once for every write n failing in each of the two ways failingClient
// knows: refused, or done with its answer lost.
func eachFailedWrite(t *testing.T, total int, run func(t *testing.T, failAt int, lost bool)) {
	for n := 1; n <= total; n++ {
		for _, lost := range []bool{false, true} {
			name := fmt.Sprintf("write %d refused", n)
			if lost {
				name = fmt.Sprintf("write %d answer lost", n)
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				run(t, n, lost)
			})
		}
	}
}
