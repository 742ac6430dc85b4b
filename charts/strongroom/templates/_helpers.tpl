{{/*
Names. Every name is at most 63 characters (label values, Service names).
*/}}
{{- define "strongroom.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "strongroom.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "strongroom.component" (list . "suffix"): <fullname>-<suffix>, at most 63 characters. */}}
{{- define "strongroom.component" -}}
{{- $ := index . 0 -}}
{{- printf "%s-%s" (include "strongroom.fullname" $) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "strongroom.authd.fullname" -}}{{ include "strongroom.component" (list . "authd") }}{{- end -}}
{{- define "strongroom.authd.internalName" -}}{{ include "strongroom.component" (list . "authd-internal") }}{{- end -}}
{{- define "strongroom.authd.clientsName" -}}{{ include "strongroom.component" (list . "authd-clients") }}{{- end -}}
{{- define "strongroom.operator.fullname" -}}{{ include "strongroom.component" (list . "operator") }}{{- end -}}
{{- define "strongroom.migrations.fullname" -}}{{ include "strongroom.component" (list . "migrate") }}{{- end -}}

{{- define "strongroom.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource; "strongroom.labels" (list . "component"). */}}
{{- define "strongroom.labels" -}}
{{- $ := index . 0 -}}
helm.sh/chart: {{ include "strongroom.chart" $ }}
{{ include "strongroom.selectorLabels" . }}
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
app.kubernetes.io/part-of: strongroom
{{- with $.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels: stable across upgrades (never the version). */}}
{{- define "strongroom.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "strongroom.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* "strongroom.image" (list imageValues .): repository:tag, or repository@digest (a digest wins). */}}
{{- define "strongroom.image" -}}
{{- $img := index . 0 -}}
{{- $ := index . 1 -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default $.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{- define "strongroom.authd.serviceAccountName" -}}
{{- if .Values.authd.serviceAccount.create -}}
{{- default (include "strongroom.authd.fullname" .) .Values.authd.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.authd.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "strongroom.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "strongroom.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The issuer, required, and its host. */}}
{{- define "strongroom.issuer" -}}
{{- required "issuer is required: the OAuth2 issuer URL, e.g. --set issuer=https://auth.bank.example" .Values.issuer -}}
{{- end -}}

{{- define "strongroom.issuerHost" -}}
{{- (urlParse (include "strongroom.issuer" .)).hostname -}}
{{- end -}}

{{/* Names of what the operator writes and authd mounts. */}}
{{- define "strongroom.pinnedCertificate.name" -}}
{{- default (include "strongroom.authd.fullname" .) .Values.pinnedCertificate.name -}}
{{- end -}}
{{- define "strongroom.tls.secretName" -}}
{{- default (include "strongroom.component" (list . "authd-tls")) .Values.pinnedCertificate.secretName -}}
{{- end -}}
{{- define "strongroom.pinSet.configMapName" -}}
{{- default (include "strongroom.component" (list . "authd-pinset")) .Values.pinnedCertificate.pinSet.configMapName -}}
{{- end -}}

{{/*
The three KeySets: purpose, values key and default name. "strongroom.keySets"
renders them as a YAML list of {purpose, name, secretName, mountPath, flag,
values}, so the KeySet objects and authd's mounts come from one place.
*/}}
{{- define "strongroom.keySets" -}}
{{- $ := . -}}
{{- range list (list "token-signing" "tokenSigning" "signing" "signing-keys-dir") (list "payload-sealing" "payloadSealing" "sealing" "sealing-keys-dir") (list "hmac-secret" "hmacSecret" "hmac" "hmac-keys-dir") }}
{{- $purpose := index . 0 }}
{{- $v := index $.Values.keySets (index . 1) }}
{{- $name := default (include "strongroom.component" (list $ $purpose)) $v.name }}
- purpose: {{ $purpose }}
  name: {{ $name }}
  secretName: {{ default (printf "%s-keys" $name | trunc 63 | trimSuffix "-") $v.secretName }}
  volume: {{ index . 2 }}-keys
  mountPath: /etc/strongroom/keys/{{ index . 2 }}
  flag: {{ index . 3 }}
  values: {{ toJson $v }}
{{- end }}
{{- end -}}

{{- define "strongroom.adminURL" -}}
{{- default (printf "https://%s.%s.svc:%v" (include "strongroom.authd.internalName" .) .Release.Namespace .Values.internalService.port) .Values.authd.config.adminURL -}}
{{- end -}}

{{/* The namespace the operator's leader-election Lease lives in: --namespace when set, else its own. */}}
{{- define "strongroom.operator.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.operator.watchNamespace -}}
{{- end -}}

{{/*
Hardened security contexts (restricted Pod Security Standard and more):
non-root 65532 (distroless "nonroot"), read-only root filesystem, no
privilege escalation, no capabilities, the runtime's seccomp profile.
*/}}
{{- define "strongroom.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "strongroom.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Database environment: DATABASE_URL from the user's Secret, and server verification when a CA is given. */}}
{{- define "strongroom.databaseEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "database.existingSecret is required: a Secret holding the PostgreSQL connection string (see README.md)" .Values.database.existingSecret }}
      key: {{ .Values.database.key }}
{{- if .Values.database.tls.caSecret }}
- name: PGSSLMODE
  value: verify-full
- name: PGSSLROOTCERT
  value: /etc/strongroom/database-ca/{{ .Values.database.tls.caKey }}
{{- end }}
{{- end -}}

{{- define "strongroom.databaseCAVolume" -}}
{{- if .Values.database.tls.caSecret -}}
- name: database-ca
  secret:
    secretName: {{ .Values.database.tls.caSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.database.tls.caKey }}
        path: {{ .Values.database.tls.caKey }}
{{- end }}
{{- end -}}

{{- define "strongroom.databaseCAMount" -}}
{{- if .Values.database.tls.caSecret -}}
- name: database-ca
  mountPath: /etc/strongroom/database-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* NetworkPolicy egress rules shared by authd and the migration Job: DNS and PostgreSQL. */}}
{{- define "strongroom.egressDNSAndDatabase" -}}
- ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
  {{- with .Values.networkPolicy.dns.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    - protocol: TCP
      port: {{ int .Values.networkPolicy.database.port }}
  {{- with .Values.networkPolicy.database.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
The operator's rules: exactly the ClusterRole that controller-gen generates
from its RBAC markers (operator/config/rbac/role.yaml, `make generate`).
e2e/chart_test.go holds the two equal.
*/}}
{{- define "strongroom.operator.rules" -}}
- apiGroups:
  - ""
  resources:
  - configmaps
  verbs:
  - create
  - get
  - list
  - update
  - watch
- apiGroups:
  - ""
  resources:
  - secrets
  verbs:
  - create
  - delete
  - get
  - list
  - update
  - watch
- apiGroups:
  - events.k8s.io
  resources:
  - events
  verbs:
  - create
  - patch
- apiGroups:
  - strongroom.dev
  resources:
  - keysets
  - pinnedcertificates
  verbs:
  - get
  - list
  - patch
  - watch
- apiGroups:
  - strongroom.dev
  resources:
  - keysets/status
  - pinnedcertificates/status
  verbs:
  - get
  - update
{{- end -}}

{{/* The leader-election rules (the Role of operator/config/rbac/role.yaml). */}}
{{- define "strongroom.operator.leaderElectionRules" -}}
- apiGroups:
  - ""
  resources:
  - events
  verbs:
  - create
  - patch
- apiGroups:
  - coordination.k8s.io
  resources:
  - leases
  verbs:
  - create
  - get
  - update
{{- end -}}

{{/*
Egress to the OTLP collector: networkPolicy.otlp.ports, else otel.endpoint's
port, else its scheme's (the exporters dial 443 or 80 when the URL names no
port).
*/}}
{{- define "strongroom.egressOTLP" -}}
{{- $ports := .Values.networkPolicy.otlp.ports -}}
{{- if not $ports -}}
{{- $u := urlParse .Values.otel.endpoint -}}
{{- if regexMatch ":[0-9]+$" $u.host -}}
{{- $ports = list (regexFind "[0-9]+$" $u.host) -}}
{{- else -}}
{{- $ports = list (ternary "443" "80" (eq $u.scheme "https")) -}}
{{- end -}}
{{- end -}}
- ports:
    {{- range $ports }}
    - protocol: TCP
      port: {{ int . }}
    {{- end }}
  {{- with .Values.networkPolicy.otlp.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
