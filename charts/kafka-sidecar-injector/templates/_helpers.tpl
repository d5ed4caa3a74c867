{{/*
Chart name, cut to a DNS label.
*/}}
{{- define "kafka-sidecar-injector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects; a release name that already contains the chart name is used as is.
*/}}
{{- define "kafka-sidecar-injector.fullname" -}}
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
Labels on every object.
*/}}
{{- define "kafka-sidecar-injector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "kafka-sidecar-injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "kafka-sidecar-injector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kafka-sidecar-injector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the injector's ServiceAccount.
*/}}
{{- define "kafka-sidecar-injector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kafka-sidecar-injector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The injector image; a digest wins over a tag, the tag defaults to the appVersion.
*/}}
{{- define "kafka-sidecar-injector.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
Secret of the serving certificate (cert-manager) and Secret of the injector's own CA (without cert-manager).
*/}}
{{- define "kafka-sidecar-injector.tlsSecret" -}}
{{- printf "%s-tls" (include "kafka-sidecar-injector.fullname" . | trunc 59 | trimSuffix "-") }}
{{- end }}
{{- define "kafka-sidecar-injector.caSecret" -}}
{{- printf "%s-ca" (include "kafka-sidecar-injector.fullname" . | trunc 60 | trimSuffix "-") }}
{{- end }}

{{/*
kafka-sidecar-injector.certManager: "true" when cert-manager issues the serving certificate: when
certManager.enabled says so, or, left null, when the cluster serves the cert-manager.io/v1 API.
*/}}
{{- define "kafka-sidecar-injector.certManager" -}}
{{- $enabled := .Values.certManager.enabled }}
{{- if kindIs "invalid" $enabled }}
{{- $enabled = .Capabilities.APIVersions.Has "cert-manager.io/v1" }}
{{- end }}
{{- if $enabled }}true{{ end }}
{{- end }}
