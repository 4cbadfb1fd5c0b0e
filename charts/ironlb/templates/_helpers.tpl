{{/*
Labels on every object: the install contract's name and part-of, plus Helm's usual ones.
*/}}
{{- define "ironlb.labels" -}}
app.kubernetes.io/name: ironlb
app.kubernetes.io/part-of: ironlb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of a component's pods. Kept to the contract's two labels, without the release,
so they match the kustomize install and the speaker's default --peer-selector
(app.kubernetes.io/component=speaker). Call with (dict "component" "controller").
*/}}
{{- define "ironlb.selectorLabels" -}}
app.kubernetes.io/name: ironlb
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
A component's labels: the common ones plus app.kubernetes.io/component.
Call with (dict "ctx" $ "component" "controller").
*/}}
{{- define "ironlb.componentLabels" -}}
{{ include "ironlb.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
A component's image reference; the tag defaults to the chart's appVersion.
Call with (dict "ctx" $ "image" .Values.controller.image).
*/}}
{{- define "ironlb.image" -}}
{{ .image.repository }}:{{ .image.tag | default .ctx.Chart.AppVersion }}
{{- end }}

{{/*
The rules of one Role or ClusterRole, read from the copy of controller-gen's output in files/
(make chart-sync), so the chart never retypes them. The file holds several YAML documents.
Call with (dict "ctx" $ "file" "files/controller-role.yaml" "kind" "ClusterRole").
*/}}
{{- define "ironlb.rules" -}}
{{- $content := .ctx.Files.Get .file }}
{{- if not $content }}
{{- fail (printf "%s is missing from the chart: run `make chart-sync`" .file) }}
{{- end }}
{{- $rules := list }}
{{- $found := false }}
{{- range $doc := regexSplit "(?m)^---[ \t]*$" $content -1 }}
{{- if trim $doc }}
{{- $obj := fromYaml $doc }}
{{- if hasKey $obj "Error" }}
{{- fail (printf "parse %s: %s" $.file $obj.Error) }}
{{- end }}
{{- if eq $obj.kind $.kind }}
{{- $rules = $obj.rules }}
{{- $found = true }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "%s holds no %s: run `make chart-sync`" .file .kind) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}
