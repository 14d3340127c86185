{{/* Prefix of every object name: <release>-obol, or the release name when it already says obol. */}}
{{- define "obol.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains "obol" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-obol" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "obol.appVersion" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "obol.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "obol.appVersion" .) -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "obol.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: obol
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "obol.appVersion" . | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: obol
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include "obol.selectorLabels" (list . "verifier") */}}
{{- define "obol.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: obol
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* All labels of one component. */}}
{{- define "obol.componentLabels" -}}
{{ include "obol.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* "true" when the monitoring objects are rendered. */}}
{{- define "obol.monitoring.enabled" -}}
{{- $m := toString .Values.monitoring.enabled -}}
{{- if eq $m "true" -}}
true
{{- else if eq $m "auto" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}true{{- end -}}
{{- else if ne $m "false" -}}
{{- fail (printf "monitoring.enabled is %q: use auto, true or false" $m) -}}
{{- end -}}
{{- end -}}

{{/* Pod-level security context shared by every component. */}}
{{- define "obol.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Container-level security context shared by every component. */}}
{{- define "obol.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "obol.frontendNamespace" -}}
{{- .Values.frontend.serviceAccount.namespace | default .Release.Namespace -}}
{{- end -}}

{{/* The verifier's pricing config (routes come from ServiceOffers with --route-source kube). */}}
{{- define "obol.verifier.config" -}}
{{- $v := .Values.verifier -}}
{{- if and $v.payTo (not (regexMatch "^0x[0-9a-fA-F]{40}$" (toString $v.payTo))) -}}
{{- fail (printf "verifier.payTo %v is not an EVM address (0x and 40 hex digits); quote it in values files" $v.payTo) -}}
{{- end -}}
{{- if $v.payTo }}
payTo: {{ $v.payTo | quote }}
{{- else if .Values.devnet.enabled }}
payTo: {{ include "obol.devnet.sellerAddress" . | quote }}
{{- end }}
{{- if .Values.devnet.enabled }}
# devnet: the in-cluster chain, its token, and its facilitator through the
# loopback forwarder in this pod.
chain: {{ include "obol.devnet.chain" . | quote }}
facilitatorURL: {{ printf "http://127.0.0.1:%v" .Values.devnet.forwarder.port | quote }}
asset:
  address: {{ include "obol.devnet.tokenAddress" . | quote }}
  symbol: "USDC"
  decimals: 6
  eip712Name: "USDC"
  eip712Version: "2"
{{- else }}
chain: {{ $v.chain | quote }}
{{- if $v.facilitators }}
{{- if $v.facilitatorHeaders }}
{{- fail "verifier.facilitatorHeaders applies to verifier.facilitatorURL; with verifier.facilitators give each facilitator its own headers" -}}
{{- end }}
# Ordered fallback: verify goes to the first that answers; settle to the
# one that verified. verifier.facilitatorURL is not used.
facilitators:
{{- range $i, $f := $v.facilitators }}
  - url: {{ required (printf "verifier.facilitators[%d].url is required" $i) $f.url | quote }}
    {{- with $f.name }}
    name: {{ . | quote }}
    {{- end }}
    {{- with $f.headers }}
    headers:
    {{- range $j, $h := . }}
      - header: {{ required (printf "verifier.facilitators[%d].headers[%d].header is required" $i $j) $h.header | quote }}
        valueFromEnv: {{ printf "OBOL_FACILITATOR_%d_HEADER_%d" $i $j | quote }}
    {{- end }}
    {{- end }}
{{- end }}
{{- else }}
facilitatorURL: {{ $v.facilitatorURL | quote }}
{{- with $v.facilitatorHeaders }}
facilitatorHeaders:
{{- range $i, $h := . }}
  - header: {{ required "verifier.facilitatorHeaders[].header is required" $h.header | quote }}
    valueFromEnv: {{ printf "OBOL_FACILITATOR_HEADER_%d" $i | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
mode: {{ $v.mode | quote }}
{{- if $v.forwardAuth }}
forwardAuth: {{ $v.forwardAuth | quote }}
{{- end }}
{{- end -}}

{{/* The ConfigMap the controller writes PurchaseRequests' upstream files to and the buyer mounts. */}}
{{- define "obol.buyer.upstreamsConfigMap" -}}
{{- .Values.buyer.upstreamsConfigMap | default (printf "%s-buyer-upstreams" (include "obol.fullname" .)) -}}
{{- end -}}

{{/* Devnet: object names and in-cluster addresses. */}}
{{- define "obol.devnet.chainName" -}}
{{- printf "%s-devchain" (include "obol.fullname" .) -}}
{{- end -}}
{{- define "obol.devnet.facilitatorName" -}}
{{- printf "%s-facilitator" (include "obol.fullname" .) -}}
{{- end -}}
{{- define "obol.devnet.upstreamName" -}}
{{- printf "%s-upstream" (include "obol.fullname" .) -}}
{{- end -}}
{{- define "obol.devnet.rpcURL" -}}
{{- printf "http://%s.%s.svc:%v" (include "obol.devnet.chainName" .) .Release.Namespace .Values.devnet.chain.port -}}
{{- end -}}
{{/* Where every development chain deploys its token (devchain.TokenAddress; a test keeps them equal). */}}
{{- define "obol.devnet.tokenAddress" -}}
0x2b1894172E4e079140C3DaE53394356262b7e258
{{- end -}}
{{/* The development chain's name in obol's chain registry (evm.DevChainName, chain id 1337). */}}
{{- define "obol.devnet.chain" -}}
obol-dev
{{- end -}}
{{/* The dev "seller" account: the devnet verifier's default payTo (a test keeps it equal to devchain's). */}}
{{- define "obol.devnet.sellerAddress" -}}
0x45d85c1c6e4CF0f3055A928fd6D1903CBf70ec0B
{{- end -}}
{{- define "obol.devnet.placement" -}}
{{- with .Values.devnet.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.devnet.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
