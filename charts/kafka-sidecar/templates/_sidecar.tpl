{{/*
Templates a parent chart includes to run kafka-sidecar in its own pods. Every one takes a dict:
  values   the sidecar values: this chart's `.Values.sidecar`, or `(index .Values "kafka-sidecar" "sidecar")`
           in a chart that has kafka-sidecar as a dependency (so this chart's defaults and schema apply)
  context  the calling template's root context ($)
  chart    optional: the dependency's name or alias, for the default image tag (default "kafka-sidecar")

  initContainers:
    {{- include "kafka-sidecar.container" (dict "values" $sidecar "context" $) | nindent 8 }}
  volumes:
    {{- include "kafka-sidecar.volumes" (dict "values" $sidecar "context" $) | nindent 8 }}
  terminationGracePeriodSeconds: {{ include "kafka-sidecar.terminationGracePeriodSeconds" (dict "values" $sidecar) }}
*/}}

{{/*
kafka-sidecar.container: the sidecar as one item of a pod's initContainers list. restartPolicy Always makes it a
native sidecar: it starts before the app containers, runs beside them, and stops only after they have exited.
*/}}
{{- define "kafka-sidecar.container" -}}
{{- $v := .values }}
{{- $adminPort := int (dig "admin" "port" 9464 $v) }}
{{- $metricsPort := dig "metrics" "port" nil $v }}
{{- if and (not (kindIs "invalid" $metricsPort)) (eq (int $metricsPort) $adminPort) }}
{{- fail "sidecar.metrics.port must differ from sidecar.admin.port (leave it null to serve /metrics on the admin port)" }}
{{- end }}
{{- $files := include "kafka-sidecar.secretFiles" . | fromYamlArray -}}
- name: {{ dig "name" "kafka-sidecar" $v }}
  image: {{ include "kafka-sidecar.image" . | quote }}
  imagePullPolicy: {{ dig "image" "pullPolicy" "IfNotPresent" $v }}
  restartPolicy: Always
  ports:
    - name: sidecar-admin
      containerPort: {{ $adminPort }}
      protocol: TCP
    {{- if not (kindIs "invalid" $metricsPort) }}
    - name: sidecar-metrics
      containerPort: {{ int $metricsPort }}
      protocol: TCP
    {{- end }}
  env:
    {{- include "kafka-sidecar.env" (dict "values" $v "files" $files) | trim | nindent 4 }}
  {{- $envFrom := list }}
  {{- with dig "configMap" "" $v }}
  {{- $envFrom = append $envFrom (dict "configMapRef" (dict "name" .)) }}
  {{- end }}
  {{- with dig "secret" "" $v }}
  {{- $envFrom = append $envFrom (dict "secretRef" (dict "name" .)) }}
  {{- end }}
  {{- $envFrom = concat $envFrom (dig "envFrom" list $v) }}
  {{- with $envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $probes := dig "probes" dict $v }}
  {{- /* Startup gates the app container, so it must not wait for /readyz, which needs the app. */}}
  startupProbe:
    httpGet:
      path: /healthz
      port: sidecar-admin
    {{- toYaml (merge (dict) (dig "startup" dict $probes) (dict "periodSeconds" 1 "timeoutSeconds" 2 "failureThreshold" 60)) | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: sidecar-admin
    {{- toYaml (merge (dict) (dig "liveness" dict $probes) (dict "periodSeconds" 10 "timeoutSeconds" 2 "failureThreshold" 3)) | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: sidecar-admin
    {{- toYaml (merge (dict) (dig "readiness" dict $probes) (dict "periodSeconds" 5 "timeoutSeconds" 2 "failureThreshold" 3)) | nindent 4 }}
  {{- with dig "resources" dict $v }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml (dig "securityContext" (dict "runAsNonRoot" true "readOnlyRootFilesystem" true "allowPrivilegeEscalation" false "capabilities" (dict "drop" (list "ALL"))) $v) | nindent 4 }}
  {{- $extraMounts := dig "extraVolumeMounts" list $v }}
  {{- if or $files $extraMounts }}
  volumeMounts:
    {{- /* Whole-directory mounts, never subPath: the kubelet only refreshes rotated Secrets in directories. */}}
    {{- range $files }}
    - name: {{ .volume }}
      mountPath: {{ .mountPath }}
      readOnly: true
    {{- end }}
    {{- with $extraMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end }}

{{/*
kafka-sidecar.volumes: the pod volumes the sidecar's Secret files come from, as items of a pod's volumes list
(nothing when no Secret is configured).
*/}}
{{- define "kafka-sidecar.volumes" -}}
{{- include "kafka-sidecar.volumeItems" . | trim }}
{{- end }}

{{/*
kafka-sidecar.volumeItems: the list behind kafka-sidecar.volumes, one item per Secret.
*/}}
{{- define "kafka-sidecar.volumeItems" -}}
{{- range include "kafka-sidecar.secretFiles" . | fromYamlArray }}
- name: {{ .volume }}
  secret:
    secretName: {{ .secretName | quote }}
    {{- /* World-readable inside the sidecar's own mount: the sidecar runs as a non-root user that does not own
    the files, and a parent chart's pod may set no fsGroup. No other container sees this mount. */}}
    defaultMode: 0444
    items:
      {{- range .items }}
      - key: {{ .key | quote }}
        path: {{ .path }}
      {{- end }}
{{- end }}
{{- end }}

{{/*
kafka-sidecar.image: the sidecar image reference. The tag defaults to the kafka-sidecar chart's appVersion,
found in the calling chart itself or in its dependency named by "chart".
*/}}
{{- define "kafka-sidecar.image" -}}
{{- $chartName := .chart | default "kafka-sidecar" }}
{{- $appVersion := "" }}
{{- if eq .context.Chart.Name $chartName }}
{{- $appVersion = .context.Chart.AppVersion }}
{{- else if hasKey (.context.Subcharts | default dict) $chartName }}
{{- $appVersion = (index .context.Subcharts $chartName).Chart.AppVersion }}
{{- end }}
{{- include "kafka-sidecar.imageRef" (list (dig "image" dict .values) $appVersion "sidecar.image") }}
{{- end }}

{{/*
kafka-sidecar.secretFiles: the existing Secrets the sidecar reads as files, as a YAML list of
{volume, secretName, mountPath, items: [{key, path, env}]}. Files get fixed names, so the SIDECAR_*_FILE paths
do not depend on the key names inside the Secrets.
*/}}
{{- define "kafka-sidecar.secretFiles" -}}
{{- $v := .values }}
{{- $sasl := dig "kafka" "sasl" "passwordSecret" dict $v }}
{{- $specs := list }}
{{- if ne (toString (dig "mountAsFile" true $sasl)) "false" }}
{{- $specs = append $specs (list "kafka-sasl" $sasl (list (list "key" "password" "SIDECAR_KAFKA_SASL_PASSWORD_FILE"))) }}
{{- end }}
{{- $ca := list (list "key" "ca.crt") }}
{{- $client := list (list "certKey" "tls.crt") (list "keyKey" "tls.key") }}
{{- range $prefix, $section := dict "kafka" (list "kafka" "tls") "redis" (list "redis" "tls") "app" (list "app" "tls") }}
{{- $tls := dig (index $section 0) (index $section 1) dict $v }}
{{- $env := printf "SIDECAR_%s_TLS" (upper $prefix) }}
{{- $specs = append $specs (list (printf "%s-tls-ca" $prefix) (dig "caSecret" dict $tls) (list (list "key" "ca.crt" (printf "%s_CA_FILE" $env)))) }}
{{- $specs = append $specs (list (printf "%s-tls-client" $prefix) (dig "clientSecret" dict $tls) (list (list "certKey" "tls.crt" (printf "%s_CERT_FILE" $env)) (list "keyKey" "tls.key" (printf "%s_KEY_FILE" $env)))) }}
{{- end }}
{{- $specs = append $specs (list "redis-password" (dig "redis" "passwordSecret" dict $v) (list (list "key" "password" "SIDECAR_REDIS_PASSWORD_FILE"))) }}
{{- $specs = append $specs (list "app-token" (dig "app" "authTokenSecret" dict $v) (list (list "key" "token" "SIDECAR_APP_AUTH_TOKEN_FILE"))) }}
{{- $specs = append $specs (list "schema-registry-password" (dig "schemaRegistry" "passwordSecret" dict $v) (list (list "key" "password" "SIDECAR_SCHEMA_REGISTRY_PASSWORD_FILE"))) }}
{{- $specs = append $specs (list "schema-registry-tls-ca" (dig "schemaRegistry" "tls" "caSecret" dict $v) (list (list "key" "ca.crt" "SIDECAR_SCHEMA_REGISTRY_TLS_CA_FILE"))) }}
{{- range $specs }}
{{- $id := index . 0 }}
{{- $ref := index . 1 }}
{{- if dig "name" "" $ref }}
- volume: kafka-sidecar-{{ $id }}
  secretName: {{ $ref.name | quote }}
  mountPath: /etc/kafka-sidecar/{{ $id }}
  items:
    {{- range index . 2 }}
    {{- $keyField := index . 0 }}
    - key: {{ required (printf "the %s of the %s Secret %q is required" $keyField $id $ref.name) (dig $keyField "" $ref) | quote }}
      path: {{ index . 1 }}
      env: {{ index . 2 }}
    {{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
kafka-sidecar.env: the sidecar's environment. A variable is rendered only when its value is set, so the
binary's defaults apply otherwise. Brokers, topics and group (and the Redis URL for Redis dedup) are required
unless a ConfigMap, Secret or other environment source may hold them.
*/}}
{{- define "kafka-sidecar.env" -}}
{{- $v := .values }}
{{- $sources := or (dig "configMap" "" $v) (dig "secret" "" $v) (dig "envFrom" list $v) }}
{{- if not $sources }}
{{- $missing := list }}
{{- range list "brokers" "topics" "group" }}
{{- if empty (dig "kafka" . "" $v) }}
{{- $missing = append $missing (printf "sidecar.kafka.%s" .) }}
{{- end }}
{{- end }}
{{- with $missing }}
{{- fail (printf "%s required: set them, or name a ConfigMap or Secret holding the SIDECAR_KAFKA_* variables in sidecar.configMap or sidecar.secret" (join ", " .)) }}
{{- end }}
{{- end }}
{{- $redisURLSecret := dig "redis" "urlSecret" dict $v }}
{{- if and (dig "redis" "url" "" $v) (dig "name" "" $redisURLSecret) }}
{{- fail "sidecar.redis.url and sidecar.redis.urlSecret both set the Redis URL: keep one" }}
{{- end }}
{{- if and (not $sources) (has (toString (dig "dedup" "mode" "" $v)) (list "" "redis")) (empty (dig "redis" "url" "" $v)) (empty (dig "name" "" $redisURLSecret)) }}
{{- fail "sidecar.redis.url (or sidecar.redis.urlSecret) is required while sidecar.dedup.mode is redis (the default)" }}
{{- end }}
{{- if and (not $sources) (eq (toString (dig "decode" "mode" "" $v)) "json") (empty (dig "schemaRegistry" "url" "" $v)) }}
{{- fail "sidecar.schemaRegistry.url is required while sidecar.decode.mode is json" }}
{{- end }}
{{- if and (not $sources) (ne (empty (dig "schemaRegistry" "username" "" $v)) (empty (dig "schemaRegistry" "passwordSecret" "name" "" $v))) }}
{{- fail "sidecar.schemaRegistry.username and sidecar.schemaRegistry.passwordSecret.name must be set together" }}
{{- end }}
{{- range list
  (list "SIDECAR_KAFKA_BROKERS" "kafka" "brokers")
  (list "SIDECAR_KAFKA_TOPICS" "kafka" "topics")
  (list "SIDECAR_KAFKA_GROUP" "kafka" "group")
  (list "SIDECAR_KAFKA_SESSION_TIMEOUT" "kafka" "sessionTimeout")
  (list "SIDECAR_KAFKA_START_OFFSET" "kafka" "startOffset")
  (list "SIDECAR_KAFKA_GROUP_PROTOCOL" "kafka" "groupProtocol")
  (list "SIDECAR_CREATE_TOPICS" "kafka" "createTopics")
  (list "SIDECAR_COMMIT_INTERVAL" "kafka" "commitInterval")
  (list "SIDECAR_MAX_BUFFERED_RECORDS" "kafka" "maxBufferedRecords")
  (list "SIDECAR_MAX_BUFFERED_BYTES" "kafka" "maxBufferedBytes")
  (list "SIDECAR_MAX_RECORD_BYTES" "kafka" "maxRecordBytes")
  (list "SIDECAR_REVOKE_TIMEOUT" "kafka" "revokeTimeout")
  (list "SIDECAR_KAFKA_SASL_MECHANISM" "kafka" "sasl" "mechanism")
  (list "SIDECAR_KAFKA_SASL_USERNAME" "kafka" "sasl" "username")
  (list "SIDECAR_KAFKA_TLS_ENABLED" "kafka" "tls" "enabled")
  (list "SIDECAR_KAFKA_TLS_MIN_VERSION" "kafka" "tls" "minVersion")
  (list "SIDECAR_KAFKA_TLS_SERVER_NAME" "kafka" "tls" "serverName")
  (list "SIDECAR_APP_URL" "app" "url")
  (list "SIDECAR_APP_TIMEOUT" "app" "timeout")
  (list "SIDECAR_APP_HEALTH_URL" "app" "healthUrl")
  (list "SIDECAR_APP_BACKOFF_MAX" "app" "backoffMax")
  (list "SIDECAR_APP_MAX_RESPONSE_BYTES" "app" "maxResponseBytes")
  (list "SIDECAR_DELIVERY" "delivery" "mode")
  (list "SIDECAR_ORDERING" "delivery" "ordering")
  (list "SIDECAR_MAX_IN_FLIGHT" "delivery" "maxInFlight")
  (list "SIDECAR_BATCH_MAX_RECORDS" "delivery" "batchMaxRecords")
  (list "SIDECAR_BATCH_MAX_WAIT" "delivery" "batchMaxWait")
  (list "SIDECAR_DEDUP" "dedup" "mode")
  (list "SIDECAR_ID_HEADER" "dedup" "idHeader")
  (list "SIDECAR_DEDUP_TTL" "dedup" "ttl")
  (list "SIDECAR_DEDUP_ID_TTL" "dedup" "idTtl")
  (list "SIDECAR_DEDUP_MEMORY_MAX_BYTES" "dedup" "memoryMaxBytes")
  (list "SIDECAR_DEDUP_KEY_PREFIX" "dedup" "keyPrefix")
  (list "SIDECAR_DEDUP_LEASE_MARGIN" "dedup" "leaseMargin")
  (list "SIDECAR_REDIS_URL" "redis" "url")
  (list "SIDECAR_DECODE" "decode" "mode")
  (list "SIDECAR_DECODE_KEYS" "decode" "keys")
  (list "SIDECAR_SCHEMA_REGISTRY_URL" "schemaRegistry" "url")
  (list "SIDECAR_SCHEMA_REGISTRY_USERNAME" "schemaRegistry" "username")
  (list "SIDECAR_CLOUDEVENTS" "cloudEvents" "mode")
  (list "SIDECAR_CLOUDEVENTS_TYPE" "cloudEvents" "type")
  (list "SIDECAR_RETRY_ATTEMPTS_IN_PLACE" "retry" "attemptsInPlace")
  (list "SIDECAR_RETRY_DELAYS" "retry" "delays")
  (list "SIDECAR_RETRY_BACKOFF" "retry" "backoff")
  (list "SIDECAR_RETRY_BACKOFF_MAX" "retry" "backoffMax")
  (list "SIDECAR_DLQ_TOPIC" "retry" "dlqTopic")
  (list "SIDECAR_LOG_LEVEL" "log" "level")
  (list "SIDECAR_LOG_FORMAT" "log" "format")
  (list "SIDECAR_SHUTDOWN_TIMEOUT" "shutdownTimeout")
  (list "SIDECAR_STALL_TIMEOUT" "stallTimeout")
  (list "SIDECAR_DOCTOR_STRICT" "doctor" "strict")
  (list "SIDECAR_PPROF" "pprof")
}}
{{- $value := $v }}
{{- range rest . }}
{{- if kindIs "map" $value }}
{{- $value = dig . nil $value }}
{{- else }}
{{- $value = nil }}
{{- end }}
{{- end }}
{{- include "kafka-sidecar.envVar" (list (first .) $value) }}
{{- end }}
{{- $instanceID := dig "kafka" "instanceId" "" $v }}
{{- if $instanceID }}
{{- include "kafka-sidecar.envVar" (list "SIDECAR_KAFKA_INSTANCE_ID" $instanceID) }}
{{- else if dig "kafka" "staticMembership" true $v }}
- name: SIDECAR_KAFKA_INSTANCE_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{- end }}
{{- $sasl := dig "kafka" "sasl" "passwordSecret" dict $v }}
{{- if and (dig "name" "" $sasl) (eq (toString (dig "mountAsFile" true $sasl)) "false") }}
- name: SIDECAR_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $sasl.name | quote }}
      key: {{ required "sidecar.kafka.sasl.passwordSecret.key is required" (dig "key" "" $sasl) | quote }}
{{- end }}
{{- if dig "name" "" $redisURLSecret }}
- name: SIDECAR_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $redisURLSecret.name | quote }}
      key: {{ required "sidecar.redis.urlSecret.key is required" (dig "key" "" $redisURLSecret) | quote }}
{{- end }}
{{- range .files }}
{{- $mountPath := .mountPath }}
{{- range .items }}
{{- include "kafka-sidecar.envVar" (list .env (printf "%s/%s" $mountPath .path)) }}
{{- end }}
{{- end }}
- name: SIDECAR_ADMIN_ADDR
  value: {{ printf ":%d" (int (dig "admin" "port" 9464 $v)) | quote }}
{{- $metricsPort := dig "metrics" "port" nil $v }}
{{- if not (kindIs "invalid" $metricsPort) }}
- name: SIDECAR_METRICS_ADDR
  value: {{ printf ":%d" (int $metricsPort) | quote }}
{{- end }}
{{- with dig "extraEnv" list $v }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
kafka-sidecar.envVar: one env item from (list NAME value), or nothing when the value is unset (null or "").
Lists are joined with commas, and an empty list is rendered as "" because it is a setting in its own right
(no retry topics). Numbers are printed as integers: YAML values files hand them over as floats.
*/}}
{{- define "kafka-sidecar.envVar" -}}
{{- $name := index . 0 }}
{{- $value := index . 1 }}
{{- if kindIs "slice" $value }}
{{- $value = join "," $value }}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) }}
{{- $value = int64 $value | toString }}
{{- else if kindIs "invalid" $value }}
{{- $value = "" }}
{{- else if eq (toString $value) "" }}
{{- $value = "" }}
{{- else }}
{{- $value = toString $value }}
{{- end }}
{{- if or (ne $value "") (kindIs "slice" (index . 1)) }}
- name: {{ $name }}
  value: {{ toJson $value }}
{{- end }}
{{- end }}
