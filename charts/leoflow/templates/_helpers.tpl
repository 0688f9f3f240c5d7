{{/* Names, labels and the checks every template relies on. */}}

{{- define "leoflow.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "leoflow.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "leoflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "leoflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "leoflow.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "leoflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "leoflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "leoflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "leoflow.taskNamespace" -}}
{{- default .Release.Namespace .Values.executor.taskNamespace -}}
{{- end -}}

{{- define "leoflow.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "leoflow.datastoreSecret" -}}
{{- default (printf "%s-datastores" (include "leoflow.fullname" .)) .Values.database.existingSecret -}}
{{- end -}}

{{- define "leoflow.redisSecret" -}}
{{- default (printf "%s-datastores" (include "leoflow.fullname" .)) .Values.redis.existingSecret -}}
{{- end -}}

{{- define "leoflow.appSecret" -}}
{{- default (printf "%s-secrets" (include "leoflow.fullname" .)) .Values.existingSecret -}}
{{- end -}}

{{- define "leoflow.grpcTlsSecret" -}}
{{- default (printf "%s-grpc-tls" (include "leoflow.fullname" .)) .Values.agentTLS.secretName -}}
{{- end -}}

{{- define "leoflow.grpcCaConfigMap" -}}
{{- default (printf "%s-grpc-ca" (include "leoflow.fullname" .)) .Values.agentTLS.caConfigMap -}}
{{- end -}}

{{/* Refuse to render without external datastores: embedded ones are Lite-only. */}}
{{- define "leoflow.validate" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) -}}
{{- fail "database.url (or database.existingSecret) is required: Leoflow Pro needs an external PostgreSQL 13+; embedded datastores are Lite-only (use `leoflow lite`). Example: --set database.url=postgresql://leoflow:PASS@db:5432/leoflow?sslmode=verify-full" -}}
{{- end -}}
{{- if not (or .Values.redis.url .Values.redis.existingSecret) -}}
{{- fail "redis.url (or redis.existingSecret) is required: Leoflow Pro needs an external Redis 6+; embedded datastores are Lite-only (use `leoflow lite`). Example: --set redis.url=rediss://cache:6380/0" -}}
{{- end -}}
{{- if and (not .Values.existingSecret) (not .Values.bootstrap.password) (not (lookup "v1" "Secret" .Release.Namespace (include "leoflow.appSecret" .))) -}}
{{- fail "bootstrap.password is required on the first install (the first admin's password), or set existingSecret with key bootstrap-password" -}}
{{- end -}}
{{- end -}}

{{/* A value kept across upgrades: the given one, else the one already stored, else random. */}}
{{- define "leoflow.keptSecretValue" -}}
{{- $given := index . 0 -}}{{- $existing := index . 1 -}}{{- $key := index . 2 -}}
{{- if $given -}}
{{- $given | b64enc -}}
{{- else if and $existing (hasKey $existing.data $key) -}}
{{- index $existing.data $key -}}
{{- else -}}
{{- randAlphaNum 64 | b64enc -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the server and the migrations Job. */}}
{{- define "leoflow.datastoreEnv" -}}
- name: LEOFLOW_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "leoflow.datastoreSecret" . }}
      key: {{ .Values.database.existingSecretKey }}
- name: LEOFLOW_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "leoflow.redisSecret" . }}
      key: {{ .Values.redis.existingSecretKey }}
- name: LEOFLOW_HOME
  value: /var/lib/leoflow
{{- if .Values.database.caConfigMap }}
- name: PGSSLROOTCERT
  value: /etc/leoflow/ca/postgres/ca.crt
{{- end }}
{{- if .Values.redis.caConfigMap }}
- name: LEOFLOW_REDIS_CA_FILE
  value: /etc/leoflow/ca/redis/ca.crt
{{- end }}
{{- end -}}

{{- define "leoflow.caVolumeMounts" -}}
- name: home
  mountPath: /var/lib/leoflow
- name: tmp
  mountPath: /tmp
{{- if .Values.database.caConfigMap }}
- name: postgres-ca
  mountPath: /etc/leoflow/ca/postgres
  readOnly: true
{{- end }}
{{- if .Values.redis.caConfigMap }}
- name: redis-ca
  mountPath: /etc/leoflow/ca/redis
  readOnly: true
{{- end }}
{{- end -}}

{{- define "leoflow.caVolumes" -}}
- name: home
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- if .Values.database.caConfigMap }}
- name: postgres-ca
  configMap:
    name: {{ .Values.database.caConfigMap }}
{{- end }}
{{- if .Values.redis.caConfigMap }}
- name: redis-ca
  configMap:
    name: {{ .Values.redis.caConfigMap }}
{{- end }}
{{- end -}}
