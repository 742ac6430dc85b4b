package e2e

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"strongroom.dev/api/keyset"
	"strongroom.dev/api/memlimit"
	"strongroom.dev/api/v1alpha1"
)

// The Helm chart charts/strongroom, checked with the real tools of
// KUBEBUILDER_ASSETS (helm, kubectl, kubeconform, the OpenAPI converter)
// and a real kube-apiserver: lint, the rendered manifests' security and
// wiring, schemas offline, server-side dry-runs, the README's install
// commands, and authd started with the flags the chart renders.

const (
	chartRelease   = "strongroom"
	chartNamespace = "bank"
	chartIssuer    = "https://auth.bank.test"
)

// chartRequired are the values the chart cannot default.
var chartRequired = []string{
	"--set", "issuer=" + chartIssuer,
	"--set", "database.existingSecret=strongroom-db",
	"--set", "peppers.existingSecret=strongroom-peppers",
}

// chartTools are the binaries the chart tests run, from KUBEBUILDER_ASSETS.
type chartTools struct {
	assets, helm, kubectl, kubeconform, converter, schemas string
	root, chart                                            string
	home                                                   string // HELM_*_HOME, isolated from the developer's
}

func needChartTools(t *testing.T) chartTools {
	t.Helper()
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: the chart tests need helm, kubectl, kubeconform and its schemas from " +
			"hack/k8s-test-bins.sh (run through `make test`, or export KUBEBUILDER_ASSETS=$(make -s testbins))")
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	c := chartTools{
		assets: dir, helm: filepath.Join(dir, "helm"), kubectl: filepath.Join(dir, "kubectl"),
		kubeconform: filepath.Join(dir, "kubeconform"), converter: filepath.Join(dir, "openapi2jsonschema"),
		schemas: filepath.Join(dir, "kubeconform-schemas"),
		root:    root, chart: filepath.Join(root, "charts", "strongroom"), home: t.TempDir(),
	}
	for _, p := range []string{c.helm, c.kubectl, c.kubeconform, c.converter, c.schemas} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("KUBEBUILDER_ASSETS=%s is incomplete (%v): rebuild it with hack/k8s-test-bins.sh", dir, err)
		}
	}
	return c
}

// env is the environment of every tool run: the assets first on PATH and
// Helm's state in a temporary home, so the developer's repositories,
// plugins and kubeconfig play no part.
func (c chartTools) env(kubeconfig string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PATH=") || strings.HasPrefix(kv, "KUBECONFIG=") || strings.HasPrefix(kv, "HELM_") {
			continue
		}
		out = append(out, kv)
	}
	if kubeconfig == "" {
		kubeconfig = filepath.Join(c.home, "no-kubeconfig")
	}
	return append(out, "PATH="+c.assets+string(os.PathListSeparator)+os.Getenv("PATH"), "KUBECONFIG="+kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(c.home, "cache"), "HELM_CONFIG_HOME="+filepath.Join(c.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(c.home, "data"))
}

// run runs a tool from the repository root and returns its stdout; a
// failure is returned with stderr in the error.
func (c chartTools) run(kubeconfig string, stdin []byte, bin string, args ...string) (string, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = c.root, c.env(kubeconfig)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, errOut.String(), out.String())
	}
	return out.String(), nil
}

// template renders the chart as release chartRelease in namespace
// chartNamespace with args (values), or fails the test.
func (c chartTools) template(t *testing.T, args ...string) *chartRender {
	t.Helper()
	text, err := c.templateErr(args...)
	if err != nil {
		t.Fatal(err)
	}
	return parseChartRender(t, text)
}

func (c chartTools) templateErr(args ...string) (string, error) {
	return c.run("", nil, c.helm, append([]string{"template", chartRelease, c.chart, "--namespace", chartNamespace}, args...)...)
}

// chartDefaults are the chart's default values plus the required ones, and
// extra; production is values-production.yaml as it is, and extra (a
// --set would override the file).
func chartDefaults(extra ...string) []string { return append(slices.Clone(chartRequired), extra...) }

func (c chartTools) production(extra ...string) []string {
	return append([]string{"-f", filepath.Join(c.chart, "values-production.yaml")}, extra...)
}

// chartDoc is one rendered document.
type chartDoc struct {
	Kind, Name, Namespace string
	Raw                   string         // the YAML as rendered
	JSON                  []byte         // the same as JSON
	Obj                   map[string]any // decoded
}

type chartRender struct {
	Text string
	Docs []chartDoc
}

func parseChartRender(t *testing.T, text string) *chartRender {
	t.Helper()
	r := &chartRender{Text: text}
	reader := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(text)))
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("rendered YAML: %v", err)
		}
		js, err := utilyaml.ToJSON(doc)
		if err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		var obj map[string]any
		if err := json.Unmarshal(js, &obj); err != nil {
			t.Fatalf("rendered document: %v\n%s", err, doc)
		}
		if obj == nil { // only comments
			continue
		}
		meta, _ := obj["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		ns, _ := meta["namespace"].(string)
		kind, _ := obj["kind"].(string)
		r.Docs = append(r.Docs, chartDoc{Kind: kind, Name: name, Namespace: ns, Raw: string(doc), JSON: js, Obj: obj})
	}
	if len(r.Docs) == 0 {
		t.Fatal("the chart rendered no documents")
	}
	return r
}

func (r *chartRender) all(kind string) []chartDoc {
	var out []chartDoc
	for _, d := range r.Docs {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// one returns the only document of kind named name (any name when name is
// empty and there is one of the kind).
func (r *chartRender) one(t *testing.T, kind, name string) chartDoc {
	t.Helper()
	var found []chartDoc
	for _, d := range r.all(kind) {
		if name == "" || d.Name == name {
			found = append(found, d)
		}
	}
	if len(found) != 1 {
		t.Fatalf("want exactly one %s %q, rendered %d", kind, name, len(found))
	}
	return found[0]
}

// without returns the rendered text minus the documents of the given kinds.
func (r *chartRender) without(kinds ...string) string {
	var b strings.Builder
	for _, d := range r.Docs {
		if !slices.Contains(kinds, d.Kind) {
			b.WriteString("---\n" + strings.TrimSpace(d.Raw) + "\n")
		}
	}
	return b.String()
}

// decode decodes a document into a Kubernetes type strictly: a field the
// type does not have is a mistake in the template.
func chartDecode[T any](t *testing.T, m chartDoc) *T {
	t.Helper()
	var v T
	dec := json.NewDecoder(bytes.NewReader(m.JSON))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s %s: %v", m.Kind, m.Name, err)
	}
	return &v
}

// chartWorkload is a pod template and where it comes from.
type chartWorkload struct {
	Owner string
	Spec  corev1.PodSpec
	Meta  metav1.ObjectMeta
}

func (r *chartRender) workloads(t *testing.T) []chartWorkload {
	t.Helper()
	var out []chartWorkload
	for _, m := range r.all("Deployment") {
		d := chartDecode[appsv1.Deployment](t, m)
		out = append(out, chartWorkload{Owner: "Deployment/" + m.Name, Spec: d.Spec.Template.Spec, Meta: d.Spec.Template.ObjectMeta})
	}
	for _, m := range r.all("Job") {
		j := chartDecode[batchv1.Job](t, m)
		out = append(out, chartWorkload{Owner: "Job/" + m.Name, Spec: j.Spec.Template.Spec, Meta: j.Spec.Template.ObjectMeta})
	}
	return out
}

func (r *chartRender) authd(t *testing.T) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	d := chartDecode[appsv1.Deployment](t, r.one(t, "Deployment", chartRelease+"-authd"))
	for i, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "authd" {
			return d, &d.Spec.Template.Spec.Containers[i]
		}
	}
	t.Fatal("the authd Deployment has no container authd")
	return nil, nil
}

func (r *chartRender) operator(t *testing.T) (*appsv1.Deployment, *corev1.Container) {
	t.Helper()
	d := chartDecode[appsv1.Deployment](t, r.one(t, "Deployment", chartRelease+"-operator"))
	if len(d.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("the operator pod has %d containers", len(d.Spec.Template.Spec.Containers))
	}
	return d, &d.Spec.Template.Spec.Containers[0]
}

// flag returns the value of --name=value in args.
func chartFlag(args []string, name string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// chartMountSource returns the volume mounted at dir in container c of spec:
// its kind (secret or configMap) and the object's name. The mount must be
// the whole directory (no subPath).
func chartMountSource(t *testing.T, spec corev1.PodSpec, c *corev1.Container, dir string) (kind, name string) {
	t.Helper()
	for _, vm := range c.VolumeMounts {
		if vm.MountPath != dir {
			continue
		}
		if vm.SubPath != "" || vm.SubPathExpr != "" {
			t.Errorf("%s is a subPath mount: the kubelet never updates it, so rotations would not reach authd", dir)
		}
		if !vm.ReadOnly {
			t.Errorf("%s is mounted read-write", dir)
		}
		for _, v := range spec.Volumes {
			if v.Name != vm.Name {
				continue
			}
			switch {
			case v.Secret != nil:
				return "secret", v.Secret.SecretName
			case v.ConfigMap != nil:
				return "configMap", v.ConfigMap.Name
			default:
				t.Fatalf("volume %s at %s is neither a Secret nor a ConfigMap", v.Name, dir)
			}
		}
		t.Fatalf("mount %s names no volume %s", dir, vm.Name)
	}
	t.Fatalf("nothing is mounted at %s", dir)
	return "", ""
}

// chartProbePort resolves a probe's port, a number or a container port's name.
func chartProbePort(c *corev1.Container, g *corev1.HTTPGetAction) int32 {
	if g.Port.StrVal == "" {
		return g.Port.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == g.Port.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

// operatorRoleRules reads operator/config/rbac/role.yaml, what controller-gen
// generates from the operator's markers: the ClusterRole's rules and the
// leader-election Role's.
func operatorRoleRules(t *testing.T, root string) (cluster, leader []rbacv1.PolicyRule) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "operator", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range parseChartRender(t, string(b)).Docs {
		switch m.Kind {
		case "ClusterRole":
			cluster = chartDecode[rbacv1.ClusterRole](t, m).Rules
		case "Role":
			leader = chartDecode[rbacv1.Role](t, m).Rules
		}
	}
	if cluster == nil || leader == nil {
		t.Fatal("operator/config/rbac/role.yaml lacks the ClusterRole or the Role")
	}
	return cluster, leader
}

// effective security settings of a container, the container's own or else
// the pod's.
func checkChartHardened(t *testing.T, w chartWorkload, c corev1.Container) {
	t.Helper()
	where := w.Owner + " container " + c.Name
	pod := w.Spec.SecurityContext
	if pod == nil {
		pod = &corev1.PodSecurityContext{}
	}
	sc := c.SecurityContext
	if sc == nil {
		t.Errorf("%s: no securityContext", where)
		return
	}
	nonRoot := sc.RunAsNonRoot
	if nonRoot == nil {
		nonRoot = pod.RunAsNonRoot
	}
	if nonRoot == nil || !*nonRoot {
		t.Errorf("%s: runAsNonRoot is not true", where)
	}
	user := sc.RunAsUser
	if user == nil {
		user = pod.RunAsUser
	}
	if user == nil || *user == 0 {
		t.Errorf("%s: runs as user %v, want a fixed non-zero uid", where, user)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("%s: root filesystem is writable", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("%s: allowPrivilegeEscalation is not false", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("%s: privileged", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
		t.Errorf("%s: capabilities %+v, want drop ALL and none added", where, sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: seccomp profile %+v, want RuntimeDefault", where, seccomp)
	}
}

// chartCase is one assertion about a render.
type chartCase struct {
	name  string
	check func(t *testing.T, c chartTools, r *chartRender)
}

// TestChartRender renders the chart with its defaults and with
// values-production.yaml and holds both to what an SRE and a security
// reviewer expect.
func TestChartRender(t *testing.T) {
	c := needChartTools(t)
	renders := map[string]*chartRender{
		"default":    c.template(t, chartDefaults()...),
		"production": c.template(t, c.production()...),
	}
	both := []chartCase{
		{"every container is hardened", func(t *testing.T, _ chartTools, r *chartRender) {
			ws := r.workloads(t)
			if len(ws) < 3 {
				t.Fatalf("%d workloads, want authd, the operator and the migration Job", len(ws))
			}
			for _, w := range ws {
				for _, ctr := range slices.Concat(w.Spec.InitContainers, w.Spec.Containers) {
					checkChartHardened(t, w, ctr)
				}
				if w.Spec.HostNetwork || w.Spec.HostPID || w.Spec.HostIPC {
					t.Errorf("%s shares a host namespace", w.Owner)
				}
				for _, v := range w.Spec.Volumes {
					if v.HostPath != nil {
						t.Errorf("%s mounts a hostPath", w.Owner)
					}
				}
			}
		}},
		{"authd has at least 2 replicas, a PDB and spreads over zones and nodes", func(t *testing.T, _ chartTools, r *chartRender) {
			d, _ := r.authd(t)
			if hpas := r.all("HorizontalPodAutoscaler"); len(hpas) > 0 {
				h := chartDecode[autoscalingv2.HorizontalPodAutoscaler](t, r.one(t, "HorizontalPodAutoscaler", d.Name))
				if h.Spec.ScaleTargetRef.Name != d.Name || h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
					t.Errorf("HPA %+v: want the authd Deployment with minReplicas ≥ 2", h.Spec)
				}
				if d.Spec.Replicas != nil {
					t.Error("with an HPA the Deployment must leave replicas to it (an upgrade would reset them)")
				}
			} else if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
				t.Errorf("authd replicas %v, want ≥ 2", d.Spec.Replicas)
			}
			pdb := chartDecode[policyv1.PodDisruptionBudget](t, r.one(t, "PodDisruptionBudget", d.Name))
			if !reflect.DeepEqual(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
				t.Errorf("PDB selects %v, authd's pods are %v", pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels)
			}
			if pdb.Spec.MaxUnavailable == nil && pdb.Spec.MinAvailable == nil {
				t.Error("the PDB bounds nothing")
			}
			spread := map[string]corev1.UnsatisfiableConstraintAction{}
			for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
				spread[tsc.TopologyKey] = tsc.WhenUnsatisfiable
				if !reflect.DeepEqual(tsc.LabelSelector.MatchLabels, d.Spec.Selector.MatchLabels) {
					t.Errorf("spread over %s selects %v", tsc.TopologyKey, tsc.LabelSelector.MatchLabels)
				}
			}
			if spread["topology.kubernetes.io/zone"] != corev1.ScheduleAnyway || spread["kubernetes.io/hostname"] == "" {
				t.Errorf("topology spread %v: want zone (ScheduleAnyway) and hostname", spread)
			}
			if d.Spec.Strategy.RollingUpdate == nil || d.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue() != 0 {
				t.Error("a rollout may take authd below its capacity (maxUnavailable is not 0)")
			}
		}},
		{"authd's probes are HTTPS on the internal port 8444", func(t *testing.T, _ chartTools, r *chartRender) {
			_, ctr := r.authd(t)
			for name, p := range map[string]*corev1.Probe{"startup": ctr.StartupProbe, "liveness": ctr.LivenessProbe, "readiness": ctr.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", name)
					continue
				}
				want := map[string]string{"startup": "/healthz", "liveness": "/healthz", "readiness": "/readyz"}[name]
				if p.HTTPGet.Scheme != corev1.URISchemeHTTPS || chartProbePort(ctr, p.HTTPGet) != 8444 || p.HTTPGet.Path != want {
					t.Errorf("%s probe %s %v %s, want HTTPS on 8444 %s", name, p.HTTPGet.Scheme, p.HTTPGet.Port, p.HTTPGet.Path, want)
				}
			}
			if a := ctr.Args; len(a) == 0 || a[0] != "serve" {
				t.Errorf("authd args %v, want serve first", a)
			}
			for _, want := range []string{"--listen=:8443", "--admin-listen=:8444"} {
				if !slices.Contains(ctr.Args, want) {
					t.Errorf("authd args lack %s (the ports the probes and Services use)", want)
				}
			}
		}},
		{"authd mounts what the operator writes, whole directories", func(t *testing.T, _ chartTools, r *chartRender) {
			d, ctr := r.authd(t)
			spec := d.Spec.Template.Spec
			pc := chartDecode[v1alpha1.PinnedCertificate](t, r.one(t, "PinnedCertificate", ""))
			for _, f := range []string{"tls-cert-file", "tls-key-file"} {
				file, ok := chartFlag(ctr.Args, f)
				if !ok {
					t.Fatalf("no --%s", f)
				}
				if kind, name := chartMountSource(t, spec, ctr, path.Dir(file)); kind != "secret" || name != pc.Spec.SecretName {
					t.Errorf("--%s is in %s %s, want the PinnedCertificate's Secret %s", f, kind, name, pc.Spec.SecretName)
				}
			}
			dir, _ := chartFlag(ctr.Args, "pinset-dir")
			if kind, name := chartMountSource(t, spec, ctr, dir); kind != "configMap" || name != pc.Spec.PinSet.ConfigMapName {
				t.Errorf("--pinset-dir is %s %s, want the pin-set ConfigMap %s", kind, name, pc.Spec.PinSet.ConfigMapName)
			}
			flags := map[v1alpha1.KeySetPurpose]string{v1alpha1.PurposeTokenSigning: "signing-keys-dir",
				v1alpha1.PurposePayloadSealing: "sealing-keys-dir", v1alpha1.PurposeHMACSecret: "hmac-keys-dir"}
			keySets := r.all("KeySet")
			if len(keySets) != 3 {
				t.Fatalf("%d KeySets, want token-signing, payload-sealing and hmac-secret", len(keySets))
			}
			for _, m := range keySets {
				ks := chartDecode[v1alpha1.KeySet](t, m)
				flag, ok := flags[ks.Spec.Purpose]
				if !ok {
					t.Fatalf("KeySet %s: purpose %q", ks.Name, ks.Spec.Purpose)
				}
				delete(flags, ks.Spec.Purpose)
				dir, ok := chartFlag(ctr.Args, flag)
				if !ok {
					t.Fatalf("no --%s", flag)
				}
				if kind, name := chartMountSource(t, spec, ctr, dir); kind != "secret" || name != ks.Spec.SecretName {
					t.Errorf("--%s is %s %s, want KeySet %s's Secret %s", flag, kind, name, ks.Name, ks.Spec.SecretName)
				}
				if ks.Annotations["helm.sh/resource-policy"] != "keep" {
					t.Errorf("KeySet %s is deleted on uninstall, and its keys with it", ks.Name)
				}
			}
			if pc.Annotations["helm.sh/resource-policy"] != "keep" {
				t.Error("the PinnedCertificate is deleted on uninstall, and the pinned keys with it")
			}
			dir, _ = chartFlag(ctr.Args, "peppers-dir")
			if kind, name := chartMountSource(t, spec, ctr, dir); kind != "secret" || name != "strongroom-peppers" {
				t.Errorf("--peppers-dir is %s %s, want the peppers Secret strongroom-peppers", kind, name)
			}
			file, _ := chartFlag(ctr.Args, "clients-file")
			kind, name := chartMountSource(t, spec, ctr, path.Dir(file))
			cm := chartDecode[corev1.ConfigMap](t, r.one(t, "ConfigMap", name))
			if kind != "configMap" || cm.Data[path.Base(file)] == "" {
				t.Errorf("--clients-file %s is not a key of ConfigMap %s", file, name)
			}
			// No mount anywhere uses subPath.
			for _, w := range r.workloads(t) {
				for _, c := range w.Spec.Containers {
					for _, vm := range c.VolumeMounts {
						if vm.SubPath != "" || vm.SubPathExpr != "" {
							t.Errorf("%s mounts %s with subPath", w.Owner, vm.MountPath)
						}
					}
				}
			}
			if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Error("authd's pods get a ServiceAccount token they never use")
			}
		}},
		{"authd's environment: DATABASE_URL from a Secret, the memory limit in bytes", func(t *testing.T, _ chartTools, r *chartRender) {
			_, ctr := r.authd(t)
			env := map[string]corev1.EnvVar{}
			for _, e := range ctr.Env {
				env[e.Name] = e
			}
			if ref := env["DATABASE_URL"].ValueFrom; ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name == "" {
				t.Errorf("DATABASE_URL %+v, want a secretKeyRef", env["DATABASE_URL"])
			}
			checkChartMemoryLimit(t, "authd", *ctr)
			_, op := r.operator(t)
			checkChartMemoryLimit(t, "the operator", *op)
			if _, ok := chartFlag(ctr.Args, "issuer"); !ok {
				t.Error("no --issuer")
			}
			if u, _ := chartFlag(ctr.Args, "admin-url"); !strings.HasPrefix(u, "https://") {
				t.Errorf("--admin-url %q", u)
			}
		}},
		{"the internal listener is a ClusterIP Service only", func(t *testing.T, _ chartTools, r *chartRender) {
			internal := chartDecode[corev1.Service](t, r.one(t, "Service", chartRelease+"-authd-internal"))
			if internal.Spec.Type != corev1.ServiceTypeClusterIP {
				t.Errorf("internal Service type %q, want ClusterIP", internal.Spec.Type)
			}
			if len(internal.Spec.Ports) != 1 || internal.Spec.Ports[0].Port != 8444 {
				t.Errorf("internal Service ports %+v", internal.Spec.Ports)
			}
			public := chartDecode[corev1.Service](t, r.one(t, "Service", chartRelease+"-authd"))
			for _, p := range public.Spec.Ports {
				if p.TargetPort.IntValue() == 8444 || p.TargetPort.StrVal == "https-internal" {
					t.Errorf("the public Service exposes the internal listener: %+v", p)
				}
			}
			if len(public.Spec.Ports) != 1 || public.Spec.Ports[0].Port != 443 || public.Spec.Ports[0].TargetPort.StrVal != "https" {
				t.Errorf("public Service ports %+v, want 443 → https (8443)", public.Spec.Ports)
			}
		}},
		{"operator: RBAC is exactly the generated ClusterRole, leader election in the release namespace", func(t *testing.T, c chartTools, r *chartRender) {
			wantCluster, wantLeader := operatorRoleRules(t, c.root)
			cr := chartDecode[rbacv1.ClusterRole](t, r.one(t, "ClusterRole", ""))
			if !reflect.DeepEqual(cr.Rules, wantCluster) {
				t.Errorf("ClusterRole rules differ from operator/config/rbac/role.yaml:\n got %+v\nwant %+v", cr.Rules, wantCluster)
			}
			crb := chartDecode[rbacv1.ClusterRoleBinding](t, r.one(t, "ClusterRoleBinding", ""))
			d, op := r.operator(t)
			sa := d.Spec.Template.Spec.ServiceAccountName
			if crb.RoleRef.Name != cr.Name || len(crb.Subjects) != 1 || crb.Subjects[0].Name != sa || crb.Subjects[0].Namespace != chartNamespace {
				t.Errorf("ClusterRoleBinding %+v does not bind %s to ServiceAccount %s/%s", crb, cr.Name, chartNamespace, sa)
			}
			roles := r.all("Role")
			if len(roles) != 1 {
				t.Fatalf("%d Roles, want the leader-election Role", len(roles))
			}
			role := chartDecode[rbacv1.Role](t, roles[0])
			if role.Namespace != chartNamespace || !reflect.DeepEqual(role.Rules, wantLeader) {
				t.Errorf("leader-election Role in %q with %+v, want %q with %+v", role.Namespace, role.Rules, chartNamespace, wantLeader)
			}
			rb := chartDecode[rbacv1.RoleBinding](t, r.one(t, "RoleBinding", ""))
			if rb.Namespace != chartNamespace || rb.RoleRef.Name != role.Name || rb.Subjects[0].Name != sa {
				t.Errorf("leader-election RoleBinding %+v", rb)
			}
			if slices.ContainsFunc(op.Args, func(a string) bool { return strings.HasPrefix(a, "--namespace") }) {
				t.Errorf("operator args %v: --namespace without watchNamespace", op.Args)
			}
			for _, want := range []string{"--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"} {
				if !slices.Contains(op.Args, want) {
					t.Errorf("operator args %v lack %s", op.Args, want)
				}
			}
			if sa == "" || sa == "default" {
				t.Errorf("the operator runs as ServiceAccount %q, want its own", sa)
			}
			for _, p := range []*corev1.Probe{op.LivenessProbe, op.ReadinessProbe} {
				if p == nil || p.HTTPGet == nil || chartProbePort(op, p.HTTPGet) != 8081 || p.HTTPGet.Scheme == corev1.URISchemeHTTPS {
					t.Errorf("operator probe %+v, want plain HTTP on 8081", p)
				}
			}
		}},
		{"migrations are a pre-install/pre-upgrade hook Job that needs no ServiceAccount of the chart", func(t *testing.T, _ chartTools, r *chartRender) {
			m := r.one(t, "Job", "")
			j := chartDecode[batchv1.Job](t, m)
			hooks := strings.Split(j.Annotations["helm.sh/hook"], ",")
			if !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
				t.Errorf("hooks %v", hooks)
			}
			del := strings.Split(j.Annotations["helm.sh/hook-delete-policy"], ",")
			if !slices.Contains(del, "before-hook-creation") || !slices.Contains(del, "hook-succeeded") {
				t.Errorf("hook delete policy %v", del)
			}
			if j.Spec.BackoffLimit == nil || j.Spec.ActiveDeadlineSeconds == nil {
				t.Error("the Job has no backoffLimit or activeDeadlineSeconds")
			}
			spec := j.Spec.Template.Spec
			if spec.ServiceAccountName != "" || spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
				t.Errorf("the Job uses ServiceAccount %q (token %v): on install the chart's do not exist yet", spec.ServiceAccountName, spec.AutomountServiceAccountToken)
			}
			ctr := spec.Containers[0]
			if len(ctr.Args) == 0 || ctr.Args[0] != "migrate" {
				t.Errorf("Job args %v", ctr.Args)
			}
			if !slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool {
				return e.Name == "DATABASE_URL" && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil
			}) {
				t.Error("the Job has no DATABASE_URL from a Secret")
			}
			// Its NetworkPolicy must exist when the Job runs: a hook too,
			// of a lower weight (created first).
			weight := func(a map[string]string) int {
				n, err := strconv.Atoi(a["helm.sh/hook-weight"])
				if err != nil {
					t.Errorf("hook weight %q", a["helm.sh/hook-weight"])
				}
				return n
			}
			for _, np := range r.all("NetworkPolicy") {
				p := chartDecode[networkingv1.NetworkPolicy](t, np)
				if reflect.DeepEqual(p.Spec.PodSelector.MatchLabels, j.Spec.Template.Labels) {
					if p.Annotations["helm.sh/hook"] != j.Annotations["helm.sh/hook"] || weight(p.Annotations) >= weight(j.Annotations) {
						t.Errorf("the Job's NetworkPolicy is not a hook created before it: %v", p.Annotations)
					}
					return
				}
			}
			t.Error("no NetworkPolicy selects the migration Job")
		}},
		{"NetworkPolicies: internal port not open to all, egress limited", func(t *testing.T, _ chartTools, r *chartRender) {
			d, _ := r.authd(t)
			p := chartDecode[networkingv1.NetworkPolicy](t, r.one(t, "NetworkPolicy", d.Name))
			if !reflect.DeepEqual(p.Spec.PodSelector.MatchLabels, d.Spec.Selector.MatchLabels) || len(p.Spec.PolicyTypes) != 2 {
				t.Fatalf("authd NetworkPolicy selects %v, types %v", p.Spec.PodSelector.MatchLabels, p.Spec.PolicyTypes)
			}
			sawPublic, sawInternal := false, false
			for _, rule := range p.Spec.Ingress {
				for _, port := range rule.Ports {
					switch port.Port.IntValue() {
					case 8443:
						sawPublic = true
					case 8444:
						sawInternal = true
						if len(rule.From) == 0 {
							t.Error("the internal port is open to every peer")
						}
						for _, peer := range rule.From {
							if peer.IPBlock != nil || peer.NamespaceSelector != nil && len(peer.NamespaceSelector.MatchLabels) == 0 {
								t.Errorf("the internal port admits %+v", peer)
							}
						}
					default:
						t.Errorf("authd admits port %v", port.Port)
					}
				}
			}
			if !sawPublic || !sawInternal {
				t.Errorf("ingress rules %+v: want the public and the internal port", p.Spec.Ingress)
			}
			egress := chartEgressPorts(p)
			if !slices.Contains(egress, 53) || !slices.Contains(egress, 5432) {
				t.Errorf("authd egress ports %v, want DNS and PostgreSQL", egress)
			}
			op, _ := r.operator(t)
			opp := chartDecode[networkingv1.NetworkPolicy](t, r.one(t, "NetworkPolicy", op.Name))
			opEgress := chartEgressPorts(opp)
			if !slices.Contains(opEgress, 443) || !slices.Contains(opEgress, 6443) {
				t.Errorf("operator egress ports %v, want the API server's 443 and 6443", opEgress)
			}
		}},
		{"the clients file is the values' clients, and a change rolls authd", func(t *testing.T, c chartTools, r *chartRender) {
			d, ctr := r.authd(t)
			file, _ := chartFlag(ctr.Args, "clients-file")
			_, name := chartMountSource(t, d.Spec.Template.Spec, ctr, path.Dir(file))
			cm := chartDecode[corev1.ConfigMap](t, r.one(t, "ConfigMap", name))
			js, err := utilyaml.ToJSON([]byte(cm.Data[path.Base(file)]))
			if err != nil {
				t.Fatal(err)
			}
			var clients struct {
				Clients []map[string]any `json:"clients"`
			}
			if err := json.Unmarshal(js, &clients); err != nil {
				t.Fatal(err)
			}
			for _, cl := range clients.Clients {
				for k := range cl {
					if strings.Contains(k, "secret") && k != "client_secret_sha256" && k != "rotated_client_secret_sha256" {
						t.Errorf("client %v has %s: secrets are only hashes", cl["client_id"], k)
					}
				}
			}
			if d.Spec.Template.Annotations["checksum/clients"] == "" {
				t.Fatal("no checksum/clients annotation: a new clients file would not roll the pods")
			}
		}},
	}
	for _, name := range []string{"default", "production"} {
		r := renders[name]
		t.Run(name, func(t *testing.T) {
			for _, tc := range both {
				t.Run(tc.name, func(t *testing.T) { tc.check(t, c, r) })
			}
		})
	}

	// What differs between the two.
	def, prod := renders["default"], renders["production"]
	t.Run("default: no Ingress, no monitoring, self-signed, image from appVersion", func(t *testing.T) {
		for _, kind := range []string{"Ingress", "ServiceMonitor", "PrometheusRule"} {
			if n := len(def.all(kind)); n != 0 {
				t.Errorf("%d %s by default", n, kind)
			}
		}
		pc := chartDecode[v1alpha1.PinnedCertificate](t, def.one(t, "PinnedCertificate", ""))
		if pc.Spec.Issuer.SelfSigned == nil || pc.Spec.Issuer.CA != nil {
			t.Errorf("issuer %+v, want selfSigned", pc.Spec.Issuer)
		}
		if pc.Spec.DNSNames[0] != "auth.bank.test" {
			t.Errorf("dnsNames %v: the issuer's host first", pc.Spec.DNSNames)
		}
		_, ctr := def.authd(t)
		if ctr.Image != "strongroom/authd:0.1.0" {
			t.Errorf("image %q, want strongroom/authd:<appVersion>", ctr.Image)
		}
		if slices.ContainsFunc(ctr.Env, func(e corev1.EnvVar) bool { return strings.HasPrefix(e.Name, "OTEL_") }) {
			t.Error("OTEL_* set without an endpoint")
		}
		_, op := def.operator(t)
		if op.Image != "strongroom/operator:0.1.0" {
			t.Errorf("operator image %q", op.Image)
		}
	})
	t.Run("production: Ingress passthrough to the public Service only", func(t *testing.T) {
		ing := chartDecode[networkingv1.Ingress](t, prod.one(t, "Ingress", ""))
		if ing.Annotations["nginx.ingress.kubernetes.io/ssl-passthrough"] != "true" {
			t.Error("no ssl-passthrough annotation: the controller would terminate TLS and apps' pins would fail")
		}
		if ing.Annotations["nginx.ingress.kubernetes.io/backend-protocol"] != "HTTPS" {
			t.Error("backend-protocol is not HTTPS")
		}
		if len(ing.Spec.TLS) != 0 {
			t.Errorf("the Ingress has a tls: section %+v: it would terminate TLS", ing.Spec.TLS)
		}
		n := 0
		for _, rule := range ing.Spec.Rules {
			if rule.Host != "auth.bank.example" {
				t.Errorf("Ingress host %q, want the issuer's", rule.Host)
			}
			for _, p := range rule.HTTP.Paths {
				n++
				if p.Backend.Service == nil || p.Backend.Service.Name != chartRelease+"-authd" || p.Backend.Service.Port.Name != "https" {
					t.Errorf("Ingress backend %+v, want the public Service's https port only", p.Backend)
				}
			}
		}
		if n == 0 {
			t.Error("the Ingress routes nowhere")
		}
	})
	t.Run("production: CA issuer, database TLS, OTLP, resources", func(t *testing.T) {
		pc := chartDecode[v1alpha1.PinnedCertificate](t, prod.one(t, "PinnedCertificate", ""))
		if pc.Spec.Issuer.CA == nil || pc.Spec.Issuer.CA.SecretName != "bank-issuing-ca" {
			t.Errorf("issuer %+v, want the bank's CA", pc.Spec.Issuer)
		}
		internalName := chartRelease + "-authd-internal." + chartNamespace + ".svc"
		if !slices.Contains(pc.Spec.DNSNames, internalName) {
			t.Errorf("dnsNames %v lack %s (adminURL, ServiceMonitor serverName)", pc.Spec.DNSNames, internalName)
		}
		_, ctr := prod.authd(t)
		env := map[string]string{}
		for _, e := range ctr.Env {
			env[e.Name] = e.Value
		}
		if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != "http://otel-collector.observability.svc:4318" || env["OTEL_SERVICE_NAME"] == "" {
			t.Errorf("OTLP not configured: %v", env)
		}
		// The collector's port is open in both NetworkPolicies.
		for _, name := range []string{chartRelease + "-authd", chartRelease + "-operator"} {
			p := chartDecode[networkingv1.NetworkPolicy](t, prod.one(t, "NetworkPolicy", name))
			if !slices.ContainsFunc(p.Spec.Egress, func(r networkingv1.NetworkPolicyEgressRule) bool {
				return slices.ContainsFunc(r.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port.IntValue() == 4318 })
			}) {
				t.Errorf("NetworkPolicy %s: no egress to the OTLP collector's port 4318", name)
			}
		}
		if env["PGSSLMODE"] != "verify-full" || env["PGSSLROOTCERT"] == "" {
			t.Errorf("PostgreSQL's certificate is not verified: %v", env)
		}
		h := chartDecode[autoscalingv2.HorizontalPodAutoscaler](t, prod.one(t, "HorizontalPodAutoscaler", ""))
		if *h.Spec.MinReplicas != 3 {
			t.Errorf("HPA minReplicas %d, want 3", *h.Spec.MinReplicas)
		}
		if ctr.Resources.Requests.Cpu().IsZero() {
			t.Error("no CPU request (the HPA computes utilisation from it)")
		}
	})
	t.Run("production: ServiceMonitors and PrometheusRule", func(t *testing.T) {
		internal := prod.one(t, "Service", chartRelease+"-authd-internal")
		public := prod.one(t, "Service", chartRelease+"-authd")
		for _, m := range prod.all("ServiceMonitor") {
			spec := m.Obj["spec"].(map[string]any)
			sel := spec["selector"].(map[string]any)["matchLabels"].(map[string]any)
			eps := spec["endpoints"].([]any)
			switch m.Name {
			case chartRelease + "-operator":
				for _, ep := range eps {
					if ep.(map[string]any)["honorLabels"] != true {
						t.Error("the operator's ServiceMonitor lacks honorLabels: its gauges' namespace label would be overwritten")
					}
				}
			case chartRelease + "-authd":
				if !chartLabelsMatch(sel, internal) || chartLabelsMatch(sel, public) {
					t.Errorf("authd's ServiceMonitor selects %v: want the internal Service only", sel)
				}
				for _, ep := range eps {
					e := ep.(map[string]any)
					if e["scheme"] != "https" || e["path"] != "/metrics" || e["port"] != "https-internal" {
						t.Errorf("authd endpoint %v", e)
					}
					tls, _ := e["tlsConfig"].(map[string]any)
					if tls == nil || tls["insecureSkipVerify"] == true {
						t.Errorf("production scrapes authd without verifying its certificate: %v", tls)
					}
				}
			default:
				t.Errorf("unexpected ServiceMonitor %s", m.Name)
			}
		}
		if len(prod.all("ServiceMonitor")) != 2 {
			t.Errorf("%d ServiceMonitors, want authd and the operator", len(prod.all("ServiceMonitor")))
		}
		rule := prod.one(t, "PrometheusRule", "")
		file, err := os.ReadFile(filepath.Join(c.chart, "files", "prometheus-rules.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		js, err := utilyaml.ToJSON(file)
		if err != nil {
			t.Fatal(err)
		}
		var want any
		if err := json.Unmarshal(js, &want); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(rule.Obj["spec"], want) {
			t.Error("the PrometheusRule's spec differs from files/prometheus-rules.yaml")
		}
		dash := chartDecode[corev1.ConfigMap](t, prod.one(t, "ConfigMap", chartRelease+"-dashboard"))
		board, err := os.ReadFile(filepath.Join(c.chart, "files", "grafana-dashboard.json"))
		if err != nil {
			t.Fatal(err)
		}
		if dash.Labels["grafana_dashboard"] != "1" || dash.Data["strongroom-overview.json"] != string(board) {
			t.Error("the dashboard ConfigMap is not files/grafana-dashboard.json with label grafana_dashboard=1")
		}
	})
	t.Run("a digest wins over the tag", func(t *testing.T) {
		digest := "sha256:" + strings.Repeat("ab", 32)
		_, ctr := c.template(t, chartDefaults("--set", "image.digest="+digest, "--set", "image.tag=9.9.9")...).authd(t)
		if ctr.Image != "strongroom/authd@"+digest {
			t.Errorf("image %q", ctr.Image)
		}
	})
	t.Run("a new clients file rolls authd", func(t *testing.T) {
		d1, _ := def.authd(t)
		d2, _ := c.template(t, chartDefaults("--set-json", `clients=[{"client_id":"mobile-app","token_endpoint_auth_method":"none","grant_types":["refresh_token"],"resources":["https://api.bank.test"]}]`)...).authd(t)
		if d1.Spec.Template.Annotations["checksum/clients"] == d2.Spec.Template.Annotations["checksum/clients"] {
			t.Error("the pod template does not change with the clients")
		}
	})
	t.Run("PROXY protocol senders become one flag", func(t *testing.T) {
		const flag = "--proxy-protocol-from="
		_, plain := def.authd(t)
		for _, a := range plain.Args {
			if strings.HasPrefix(a, flag) {
				t.Fatalf("default render has %s", a)
			}
		}
		_, ctr := c.template(t, chartDefaults("--set-json", `authd.config.proxyProtocolFrom=["10.0.0.0/8","2001:db8::/32"]`)...).authd(t)
		if !slices.Contains(ctr.Args, flag+"10.0.0.0/8,2001:db8::/32") {
			t.Errorf("args %q", ctr.Args)
		}
	})
	t.Run("autoscaling off: replicas in the Deployment", func(t *testing.T) {
		r := c.template(t, chartDefaults("--set", "authd.autoscaling.enabled=false")...)
		if n := len(r.all("HorizontalPodAutoscaler")); n != 0 {
			t.Fatalf("%d HPAs", n)
		}
		if d, _ := r.authd(t); d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
			t.Errorf("replicas %v, want 2", d.Spec.Replicas)
		}
	})
}

// chartEgressPorts lists the ports a NetworkPolicy lets its pods reach.
func chartEgressPorts(p *networkingv1.NetworkPolicy) []int {
	var ports []int
	for _, rule := range p.Spec.Egress {
		for _, port := range rule.Ports {
			ports = append(ports, port.Port.IntValue())
		}
	}
	return ports
}

// checkChartMemoryLimit: the container has a memory limit and passes it
// in bytes (no divisor) as STRONGROOM_MEMORY_LIMIT, which the binary turns
// into 90 % for the Go runtime (api/memlimit); GOMEMLIMIT, which would
// win over it, is not set.
func checkChartMemoryLimit(t *testing.T, name string, ctr corev1.Container) {
	t.Helper()
	env := map[string]corev1.EnvVar{}
	for _, e := range ctr.Env {
		env[e.Name] = e
	}
	ref := env[memlimit.Env].ValueFrom
	if ref == nil || ref.ResourceFieldRef == nil || ref.ResourceFieldRef.Resource != "limits.memory" ||
		ref.ResourceFieldRef.ContainerName != ctr.Name || (!ref.ResourceFieldRef.Divisor.IsZero() && ref.ResourceFieldRef.Divisor.Value() != 1) {
		t.Errorf("%s: %s %+v, want the memory limit in bytes (downward API)", name, memlimit.Env, env[memlimit.Env])
	}
	if _, ok := env["GOMEMLIMIT"]; ok {
		t.Errorf("%s: GOMEMLIMIT is set: it would override the 90 %% of %s", name, memlimit.Env)
	}
	if _, ok := ctr.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Errorf("%s has no memory limit (the runtime's would be the node's memory)", name)
	}
}

// chartLabelsMatch reports whether a selector's labels are all on the object.
func chartLabelsMatch(sel map[string]any, m chartDoc) bool {
	labels, _ := m.Obj["metadata"].(map[string]any)["labels"].(map[string]any)
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestChartWatchNamespace: with operator.watchNamespace the operator's
// rules are a Role in that namespace, and its Lease lives there too.
func TestChartWatchNamespace(t *testing.T) {
	c := needChartTools(t)
	const watched = "bank-apps"
	r := c.template(t, chartDefaults("--set", "operator.watchNamespace="+watched)...)
	for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
		if n := len(r.all(kind)); n != 0 {
			t.Errorf("%d %s while watching one namespace", n, kind)
		}
	}
	wantRules, wantLeader := operatorRoleRules(t, c.root)
	_, op := r.operator(t)
	if !slices.Contains(op.Args, "--namespace="+watched) {
		t.Errorf("operator args %v lack --namespace=%s", op.Args, watched)
	}
	var controllers, leader *rbacv1.Role
	for _, m := range r.all("Role") {
		role := chartDecode[rbacv1.Role](t, m)
		switch {
		case reflect.DeepEqual(role.Rules, wantRules):
			controllers = role
		case reflect.DeepEqual(role.Rules, wantLeader):
			leader = role
		default:
			t.Errorf("Role %s has rules %+v", role.Name, role.Rules)
		}
	}
	if controllers == nil || controllers.Namespace != watched {
		t.Fatalf("no Role with the generated rules in %s: %+v", watched, controllers)
	}
	// controller-runtime puts the Lease in --namespace when it is set.
	if leader == nil || leader.Namespace != watched {
		t.Fatalf("the leader-election Role is not in %s: %+v", watched, leader)
	}
	bound := map[string]bool{}
	for _, m := range r.all("RoleBinding") {
		rb := chartDecode[rbacv1.RoleBinding](t, m)
		if rb.Namespace != watched || rb.Subjects[0].Namespace != chartNamespace {
			t.Errorf("RoleBinding %s in %s binds %+v", rb.Name, rb.Namespace, rb.Subjects)
		}
		bound[rb.RoleRef.Name] = true
	}
	if !bound[controllers.Name] || !bound[leader.Name] {
		t.Errorf("RoleBindings bind %v, want %s and %s", bound, controllers.Name, leader.Name)
	}
}

// TestChartLint runs helm lint --strict, and holds values.schema.json to
// refusing what must not be deployed.
func TestChartLint(t *testing.T) {
	c := needChartTools(t)
	lint := func(args ...string) (string, error) {
		return c.run("", nil, c.helm, append([]string{"lint", "--strict", c.chart, "--namespace", chartNamespace}, args...)...)
	}
	for name, args := range map[string][]string{"default": chartDefaults(), "production": c.production()} {
		if out, err := lint(args...); err != nil {
			t.Errorf("helm lint --strict (%s): %v", name, err)
		} else if !strings.Contains(out, "0 chart(s) failed") {
			t.Errorf("helm lint (%s):\n%s", name, out)
		}
	}

	const schemaErr = "values don't meet the specifications of the schema"
	client := func(fields string) string {
		return `clients=[{"client_id":"x",` + fields + `"resources":["https://api.bank.test"]}]`
	}
	for _, tc := range []struct {
		name string
		args []string
		want []string // all in the error
	}{
		{"one replica", []string{"--set", "authd.replicas=1"}, []string{schemaErr, "replicas"}},
		{"HPA down to one", []string{"--set", "authd.autoscaling.minReplicas=1"}, []string{schemaErr, "minReplicas"}},
		{"http issuer", []string{"--set", "issuer=http://auth.bank.test"}, []string{schemaErr, "issuer"}},
		{"issuer with a trailing slash", []string{"--set", "issuer=https://auth.bank.test/"}, []string{schemaErr, "issuer"}},
		{"issuer with a query", []string{"--set", "issuer=https://auth.bank.test?x=1"}, []string{schemaErr, "issuer"}},
		{"unknown top-level key", []string{"--set", "replicas=3"}, []string{schemaErr, "replicas"}},
		{"typo in a nested key", []string{"--set", "authd.config.acessTokenLifetime=10m"}, []string{schemaErr, "acessTokenLifetime"}},
		{"not a duration", []string{"--set", "keySets.tokenSigning.rotationPeriod=30d"}, []string{schemaErr, "rotationPeriod"}},
		{"a client secret in clear", []string{"--set-json", client(`"token_endpoint_auth_method":"client_secret_basic","client_secret":"hunter2","grant_types":["client_credentials"],`)}, []string{schemaErr, "client_secret"}},
		{"a public client with client_credentials", []string{"--set-json", client(`"token_endpoint_auth_method":"none","grant_types":["client_credentials"],`)}, []string{schemaErr, "grant_types"}},
		{"a confidential client without its hash", []string{"--set-json", client(`"token_endpoint_auth_method":"client_secret_basic","grant_types":["client_credentials"],`)}, []string{schemaErr, "client_secret_sha256"}},
		{"a wrong algorithm for the purpose", []string{"--set", "keySets.tokenSigning.algorithm=HS256"}, []string{schemaErr, "algorithm"}},
		{"PROXY protocol from everyone", []string{"--set-json", `authd.config.proxyProtocolFrom=["10.0.0.0/8","0.0.0.0/0"]`}, []string{schemaErr, "proxyProtocolFrom"}},
		{"PROXY protocol from a host name", []string{"--set-json", `authd.config.proxyProtocolFrom=["lb.internal"]`}, []string{schemaErr, "proxyProtocolFrom"}},
		{"no issuer", []string{"--set", "issuer="}, []string{"issuer is required"}},
		{"no database Secret", []string{"--set", "database.existingSecret="}, []string{"database.existingSecret is required"}},
		{"no peppers Secret", []string{"--set", "peppers.existingSecret="}, []string{"peppers.existingSecret is required"}},
		{"CA verification of a self-signed certificate", []string{"--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.serviceMonitor.authd.verifyWithServingCA=true"}, []string{"verifyWithServingCA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.templateErr(chartDefaults(tc.args...)...)
			if err == nil {
				t.Fatalf("helm template accepted %v:\n%.500s", tc.args, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	// lint reads the same schema: one refusal through it too.
	if _, err := lint(chartDefaults("--set", "authd.replicas=1")...); err == nil || !strings.Contains(err.Error(), "replicas") {
		t.Errorf("helm lint accepted authd.replicas=1: %v", err)
	}
}

// TestChartCRDsAndFiles: the chart's crds/ are the generated CRDs byte
// for byte (Helm installs crds/ first; a stale copy would install an old
// schema).
func TestChartCRDsAndFiles(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	list := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	api, chart := filepath.Join(root, "api", "crds"), filepath.Join(root, "charts", "strongroom", "crds")
	want, got := list(api), list(chart)
	if !slices.Equal(want, got) {
		t.Fatalf("charts/strongroom/crds holds %v, api/crds %v", got, want)
	}
	for _, name := range want {
		a, _ := os.ReadFile(filepath.Join(api, name))
		b, _ := os.ReadFile(filepath.Join(chart, name))
		if !bytes.Equal(a, b) {
			t.Errorf("charts/strongroom/crds/%s differs from api/crds/%s: cp api/crds/*.yaml charts/strongroom/crds/", name, name)
		}
	}
}

// TestChartAgainstAPIServer checks the rendered manifests against a real
// kube-apiserver with the CRDs installed (one envtest for all): kubeconform
// offline with schemas from the server's OpenAPI, server-side dry-runs
// (which must also refuse broken manifests), and the README's install
// commands.
func TestChartAgainstAPIServer(t *testing.T) {
	c := needChartTools(t)
	kc := startKube(t)
	kubeconfig := mastersKubeconfig(t, kc.env, "admin")
	def, prod := c.template(t, chartDefaults("--include-crds")...), c.template(t, c.production("--include-crds")...)
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// A KeySet with a field its CRD does not have.
	const typo = `apiVersion: strongroom.dev/v1alpha1
kind: KeySet
metadata: {name: typo, namespace: bank}
spec: {purpose: token-signing, secretName: typo-keys, rotationPerod: 720h}
`

	t.Run("kubeconform", func(t *testing.T) {
		// Schemas of the strongroom.dev kinds, from the OpenAPI document
		// the API server publishes for the installed CRDs (a moment after
		// they are established).
		var swagger string
		waitUntil(t, 30*time.Second, "the CRDs in /openapi/v2", func() bool {
			out, err := c.run(kubeconfig, nil, c.kubectl, "get", "--raw", "/openapi/v2")
			swagger = out
			return err == nil && strings.Contains(out, `"dev.strongroom.v1alpha1.KeySet"`) &&
				strings.Contains(out, `"dev.strongroom.v1alpha1.PinnedCertificate"`)
		})
		crdSchemas := filepath.Join(dir, "crd-schemas")
		if _, err := c.run("", nil, c.converter, write("swagger.json", swagger), crdSchemas); err != nil {
			t.Fatal(err)
		}
		kubeconform := func(file string) (string, error) {
			// ServiceMonitor and PrometheusRule have no schema here (no
			// Prometheus Operator CRDs): the charts module decodes them
			// strictly into the Prometheus Operator's Go types instead.
			return c.run("", nil, c.kubeconform, "-strict", "-summary",
				"-schema-location", filepath.Join(c.schemas, "{{.ResourceKind}}{{.KindSuffix}}.json"),
				"-schema-location", filepath.Join(crdSchemas, "{{.ResourceKind}}{{.KindSuffix}}.json"),
				"-skip", "ServiceMonitor,PrometheusRule", file)
		}
		for name, r := range map[string]*chartRender{"default": def, "production": prod} {
			out, err := kubeconform(write(name+".yaml", r.Text))
			if err != nil {
				t.Errorf("kubeconform %s: %v", name, err)
				continue
			}
			// Every kind but the skipped ones had a schema and passed.
			skipped := len(r.all("ServiceMonitor")) + len(r.all("PrometheusRule"))
			if want := fmt.Sprintf("Valid: %d, Invalid: 0, Errors: 0, Skipped: %d", len(r.Docs)-skipped, skipped); !strings.Contains(out, want) {
				t.Errorf("kubeconform %s: want %q:\n%s", name, want, out)
			}
		}
		if out, err := kubeconform(write("typo.yaml", typo)); err == nil || !strings.Contains(err.Error(), "rotationPerod") {
			t.Errorf("kubeconform accepted a KeySet with an unknown field: %v\n%s", err, out)
		}
	})

	dryRun := func(text string) (string, error) {
		return c.run(kubeconfig, []byte(text), c.kubectl, "apply", "--dry-run=server", "-f", "-")
	}
	t.Run("server dry-run: default", func(t *testing.T) {
		if out, err := dryRun(def.Text); err != nil {
			t.Fatal(err)
		} else if n := strings.Count(out, "(server dry run)"); n != len(def.Docs) {
			t.Errorf("%d of %d objects accepted:\n%s", n, len(def.Docs), out)
		}
	})
	t.Run("server dry-run: production", func(t *testing.T) {
		// The API server here has no Prometheus Operator CRDs, so the
		// ServiceMonitors and the PrometheusRule are left out (the charts
		// module checks them against the Prometheus Operator's types);
		// everything else is the production render as it is.
		text := prod.without("ServiceMonitor", "PrometheusRule")
		out, err := dryRun(text)
		if err != nil {
			t.Fatal(err)
		}
		want := len(prod.Docs) - len(prod.all("ServiceMonitor")) - len(prod.all("PrometheusRule"))
		if n := strings.Count(out, "(server dry run)"); n != want {
			t.Errorf("%d of %d objects accepted:\n%s", n, want, out)
		}
	})
	t.Run("server dry-run: one watched namespace", func(t *testing.T) {
		if _, err := c.run(kubeconfig, nil, c.kubectl, "create", "namespace", "bank-apps"); err != nil {
			t.Fatal(err)
		}
		if _, err := dryRun(c.template(t, chartDefaults("--set", "operator.watchNamespace=bank-apps")...).Text); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("server dry-run refuses broken manifests", func(t *testing.T) {
		for _, tc := range []struct {
			name, text, want string
		}{
			{"unknown field", def.Text + "---\n" + typo, `unknown field "spec.rotationPerod"`},
			// Valid for the values schema, refused by the CRD's CEL rules.
			{"KeySet publishAhead not shorter than rotationPeriod",
				c.template(t, chartDefaults("--set", "keySets.tokenSigning.publishAhead=720h")...).Text, "publishAhead must be shorter than rotationPeriod"},
			{"PinnedCertificate publishing too late",
				c.template(t, chartDefaults("--set", "pinnedCertificate.publishAhead=1500h")...).Text, "publishAhead must be shorter than validity - renewBefore"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := dryRun(tc.text)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("want a refusal with %q, got %v", tc.want, err)
				}
			})
		}
	})
	t.Run("README: Deploy on Kubernetes", func(t *testing.T) {
		chartREADME(t, c, kc, kubeconfig)
	})
}

// chartREADME runs the commands of README.md's "Deploy on Kubernetes"
// block as written, against the API server: the namespace and the Secrets
// are created for real, `helm install` gets --dry-run=server (no kubelet
// would ever run the pods), and the verification commands after it must
// name what the install would create.
func chartREADME(t *testing.T, c chartTools, kc *kube, kubeconfig string) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatal("openssl is needed (Debian's openssl package): the README's commands use it")
	}
	readme, err := os.ReadFile(filepath.Join(c.root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- deploy-on-kubernetes:begin -->\n```sh\n(.*?)```\n<!-- deploy-on-kubernetes:end -->").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no ```sh block between <!-- deploy-on-kubernetes:begin --> and <!-- deploy-on-kubernetes:end -->")
	}
	lines := strings.Split(string(m[1]), "\n")
	// The helm install command, with its continuation lines.
	start := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "helm install ") })
	if start < 0 {
		t.Fatal("the block has no helm install")
	}
	end := start
	for strings.HasSuffix(lines[end], "\\") {
		end++
	}
	install := strings.Join(lines[start:end+1], "\n")
	setup := strings.Join(lines[:start], "\n")
	verify := strings.Join(lines[end+1:], "\n")
	ns := regexp.MustCompile(`helm install (\S+) charts/strongroom -n (\S+)`).FindStringSubmatch(install)
	if ns == nil {
		t.Fatalf("helm install %q: want `helm install <release> charts/strongroom -n <namespace>`", install)
	}
	release, namespace := ns[1], ns[2]

	// sh, not bash: the block is marked sh. The Secrets' contents are
	// checked below, which a failure inside a pipe would show.
	script := setup + "\n" + install + " --dry-run=server\n"
	cmd := exec.Command("sh", "-eu", "-c", script)
	cmd.Dir, cmd.Env = c.root, c.env(kubeconfig)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README commands: %v\n%s", err, out)
	}
	var secrets corev1.SecretList
	get := func(name string) *corev1.Secret {
		var s corev1.Secret
		if err := kc.client.Get(t.Context(), types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
			t.Fatalf("Secret %s/%s: %v", namespace, name, err)
		}
		secrets.Items = append(secrets.Items, s)
		return &s
	}
	if u := string(get("strongroom-db").Data["url"]); !strings.HasPrefix(u, "postgres://") {
		t.Errorf("database Secret url %q", u)
	}
	peppers := get("strongroom-peppers")
	if len(peppers.Data) != 1 {
		t.Errorf("peppers Secret has %d keys", len(peppers.Data))
	}
	for id, p := range peppers.Data {
		if len(p) < 32 {
			t.Errorf("pepper %s has %d bytes, authd needs ≥ 32", id, len(p))
		}
	}
	for _, name := range []string{"pin-manifest-a", "pin-manifest-b"} {
		block, _ := pem.Decode(get(name).Data["key.pem"])
		if block == nil || block.Type != "PRIVATE KEY" {
			t.Fatalf("%s: key.pem is not a PKCS#8 PEM block", name)
		}
		key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if ec, ok := key.(*ecdsa.PrivateKey); err != nil || !ok || ec.Curve != elliptic.P256() {
			t.Errorf("%s: key.pem is not an ECDSA P-256 key (%T, %v): the operator signs pin sets with ES256", name, key, err)
		}
	}

	// helm printed what it would install, and the NOTES.
	manifestText, notes, _ := strings.Cut(string(out), "NOTES:")
	_, manifestText, _ = strings.Cut(manifestText, "MANIFEST:")
	r := parseChartRender(t, manifestText)
	d := r.one(t, "Deployment", release+"-authd")
	if d.Namespace != namespace {
		t.Errorf("authd would be installed in %q", d.Namespace)
	}
	// The names the chart's defaults give must be the Secrets just made.
	dep := chartDecode[appsv1.Deployment](t, d)
	used := map[string]bool{}
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Secret != nil {
			used[v.Secret.SecretName] = true
		}
	}
	for _, e := range dep.Spec.Template.Spec.Containers[0].Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			used[e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key] = true
		}
	}
	if !used["strongroom-peppers"] || !used["strongroom-db/url"] {
		t.Errorf("authd does not use the README's Secrets: %v", used)
	}
	pc := chartDecode[v1alpha1.PinnedCertificate](t, r.one(t, "PinnedCertificate", ""))
	for _, k := range pc.Spec.PinSet.ManifestKeys {
		if !slices.ContainsFunc(secrets.Items, func(s corev1.Secret) bool { return s.Name == k.SecretName }) {
			t.Errorf("the PinnedCertificate names manifest key Secret %s, which the README does not create", k.SecretName)
		}
	}
	for _, want := range []string{
		"kubectl -n " + namespace + " get pincert,keysets",
		"openssl dgst -sha256 -binary | base64",
		"del(.private_key)",
		"strongroom.dev/rotate-now=backup",
		"strongroom.dev/rotate-now=revoke",
		"pinset\\.json",
		"/readyz",
	} {
		if !strings.Contains(notes, want) {
			t.Errorf("NOTES lack %q:\n%s", want, notes)
		}
	}

	// The verification commands: read-only `kubectl get` runs for real
	// (the resource types must exist); the objects others wait for must
	// be ones the install creates.
	if out, err := exec.Command("sh", "-n", "-c", verify).CombinedOutput(); err != nil {
		t.Fatalf("the verification commands do not parse: %v\n%s", err, out)
	}
	for _, line := range strings.Split(verify, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if f[0] != "kubectl" {
			t.Errorf("verification command %q: only kubectl is expected", line)
			continue
		}
		if slices.Contains(f, "get") {
			if _, err := c.run(kubeconfig, nil, c.kubectl, f[1:]...); err != nil {
				t.Errorf("%s: %v", line, err)
			}
		}
		for _, word := range f {
			if kind, name, ok := strings.Cut(word, "/"); ok && kind == "deployment" {
				if len(r.all("Deployment")) == 0 || !slices.ContainsFunc(r.all("Deployment"), func(m chartDoc) bool { return m.Name == name }) {
					t.Errorf("%q waits for deployment %s, which the chart does not create", line, name)
				}
			}
		}
	}
}

// TestChartConfigRunsAuthd starts the authd binary exactly as the chart
// configures it (args, clients file, mount paths remapped to directories
// holding what the kubelet would mount), after the migration Job's
// command, on a fresh PostgreSQL database: authd must accept the flags,
// become ready and serve discovery with the chart's issuer and admin URL.
func TestChartConfigRunsAuthd(t *testing.T) {
	c := needChartTools(t)
	sum := sha256.Sum256([]byte(backOfficeSecret))
	clients, err := json.Marshal([]map[string]any{
		{"client_id": "back-office", "token_endpoint_auth_method": "client_secret_basic",
			"client_secret_sha256": base64.RawURLEncoding.EncodeToString(sum[:]), "grant_types": []string{"client_credentials"},
			"scopes": []string{"strongroom:admin"}, "resources": []string{chartIssuer + "/admin"}},
		{"client_id": "mobile-app", "token_endpoint_auth_method": "none",
			"grant_types": []string{"urn:strongroom:params:oauth:grant-type:passcode", "urn:strongroom:params:oauth:grant-type:biometric-signature", "refresh_token"},
			"resources":   []string{"https://api.bank.test"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := c.template(t, chartDefaults("--set-json", "clients="+string(clients), "--set", "peppers.current=pepper-1")...)
	d, ctr := r.authd(t)
	spec := d.Spec.Template.Spec

	// The kubelet's part: every mount becomes a directory under root.
	root := t.TempDir()
	local := func(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	now := time.Now().UTC()
	certPEM, keyPEM, pin := newCertificatePEM(t)
	// authd refuses to start without a pin set when --pinset-dir is set
	// (the pod waits for the operator's ConfigMap), so one is written
	// as the operator would.
	manifestKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pinJWS, pinAndroid := operatorPinSet(t, manifestKey, 1, pin)
	pinSetName := chartDecode[v1alpha1.PinnedCertificate](t, r.one(t, "PinnedCertificate", "")).Spec.PinSet.ConfigMapName
	for _, vm := range ctr.VolumeMounts {
		dir := local(vm.MountPath)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		files := map[string][]byte{}
		kind, name := "", ""
		for _, v := range spec.Volumes {
			if v.Name == vm.Name && v.Secret != nil {
				kind, name = "secret", v.Secret.SecretName
			}
			if v.Name == vm.Name && v.ConfigMap != nil {
				kind, name = "configMap", v.ConfigMap.Name
			}
		}
		switch {
		case vm.Name == "tls":
			files["tls.crt"], files["tls.key"] = certPEM, keyPEM
		case kind == "configMap" && name == pinSetName:
			files["pinset.json"], files["android.xml"] = pinJWS, pinAndroid
		case vm.Name == "peppers":
			files["pepper-1"] = bytes.Repeat([]byte{7}, 32)
		case kind == "configMap" && name == chartRelease+"-authd-clients":
			for k, v := range chartDecode[corev1.ConfigMap](t, r.one(t, "ConfigMap", name)).Data {
				files[k] = []byte(v)
			}
		case strings.HasSuffix(vm.Name, "-keys"):
			ks := chartKeySet(t, r, name)
			alg := map[v1alpha1.KeySetPurpose]string{v1alpha1.PurposeTokenSigning: keyset.ES256,
				v1alpha1.PurposePayloadSealing: keyset.XWing, v1alpha1.PurposeHMACSecret: keyset.HS256}[ks.Spec.Purpose]
			writeKeySet(t, dir, string(ks.Spec.Purpose), alg, now.Add(-time.Hour), now.Add(48*time.Hour))
		}
		for f, b := range files {
			if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The rendered args, paths under root, listeners on free loopback ports.
	var args []string
	for _, a := range ctr.Args {
		switch {
		case strings.HasPrefix(a, "--listen="):
			a = "--listen=127.0.0.1:0"
		case strings.HasPrefix(a, "--admin-listen="):
			a = "--admin-listen=127.0.0.1:0"
		default:
			if flag, value, ok := strings.Cut(a, "="); ok && strings.HasPrefix(value, "/etc/strongroom/") {
				a = flag + "=" + local(value)
			}
		}
		args = append(args, a)
	}
	env := cleanEnv("DATABASE_URL=" + freshDatabase(t))
	// The downward API's part: the memory limit as the kubelet writes it.
	for _, e := range ctr.Env {
		if e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory" {
			env = append(env, e.Name+"="+strconv.FormatInt(ctr.Resources.Limits.Memory().Value(), 10))
		}
	}
	job := chartDecode[batchv1.Job](t, r.one(t, "Job", ""))
	if code, out, errOut := authd(t, env, job.Spec.Template.Spec.Containers[0].Args...); code != 0 {
		t.Fatalf("the migration Job's command: exit %d\n%s%s", code, out, errOut)
	}
	p := chartServe(t, env, args)
	hc := pinnedClient(pin)
	defer hc.CloseIdleConnections()
	waitUntil(t, 20*time.Second, "authd ready", func() bool {
		resp, err := hc.Get("https://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	resp, err := hc.Get("https://" + p.public + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var disc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&disc); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("discovery: %d %v", resp.StatusCode, err)
	}
	adminURL, _ := chartFlag(ctr.Args, "admin-url")
	if disc["issuer"] != chartIssuer || disc["introspection_endpoint"] != adminURL+"/oauth2/introspect" {
		t.Errorf("discovery: issuer %v, introspection %v; want %s and %s/oauth2/introspect",
			disc["issuer"], disc["introspection_endpoint"], chartIssuer, adminURL)
	}
	ps, err := hc.Get("https://" + p.public + "/.well-known/pinset.json")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(ps.Body)
	ps.Body.Close()
	if err != nil || !bytes.Equal(bytes.TrimSpace(body), bytes.TrimSpace(pinJWS)) {
		t.Errorf("the pin set of the mounted ConfigMap is not served (%d, %v)", ps.StatusCode, err)
	}
	// The rendered clients file registered the back office.
	req, _ := http.NewRequest(http.MethodPost, "https://"+p.public+"/oauth2/token",
		strings.NewReader("grant_type=client_credentials&scope=strongroom:admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("back-office", backOfficeSecret)
	tok, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	tok.Body.Close()
	if tok.StatusCode != http.StatusOK {
		t.Errorf("back-office token from the rendered clients file: %d", tok.StatusCode)
	}
}

func chartKeySet(t *testing.T, r *chartRender, secret string) *v1alpha1.KeySet {
	t.Helper()
	for _, m := range r.all("KeySet") {
		if ks := chartDecode[v1alpha1.KeySet](t, m); ks.Spec.SecretName == secret {
			return ks
		}
	}
	t.Fatalf("no KeySet writes Secret %s", secret)
	return nil
}

// chartServed is authd serving: its listeners' addresses.
type chartServed struct{ public, admin string }

// chartServe starts authd serve with args and waits until it serves. If
// authd exits instead (a flag or value the chart renders that authd
// refuses), the test fails at once with authd's output.
func chartServe(t *testing.T, env, args []string) chartServed {
	t.Helper()
	cmd := exec.Command(authdBin, args...)
	cmd.Env = env
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	deadline := time.After(30 * time.Second)
	for {
		var s chartServed
		started := false
		for _, line := range strings.Split(out.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil {
				continue
			}
			addr, _ := m["addr"].(string)
			switch {
			case m["msg"] == "listening" && m["listener"] == "public":
				s.public = addr
			case m["msg"] == "listening" && m["listener"] == "admin":
				s.admin = addr
			case m["msg"] == "authd started":
				started = true
			}
		}
		if started && s.public != "" && s.admin != "" {
			return s
		}
		select {
		case <-done:
			t.Fatalf("authd exited (%v) with the flags the chart renders:\n%s", waitErr, out.String())
		case <-deadline:
			t.Fatalf("authd did not start within 30s:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
