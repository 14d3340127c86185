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
{{- end }}
chain: {{ $v.chain | quote }}
facilitatorURL: {{ $v.facilitatorURL | quote }}
mode: {{ $v.mode | quote }}
{{- if $v.forwardAuth }}
forwardAuth: {{ $v.forwardAuth | quote }}
{{- end }}
{{- end -}}

{{/* The ConfigMap the controller writes PurchaseRequests' upstream files to and the buyer mounts. */}}
{{- define "obol.buyer.upstreamsConfigMap" -}}
{{- .Values.buyer.upstreamsConfigMap | default (printf "%s-buyer-upstreams" (include "obol.fullname" .)) -}}
{{- end -}}
