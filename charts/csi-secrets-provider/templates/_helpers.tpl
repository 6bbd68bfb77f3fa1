{{- define "csp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "csp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "csp.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "csp.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "csp.labels" -}}
app.kubernetes.io/name: {{ include "csp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "csp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "csp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "csp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "csp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The backends served: the explicit list, else every backend of the flavour. Fails on a
     backend the flavour's image does not contain. */}}
{{- define "csp.backends" -}}
{{- $flavour := .Values.image.flavour -}}
{{- $available := ternary (list "aws" "azure") (list $flavour) (eq $flavour "all") -}}
{{- $backends := .Values.backends | default $available -}}
{{- range $backends -}}
{{- if not (has . $available) -}}
{{- fail (printf "backend '%s' is not in the '%s' image flavour; use image.flavour=all or %s" . $flavour .) -}}
{{- end -}}
{{- end -}}
{{- join "," $backends -}}
{{- end -}}
