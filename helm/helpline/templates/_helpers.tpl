{{/* Name of a service's objects: <release>-<service>. */}}
{{- define "helpline.fullname" -}}
{{- printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries. */}}
{{- define "helpline.labels" -}}
app.kubernetes.io/name: helpline-{{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
app.kubernetes.io/part-of: helpline
app.kubernetes.io/version: {{ .root.Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Labels that select a service's pods. */}}
{{- define "helpline.selectorLabels" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end -}}

{{/* gRPC target of a stage for the gateway: DNS of the headless Service, round robin. */}}
{{- define "helpline.stageTarget" -}}
{{- $svc := index .root.Values.services .name -}}
{{- printf "dns:///%s.%s.svc.cluster.local:%v" (include "helpline.fullname" .) .root.Release.Namespace $svc.grpcPort -}}
{{- end -}}

{{/* The Secret with the API key hashes (and an external Redis URL). */}}
{{- define "helpline.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else -}}
{{- printf "%s-gateway-keys" .Release.Name -}}
{{- end -}}
{{- end -}}
