{{/* Labels of every object (as config/default's kustomization adds them). */}}
{{- define "rolesync.partOf" -}}
app.kubernetes.io/part-of: rolesync
{{- end }}

{{/* The manager pods' selector labels. */}}
{{- define "rolesync.selector" -}}
app.kubernetes.io/component: manager
app.kubernetes.io/name: rolesync
{{- end }}

{{/* The manager image: the digest when set, else the tag. */}}
{{- define "rolesync.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end }}

{{/* An optional flag: --name=value when value is set. */}}
{{- define "rolesync.flag" -}}
{{- if ne (toString .value) "" }}
- --{{ .name }}={{ .value }}
{{- end }}
{{- end }}
