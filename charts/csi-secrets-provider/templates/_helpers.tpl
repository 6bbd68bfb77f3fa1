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
{{- $available := ternary (list "aws" "azure" "gcp") (list $flavour) (eq $flavour "all") -}}
{{- $backends := .Values.backends | default $available -}}
{{- range $backends -}}
{{- if not (has . $available) -}}
{{- fail (printf "backend '%s' is not in the '%s' image flavour; use image.flavour=all or %s" . $flavour .) -}}
{{- end -}}
{{- end -}}
{{- join "," $backends -}}
{{- end -}}

{{/* The image: by digest when image.digest is set (the tag is then only for people), else
     <repository>:<tag>-<flavour>. */}}
{{- define "csp.image" -}}
{{- $tag := printf "%s-%s" (.Values.image.tag | default .Chart.AppVersion) .Values.image.flavour -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* gracePeriod (e.g. 25s, 1m, 500ms) in whole seconds, rounded up, plus 5s to remove the
     sockets and exit after the drain. */}}
{{- define "csp.terminationGracePeriodSeconds" -}}
{{- $grace := .Values.gracePeriod -}}
{{- $n := regexFind "^[0-9]+" $grace | int64 -}}
{{- $seconds := $n -}}
{{- if hasSuffix "ms" $grace -}}
{{- $seconds = div (add $n 999) 1000 -}}
{{- else if hasSuffix "m" $grace -}}
{{- $seconds = mul $n 60 -}}
{{- end -}}
{{- add $seconds 5 -}}
{{- end -}}
