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

{{/* Labels every object carries, without the component; commonLabels from values come first so
the chart's own labels win a clash. */}}
{{- define "pipeserve.commonLabels" -}}
{{- with .Values.commonLabels }}{{ toYaml . }}
{{ end -}}
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

{{/* Image reference: repository@digest when image.digest is set (a digest names one image, so
no tag or suffix is added: with gpu.enabled it must be the CUDA image's digest); otherwise
repository:tag, the CUDA variant's tag carrying gpu.tagSuffix. */}}
{{- define "pipeserve.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.gpu.enabled }}{{ $tag = printf "%s%s" $tag .Values.gpu.tagSuffix }}{{ end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Image of the model init container: its own when set, else the server image. */}}
{{- define "pipeserve.initImage" -}}
{{- $i := .Values.model.initContainer.image }}
{{- if $i.repository }}
{{- printf "%s:%s" $i.repository (required "model.initContainer.image.tag is required with model.initContainer.image.repository" $i.tag) }}
{{- else }}
{{- include "pipeserve.image" . }}
{{- end }}
{{- end }}

{{/* Node selector: nodeSelector plus, on a GPU with gpu.computeCapability "M.m", the GPU Feature
Discovery labels nvidia.com/gpu.compute.major/minor (the CUDA image runs on one capability). */}}
{{- define "pipeserve.nodeSelector" -}}
{{- $sel := deepCopy .Values.nodeSelector }}
{{- if and .Values.gpu.enabled .Values.gpu.computeCapability }}
{{- $cc := splitList "." .Values.gpu.computeCapability }}
{{- $_ := set $sel "nvidia.com/gpu.compute.major" (index $cc 0) }}
{{- $_ := set $sel "nvidia.com/gpu.compute.minor" (index $cc 1) }}
{{- end }}
{{- if $sel }}{{ toYaml $sel }}{{ end }}
{{- end }}

{{/* Milliseconds of a humantime duration as the server parses it ("30s", "1m 30s", "500ms"). */}}
{{- define "pipeserve.durationMs" -}}
{{- $ms := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" . -1 }}
{{- $n := regexFind "^[0-9]+(\\.[0-9]+)?" . | float64 }}
{{- $u := trimPrefix (regexFind "^[0-9]+(\\.[0-9]+)?" .) . }}
{{- $ms = addf $ms (mulf $n (get (dict "ns" 0.000001 "us" 0.001 "µs" 0.001 "ms" 1.0 "s" 1000.0 "m" 60000.0 "h" 3600000.0) $u)) }}
{{- end }}
{{- $ms }}
{{- end }}

{{/* Cross-field checks the schema cannot express; included by the Deployment or the KServe runtime. */}}
{{- define "pipeserve.validate" -}}
{{- $timeoutMs := mulf .Values.shutdown.timeoutSeconds 1000.0 }}
{{- $requestMs := include "pipeserve.durationMs" .Values.batching.requestTimeout | float64 }}
{{- if lt $timeoutMs $requestMs }}
{{- fail (printf "shutdown.timeoutSeconds=%v is shorter than batching.requestTimeout=%s: a request accepted just before the listener closes may run for the request timeout and would be cut off at shutdown. Raise shutdown.timeoutSeconds to at least %v (or lower batching.requestTimeout)." .Values.shutdown.timeoutSeconds .Values.batching.requestTimeout (ceil (divf $requestMs 1000.0))) }}
{{- end }}
{{- if .Values.kserve.runtime.enabled }}
{{- /* KServe creates the pods, their Service and autoscaling: the chart's own would be ignored. */}}
{{- range $key, $on := dict "autoscaling.enabled" .Values.autoscaling.enabled "ingress.enabled" .Values.ingress.enabled "networkPolicy.enabled" .Values.networkPolicy.enabled "metrics.serviceMonitor.enabled" .Values.metrics.serviceMonitor.enabled "metrics.prometheusRule.enabled" .Values.metrics.prometheusRule.enabled "model.pvc.create" .Values.model.pvc.create }}
{{- if $on }}
{{- fail (printf "%s=true does not apply with kserve.runtime.enabled: KServe creates the pods for each InferenceService (set autoscaling, ingress and scraping on the InferenceService; the model comes from its storageUri)" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- if gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas=%v is above autoscaling.maxReplicas=%v" .Values.autoscaling.minReplicas .Values.autoscaling.maxReplicas) }}
{{- end }}
{{- end }}

{{/* --device: a GPU pod uses cuda:0 unless server.device already names a CUDA device. */}}
{{- define "pipeserve.device" -}}
{{- if and .Values.gpu.enabled (not (hasPrefix "cuda" .Values.server.device)) }}cuda:0{{ else }}{{ .Values.server.device }}{{ end }}
{{- end }}

{{/* Whether the model comes from the hub (the server's hub cache, HF_HOME): hub and initContainer. */}}
{{- define "pipeserve.fromHub" -}}
{{- if has .Values.model.source (list "hub" "initContainer") }}true{{ end }}
{{- end }}

{{/* Hub environment shared by the server and the init container: cache, endpoint, token, revision. */}}
{{- define "pipeserve.hubEnv" -}}
- name: HF_HOME
  value: /cache/huggingface
- name: PIPESERVE_REVISION
  value: {{ .Values.model.hub.revision | quote }}
{{- with .Values.model.hub.endpoint }}
- name: HF_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.model.hub.tokenSecret.name }}
- name: HF_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.model.hub.tokenSecret.key }}
{{- end }}
{{- end }}

{{/* --model as the container sees it (see model: in values.yaml). */}}
{{- define "pipeserve.modelArg" -}}
{{- if include "pipeserve.fromHub" . }}
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

{{/* HPA behavior, shared by the chart's HPA and the one KEDA creates. */}}
{{- define "pipeserve.hpaBehavior" -}}
scaleDown:
  # A new pod costs a model load: scale down slowly, one pod at a time.
  stabilizationWindowSeconds: {{ .Values.autoscaling.scaleDownStabilizationSeconds }}
  policies:
    - type: Pods
      value: 1
      periodSeconds: 60
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
    - type: Pods
      value: 2
      periodSeconds: 30
{{- end }}

{{/* PromQL of the KEDA trigger: the release's queue depth (mean over a minute per pod, summed);
KEDA divides it by the threshold (targetQueueDepth) to get the replicas it wants. */}}
{{- define "pipeserve.kedaQuery" -}}
{{- if .Values.autoscaling.keda.query }}
{{- .Values.autoscaling.keda.query }}
{{- else }}
{{- printf "sum(avg_over_time(pipeserve_queue_depth{namespace=%q, job=%q}[1m]))" .Release.Namespace (include "pipeserve.fullname" .) }}
{{- end }}
{{- end }}

{{/* Batching and admission policy as PIPESERVE_* variables (a YAML map): the Deployment's
ConfigMap, or the KServe runtime's env. */}}
{{- define "pipeserve.batchingEnv" -}}
{{- $b := .Values.batching -}}
PIPESERVE_MAX_BATCH_SIZE: {{ $b.maxBatchSize | quote }}
{{- with $b.maxBatchTokens }}
PIPESERVE_MAX_BATCH_TOKENS: {{ . | quote }}
{{- end }}
{{- with $b.maxWait }}
PIPESERVE_MAX_WAIT: {{ . | quote }}
{{- end }}
PIPESERVE_MAX_QUEUE: {{ $b.maxQueue | quote }}
PIPESERVE_REQUEST_TIMEOUT: {{ $b.requestTimeout | quote }}
PIPESERVE_MAX_CLIENT_BATCH_SIZE: {{ $b.maxClientBatchSize | quote }}
PIPESERVE_BATCH_POLICY: {{ $b.policy | quote }}
PIPESERVE_AUTO_TRUNCATE: {{ $b.autoTruncate | quote }}
{{- with $b.maxInputTokens }}
PIPESERVE_MAX_INPUT_TOKENS: {{ . | quote }}
{{- end }}
{{- with $b.bodyLimit }}
PIPESERVE_BODY_LIMIT: {{ . | quote }}
{{- end }}
{{- end }}

{{/* Whether the chart runs the server itself (Deployment, Service, autoscaling, ...): not when it
renders a KServe runtime, whose pods KServe creates per InferenceService. */}}
{{- define "pipeserve.workload" -}}
{{- if not .Values.kserve.runtime.enabled }}true{{ end }}
{{- end }}
