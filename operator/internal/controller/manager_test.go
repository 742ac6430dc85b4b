package controller

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"strongroom.dev/api/keyset"
	"strongroom.dev/api/v1alpha1"
)

// syncBuffer is a log sink the manager's goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestManager runs the operator as it runs in a cluster: a manager with
// leader election, watches and a label-filtered cache, on the real clock.
// A new PinnedCertificate gets its keys, pin set and certificate, and new
// KeySets their keys; status and `kubectl get` show the pins and keys;
// Events report each step; and no private key appears in the status, the
// events or the logs.
func TestManager(t *testing.T) {
	ns := newNamespace(t)
	logs := &syncBuffer{}
	log := zap.New(zap.WriteTo(logs), zap.UseDevMode(true))
	opts := ctrl.Options{
		Scheme:                  scheme,
		Logger:                  log,
		Metrics:                 metricsserver.Options{BindAddress: "0"},
		LeaderElection:          true,
		LeaderElectionID:        "strongroom-operator.strongroom.dev",
		LeaderElectionNamespace: ns,
		Cache:                   CacheOptions(),
		// `go test -count=N` starts a manager per run in one process:
		// each registers the same controller name.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	}
	// The operator runs as a user with only the generated RBAC.
	mgr, err := ctrl.NewManager(operatorUser(t, ns), opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := Setup(mgr, clock.RealClock{}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	manifestKey(t, ns, "manifest-a")
	createPC(t, ns, "authd", spec())
	createKS(t, ns, "tokens", ksSpec())
	sealing := ksSpec()
	sealing.Purpose, sealing.SecretName = v1alpha1.PurposePayloadSealing, "authd-sealing-keys"
	createKS(t, ns, "sealing", sealing)
	var pc v1alpha1.PinnedCertificate
	waitFor(t, "the PinnedCertificate to be Ready", func() bool {
		if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "authd"}, &pc); err != nil {
			t.Fatal(err)
		}
		return meta.IsStatusConditionTrue(pc.Status.Conditions, v1alpha1.ConditionReady)
	})
	st := pc.Status
	if st.CurrentPin == "" || st.NextPin == "" || st.NotAfter == nil || st.NextRotationTime == nil || st.PinSetVersion < 1 || len(st.Pins) != 4 {
		t.Fatalf("status: %+v", st)
	}
	if want := st.NotAfter.Add(-spec().RenewBefore.Duration); !st.NextRotationTime.Time.Equal(want) {
		t.Fatalf("nextRotationTime %s, want renewal time %s", st.NextRotationTime, want)
	}

	// Deleting the serving Secret (by mistake) brings it back: the
	// operator watches what it owns.
	var tls corev1.Secret
	if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "authd-tls"}, &tls); err != nil {
		t.Fatal(err)
	}
	if err := k8s.Delete(ctx, &tls); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the serving Secret to come back", func() bool {
		var again corev1.Secret
		err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "authd-tls"}, &again)
		return err == nil && again.UID != tls.UID
	})

	// Events through the events.k8s.io API.
	var events eventsv1.EventList
	waitFor(t, "the rotation events", func() bool {
		if err := k8s.List(ctx, &events, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, e := range events.Items {
			reasons[e.Reason] = true
		}
		return reasons["KeyCreated"] && reasons["PinSetPublished"] && reasons["CertificateIssued"]
	})

	// kubectl shows the pins, the expiry and Ready.
	out := kubectl(t, "get", "pinnedcertificates", "-n", ns)
	// (Expires is the timestamp: a date column would show "<invalid>" for
	// a time in the future.)
	for _, want := range []string{"CURRENT", "NEXT", "EXPIRES", "READY", st.CurrentPin, st.NextPin, st.NotAfter.UTC().Format(time.RFC3339), "True"} {
		if !strings.Contains(out, want) {
			t.Fatalf("kubectl get does not show %q:\n%s", want, out)
		}
	}

	// The KeySets: a key active at once, in the status and in kubectl.
	keySets := map[string]*v1alpha1.KeySet{}
	for name, alg := range map[string]string{"tokens": keyset.ES256, "sealing": keyset.XWing} {
		var ks v1alpha1.KeySet
		waitFor(t, "KeySet "+name+" to be Ready", func() bool {
			if err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &ks); err != nil {
				t.Fatal(err)
			}
			return meta.IsStatusConditionTrue(ks.Status.Conditions, v1alpha1.ConditionReady)
		})
		st := ks.Status
		if st.ActiveKeyID == "" || len(st.Keys) != 1 || st.Keys[0].Algorithm != alg || st.Keys[0].State != v1alpha1.KeyActive ||
			st.NextRotationTime == nil || !st.NextRotationTime.Time.Equal(st.Keys[0].NotBefore.Add(ksSpec().RotationPeriod.Duration)) {
			t.Fatalf("KeySet %s status: %+v", name, st)
		}
		out := kubectl(t, "get", "keysets", name, "-n", ns)
		for _, want := range []string{"PURPOSE", "ALGORITHM", "ACTIVE", "NEXT ROTATION", "READY", string(ks.Spec.Purpose), alg, st.ActiveKeyID,
			st.NextRotationTime.UTC().Format(time.RFC3339), "True"} {
			if !strings.Contains(out, want) {
				t.Fatalf("kubectl get keysets does not show %q:\n%s", want, out)
			}
		}
		keySets[name] = &ks
	}
	if out := kubectl(t, "get", "ks", "-n", ns); !strings.Contains(out, "tokens") || !strings.Contains(out, "sealing") {
		t.Fatalf("kubectl get ks:\n%s", out)
	}
	waitFor(t, "the key events", func() bool {
		if err := k8s.List(ctx, &events, client.InNamespace(ns)); err != nil {
			t.Fatal(err)
		}
		reasons := map[string]bool{}
		for _, e := range events.Items {
			if e.Regarding.Kind == "KeySet" {
				reasons[e.Reason] = true
			}
		}
		return reasons["KeyCreated"] && reasons["KeyActivated"]
	})

	// No private key anywhere but in the Secrets.
	var secrets corev1.SecretList
	if err := k8s.List(ctx, &secrets, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal([]any{pc.Status, keySets["tokens"].Status, keySets["sealing"].Status})
	eventsJSON, _ := json.Marshal(events)
	texts := map[string]string{"status": string(status), "events": string(eventsJSON), "logs": logs.String()}
	keysJSON := 0
	for _, s := range secrets.Items {
		var material []string
		for _, k := range []string{keyData, corev1.TLSPrivateKeyKey} {
			// The base64 body of the PEM, line by line.
			for _, line := range strings.Split(string(s.Data[k]), "\n") {
				if len(line) >= 40 {
					material = append(material, line)
				}
			}
		}
		if data, ok := s.Data[keyset.FileName]; ok {
			f, err := keyset.Parse(data)
			if err != nil {
				t.Fatalf("Secret %s: %v", s.Name, err)
			}
			for _, k := range f.Keys {
				material = append(material, base64.RawURLEncoding.EncodeToString(k.PrivateKey), base64.StdEncoding.EncodeToString(k.PrivateKey))
			}
			keysJSON++
		}
		for _, m := range material {
			for where, text := range texts {
				if strings.Contains(text, m) {
					t.Fatalf("key material of Secret %s is in the %s", s.Name, where)
				}
			}
		}
	}
	if keysJSON != 2 {
		t.Fatalf("%d Secrets with keys.json, want 2", keysJSON)
	}
	// The KeySet controller decides on what the API server holds, so its
	// own writes never come back as conflicts.
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "Reconciler error") && strings.Contains(line, `"controller": "keyset"`) {
			t.Fatalf("the keyset controller failed: %s", line)
		}
	}
	for _, c := range []string{"pinnedcertificate", "keyset"} {
		if !strings.Contains(logs.String(), c) {
			t.Fatalf("the logs captured nothing of the %s controller:\n%s", c, logs.String())
		}
	}
}

// operatorUser applies the generated ClusterRole and Role
// (config/rbac/role.yaml, the Role into ns) to a new user and returns its
// client configuration: the manager test runs with exactly the operator's
// permissions.
func operatorUser(t *testing.T, ns string) *rest.Config {
	t.Helper()
	ctx := context.Background()
	raw, err := os.ReadFile("../../config/rbac/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	name := "strongroom-operator-" + ns
	subject := []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: name}}
	for _, doc := range strings.Split(string(raw), "\n---\n") {
		var kind struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &kind); err != nil {
			t.Fatal(err)
		}
		switch kind.Kind {
		case "ClusterRole":
			var role rbacv1.ClusterRole
			if err := yaml.UnmarshalStrict([]byte(doc), &role); err != nil {
				t.Fatal(err)
			}
			role.Name = name
			binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name}}
			for _, obj := range []client.Object{&role, binding} {
				if err := k8s.Create(ctx, obj); err != nil {
					t.Fatal(err)
				}
			}
		case "Role":
			var role rbacv1.Role
			if err := yaml.UnmarshalStrict([]byte(doc), &role); err != nil {
				t.Fatal(err)
			}
			role.Namespace = ns
			binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role.Name}, Subjects: subject,
				RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name}}
			for _, obj := range []client.Object{&role, binding} {
				if err := k8s.Create(ctx, obj); err != nil {
					t.Fatal(err)
				}
			}
		default:
			t.Fatalf("unexpected %q in role.yaml", kind.Kind)
		}
	}
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: name}, restConfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg := user.Config()
	cfg.QPS, cfg.Burst = restConfig.QPS, restConfig.Burst
	return cfg
}

// kubectl runs the kubectl envtest's folder holds against the test API
// server.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	user, err := testEnv.ControlPlane.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl"), append([]string{"--kubeconfig", path}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
