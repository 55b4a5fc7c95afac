{{/* Names and labels shared by the templates. */}}

{{- define "flinklet-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flinklet-operator.fullname" -}}
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

{{- define "flinklet-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "flinklet-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flinklet-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels of every object, without the component. */}}
{{- define "flinklet-operator.commonLabels" -}}
helm.sh/chart: {{ include "flinklet-operator.chart" . }}
app.kubernetes.io/name: {{ include "flinklet-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: flinklet
{{- end }}

{{/* Labels of the operator's own objects. */}}
{{- define "flinklet-operator.labels" -}}
{{ include "flinklet-operator.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "flinklet-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "flinklet-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "flinklet-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when leader election is on: forced, or "auto" with more than one replica. */}}
{{- define "flinklet-operator.leaderElection" -}}
{{- $mode := toString .Values.leaderElection.enabled }}
{{- if eq $mode "true" }}true
{{- else if eq $mode "false" }}false
{{- else if gt (int .Values.replicaCount) 1 }}true
{{- else }}false
{{- end }}
{{- end }}

{{- define "flinklet-operator.leaseName" -}}
{{- default (include "flinklet-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/* The namespaces the job ServiceAccount goes to: the watched ones, or the release's. */}}
{{- define "flinklet-operator.jobNamespaces" -}}
{{- if .Values.watchNamespaces }}
{{- join "," .Values.watchNamespaces }}
{{- else }}
{{- .Release.Namespace }}
{{- end }}
{{- end }}
