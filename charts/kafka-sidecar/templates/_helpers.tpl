{{/*
Chart name, cut to a DNS label.
*/}}
{{- define "kafka-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects. A release name that already contains the chart name is used as is, so
`helm install kafka-sidecar .` does not produce kafka-sidecar-kafka-sidecar.
*/}}
{{- define "kafka-sidecar.fullname" -}}
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

{{/*
Full name with a suffix, cut so the whole stays a DNS label.
Usage: include "kafka-sidecar.suffixedName" (list $ "admin")
*/}}
{{- define "kafka-sidecar.suffixedName" -}}
{{- $suffix := index . 1 }}
{{- $base := include "kafka-sidecar.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "kafka-sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "kafka-sidecar.labels" -}}
helm.sh/chart: {{ include "kafka-sidecar.chart" . }}
{{ include "kafka-sidecar.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable for the life of a release, since a Deployment's selector cannot change.
*/}}
{{- define "kafka-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kafka-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the pods' ServiceAccount.
*/}}
{{- define "kafka-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kafka-sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference from a map with repository, tag and digest; a digest wins over a tag.
Usage: include "kafka-sidecar.imageRef" (list $imageValues "fallback-tag" "values.path.for.errors")
*/}}
{{- define "kafka-sidecar.imageRef" -}}
{{- $image := index . 0 }}
{{- $fallbackTag := index . 1 }}
{{- $path := index . 2 }}
{{- $repository := required (printf "%s.repository is required" $path) (dig "repository" "" $image) }}
{{- $digest := dig "digest" "" $image }}
{{- $tag := dig "tag" "" $image | default $fallbackTag | toString }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else if $tag }}
{{- printf "%s:%s" $repository $tag }}
{{- else }}
{{- fail (printf "%s.tag or %s.digest is required" $path $path) }}
{{- end }}
{{- end }}

{{/*
Whole seconds (rounded up) in a Go duration string such as 30s, 1m30s or 1500ms.
*/}}
{{- define "kafka-sidecar.durationSeconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$" $d) }}
{{- fail (printf "%q is not a duration such as 30s or 1m30s" $d) }}
{{- end }}
{{- $unitSeconds := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" $d -1 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $unit := trimPrefix $number . }}
{{- $total = addf $total (mulf (float64 $number) (get $unitSeconds $unit)) }}
{{- end }}
{{- ceil $total | int }}
{{- end }}

{{/*
Pod termination grace period: it must outlast the sidecar's drain, or the kubelet kills the sidecar before it
commits what is done. An explicit value is checked; otherwise it is the drain deadline plus a margin.
Usage: include "kafka-sidecar.terminationGracePeriodSeconds" (dict "values" $sidecarValues "override" $seconds "margin" $seconds)
*/}}
{{- define "kafka-sidecar.terminationGracePeriodSeconds" -}}
{{- $drain := include "kafka-sidecar.durationSeconds" (dig "shutdownTimeout" "" .values | default "30s") | int }}
{{- if kindIs "invalid" .override }}
{{- add $drain (int (.margin | default 15)) }}
{{- else if le (int .override) $drain }}
{{- fail (printf "deployment.terminationGracePeriodSeconds (%d) must be larger than the sidecar shutdown timeout (%ds)" (int .override) $drain) }}
{{- else }}
{{- int .override }}
{{- end }}
{{- end }}

{{/*
Replica count the chart expects at most; KEDA may scale up to its maximum.
*/}}
{{- define "kafka-sidecar.maxReplicas" -}}
{{- if .Values.keda.enabled }}
{{- int .Values.keda.maxReplicaCount }}
{{- else }}
{{- int .Values.deployment.replicas }}
{{- end }}
{{- end }}

{{/*
Checks that span several values, which the schema cannot express. Renders nothing.
*/}}
{{- define "kafka-sidecar.validate" -}}
{{- $sidecar := .Values.sidecar }}
{{- $maxReplicas := include "kafka-sidecar.maxReplicas" . | int }}
{{- if and .Values.deployment.enabled (gt $maxReplicas 1) }}
{{- if dig "kafka" "instanceId" "" $sidecar }}
{{- fail "sidecar.kafka.instanceId is shared by every replica, and members with one instance ID fence each other: leave it empty (the pod name is used) or run one replica" }}
{{- end }}
{{- if eq (toString (dig "dedup" "mode" "" $sidecar)) "memory" }}
{{- fail "sidecar.dedup.mode memory keeps dedup marks in one process: use redis with more than one replica" }}
{{- end }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled .Values.deployment.enabled (not .Values.adminService.enabled) }}
{{- fail "serviceMonitor.enabled needs adminService.enabled: the ServiceMonitor scrapes the admin Service" }}
{{- end }}
{{- if and .Values.keda.enabled (or (empty $sidecar.kafka.brokers) (empty $sidecar.kafka.topics) (empty $sidecar.kafka.group)) }}
{{- fail "keda.enabled needs sidecar.kafka.brokers, topics and group as values: the ScaledObject names them" }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.minReplicaCount) (int .Values.keda.maxReplicaCount)) }}
{{- fail "keda.minReplicaCount must not exceed keda.maxReplicaCount" }}
{{- end }}
{{- if .Values.deployment.enabled }}
{{- $sidecarPorts := list (int (dig "admin" "port" 9464 $sidecar)) }}
{{- $metricsPort := dig "metrics" "port" nil $sidecar }}
{{- if not (kindIs "invalid" $metricsPort) }}
{{- $sidecarPorts = append $sidecarPorts (int $metricsPort) }}
{{- end }}
{{- range .Values.app.ports }}
{{- if has (int .containerPort) $sidecarPorts }}
{{- fail (printf "app.ports: port %d is taken by the sidecar (sidecar.admin.port / sidecar.metrics.port); containers in a pod share one network namespace" (int .containerPort)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
One alerting rule of the PrometheusRule: name, expr, summary and description, with for and severity from the
alert's values, the release's alertLabels, and a runbook_url pointing at the README section of the alert.
*/}}
{{- define "kafka-sidecar.alert" -}}
{{- $rules := .rules -}}
- alert: {{ .name }}
  expr: |-
    {{- .expr | nindent 4 }}
  for: {{ .alert.for }}
  labels:
    severity: {{ .alert.severity }}
    {{- with $rules.alertLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    summary: {{ .summary | quote }}
    description: {{ .description | quote }}
    runbook_url: {{ printf "%s#%s" $rules.runbookURL (lower .name) | quote }}
{{- end }}
