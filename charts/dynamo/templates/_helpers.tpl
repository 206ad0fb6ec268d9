{{/*
Names and labels shared by the chart's templates.
*/}}

{{/* The chart name, shortened to a DNS label. */}}
{{- define "dynamo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name, with the chart
name appended unless the release name already contains it.
*/}}
{{- define "dynamo.fullname" -}}
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

{{/* The operator's objects: "<fullname>-operator". */}}
{{- define "dynamo.operatorName" -}}
{{- printf "%s-operator" (include "dynamo.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "dynamo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object shares. */}}
{{- define "dynamo.commonLabels" -}}
helm.sh/chart: {{ include "dynamo.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dynamo
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of the chart's objects that are not the operator's. */}}
{{- define "dynamo.labels" -}}
app.kubernetes.io/name: {{ include "dynamo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "dynamo.commonLabels" . }}
{{- end }}

{{/*
Selector labels of the operator's pods. Their name is always "dynamo-operator"
(nameOverride does not change it), never "dynamo": the storage pods the
operator creates carry app.kubernetes.io/name=dynamo,
app.kubernetes.io/instance=<cluster> and app.kubernetes.io/component=node, the
operator selects and watches its objects by name=dynamo, and a DynamoCluster
named like the release must not select the operator's pods.
*/}}
{{- define "dynamo.operatorSelectorLabels" -}}
app.kubernetes.io/name: dynamo-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "dynamo.operatorLabels" -}}
{{ include "dynamo.operatorSelectorLabels" . }}
{{ include "dynamo.commonLabels" . }}
{{- end }}

{{/*
Selector labels of the storage pods and their Services, as the operator sets
them (operator/reconciler/objects.cc; tests/packaging/golden/ holds what it
renders, and check-packaging checks these selectors against it).
*/}}
{{- define "dynamo.nodeSelectorLabels" -}}
app.kubernetes.io/name: dynamo
app.kubernetes.io/component: node
{{- end }}

{{- define "dynamo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dynamo.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The namespace whose DynamoClusters the operator watches (namespaced mode). */}}
{{- define "dynamo.watchNamespace" -}}
{{- default .Release.Namespace .Values.operator.watchNamespace }}
{{- end }}

{{- define "dynamo.leaseName" -}}
{{- default (printf "%s-leader" (include "dynamo.fullname" .)) .Values.operator.leaderElection.leaseName }}
{{- end }}

{{- define "dynamo.leaderElection" -}}
{{- if or .Values.operator.leaderElection.enabled (gt (int .Values.operator.replicas) 1) }}true{{ end }}
{{- end }}

{{- define "dynamo.operatorImage" -}}
{{- $img := .Values.operator.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/*
Relabelings of the storage nodes' scrape: the dashboards select by
dynamo_cluster (the DynamoCluster's name, from the pod label
app.kubernetes.io/instance) and group by instance (the pod name).
*/}}
{{- define "dynamo.nodeRelabelings" -}}
- action: replace
  sourceLabels: [__meta_kubernetes_pod_label_app_kubernetes_io_instance]
  targetLabel: dynamo_cluster
- action: replace
  sourceLabels: [__meta_kubernetes_pod_name]
  targetLabel: instance
{{- end }}
