{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "pipeserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "pipeserve.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* chart label value: name-version. */}}
{{- define "pipeserve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object carries, without the component. */}}
{{- define "pipeserve.commonLabels" -}}
helm.sh/chart: {{ include "pipeserve.chart" . }}
app.kubernetes.io/name: {{ include "pipeserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pipeserve
{{- end }}

{{/* Labels of the server's objects. */}}
{{- define "pipeserve.labels" -}}
{{ include "pipeserve.commonLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{/* Selector labels: stable for the life of a release (Deployment selectors are immutable). */}}
{{- define "pipeserve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pipeserve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "pipeserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pipeserve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference; the CUDA variant's tag carries gpu.tagSuffix. */}}
{{- define "pipeserve.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.gpu.enabled }}{{ $tag = printf "%s%s" $tag .Values.gpu.tagSuffix }}{{ end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/* --device: a GPU pod uses cuda:0 unless server.device already names a CUDA device. */}}
{{- define "pipeserve.device" -}}
{{- if and .Values.gpu.enabled (not (hasPrefix "cuda" .Values.server.device)) }}cuda:0{{ else }}{{ .Values.server.device }}{{ end }}
{{- end }}

{{/* --model as the container sees it (see model: in values.yaml). */}}
{{- define "pipeserve.modelArg" -}}
{{- if eq .Values.model.source "hub" }}
{{- .Values.model.name }}
{{- else }}
{{- printf "%s/%s" (trimSuffix "/" .Values.model.mountPath) .Values.model.name }}
{{- end }}
{{- end }}

{{/* Name of the model PVC. */}}
{{- define "pipeserve.pvcName" -}}
{{- default (printf "%s-models" (include "pipeserve.fullname" .)) .Values.model.pvc.existingClaim }}
{{- end }}

{{/*
terminationGracePeriodSeconds: preStop sleep + drain delay + shutdown timeout + margin (see
shutdown: in values.yaml). An explicit value below that sum would SIGKILL requests the server was
still finishing, so it fails the render.
*/}}
{{- define "pipeserve.gracePeriod" -}}
{{- $s := .Values.shutdown }}
{{- $min := add $s.preStopSleepSeconds $s.drainDelaySeconds $s.timeoutSeconds $s.marginSeconds }}
{{- if kindIs "invalid" $s.terminationGracePeriodSeconds }}
{{- $min }}
{{- else if lt (int $s.terminationGracePeriodSeconds) (int $min) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds=%v is below preStop + drain + timeout + margin = %v" $s.terminationGracePeriodSeconds $min) }}
{{- else }}
{{- $s.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/* Shared container securityContext. */}}
{{- define "pipeserve.securityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}
