{{/*
Names, labels and the settings shared by several templates.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "warren.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's objects: fullnameOverride, else
<release>-<name> (just <release> when it already contains the name).
Truncated to 63 characters: some Kubernetes name fields are DNS labels.
*/}}
{{- define "warren.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The namespace of every object. */}}
{{- define "warren.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* chart label value: name-version. */}}
{{- define "warren.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Selector labels of the warrend pods. Immutable once deployed: never add
commonLabels or anything release-dependent beyond the instance here. The
component label keeps other pods of the release (the test pod) out of the
Deployment's selector, which would otherwise adopt them.
*/}}
{{- define "warren.selectorLabels" -}}
app.kubernetes.io/name: {{ include "warren.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{/* Standard labels without the component (for objects of other components). */}}
{{- define "warren.baseLabels" -}}
helm.sh/chart: {{ include "warren.chart" . }}
app.kubernetes.io/name: {{ include "warren.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: warren
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Standard labels of the server's objects. */}}
{{- define "warren.labels" -}}
{{ include "warren.baseLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{/*
commonAnnotations merged with the given extra map (which wins), as YAML;
empty when there are none. Use:
  {{- with include "warren.annotations" (dict "context" $ "extra" $map) }}
  annotations: {{- . | nindent 4 }}
  {{- end }}
*/}}
{{- define "warren.annotations" -}}
{{- $all := merge (deepCopy (default (dict) .extra)) (deepCopy (default (dict) .context.Values.commonAnnotations)) -}}
{{- if $all -}}
{{- toYaml $all -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount the pods run as. */}}
{{- define "warren.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "warren.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* registry/repository:tag or @digest; global.imageRegistry wins. */}}
{{- define "warren.imageRef" -}}
{{- $registry := default .image.registry .global.imageRegistry -}}
{{- $ref := .image.repository -}}
{{- if $registry -}}
{{- $ref = printf "%s/%s" $registry $ref -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $ref .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref (toString (default .defaultTag .image.tag)) -}}
{{- end -}}
{{- end -}}

{{- define "warren.image" -}}
{{- include "warren.imageRef" (dict "image" .Values.image "global" .Values.global "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* The test pod's image: tests.image, else the warren image. */}}
{{- define "warren.testImage" -}}
{{- if .Values.tests.image.repository -}}
{{- include "warren.imageRef" (dict "image" .Values.tests.image "global" .Values.global "defaultTag" "latest") -}}
{{- else -}}
{{- include "warren.image" . -}}
{{- end -}}
{{- end -}}

{{/* imagePullSecrets entries (global ones first); empty when none. */}}
{{- define "warren.imagePullSecrets" -}}
{{- range (concat .Values.global.imagePullSecrets .Values.image.pullSecrets | uniq) }}
- name: {{ . }}
{{- end }}
{{- end -}}

{{/* Name of a bitnami subchart's objects (its common.names.fullname). */}}
{{- define "warren.dependencyFullname" -}}
{{- printf "%s-%s" .context.Release.Name .chart | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The ZooKeeper connect string: external, or the zookeeper subchart. */}}
{{- define "warren.zkConnect" -}}
{{- if .Values.zookeeper.enabled -}}
{{- printf "%s:2181" (include "warren.dependencyFullname" (dict "context" . "chart" "zookeeper")) -}}
{{- else -}}
{{- required "externalZookeeper.connect is required: the ZooKeeper connect string host:port[,host:port...] of your ensemble (or set zookeeper.enabled=true)" .Values.externalZookeeper.connect -}}
{{- end -}}
{{- end -}}

{{/*
Where WARREN_AMQP_URLS comes from (the URLs carry credentials): an existing
Secret, the chart's Secret, or the rabbitmq subchart. Fails with the message
users need when none is given.
*/}}
{{- define "warren.amqpSource" -}}
{{- if .Values.externalRabbitmq.existingSecret -}}
existing
{{- else if .Values.externalRabbitmq.urls -}}
chart
{{- else if .Values.rabbitmq.enabled -}}
subchart
{{- else -}}
{{- required "externalRabbitmq.urls (or externalRabbitmq.existingSecret) is required: the RabbitMQ URL(s) amqp://user:password@host:5672/ warrend connects to (or set rabbitmq.enabled=true)" "" -}}
{{- end -}}
{{- end -}}

{{/* The label that lets a pod through the NetworkPolicy (allowExternal=false). */}}
{{- define "warren.clientLabel" -}}
{{- printf "%s-client" (include "warren.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The Secret of the chart's own AMQP URLs. */}}
{{- define "warren.amqpSecretName" -}}
{{- printf "%s-amqp" (include "warren.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "warren.configPath" -}}/etc/warren/config/warrend.yaml{{- end -}}
{{- define "warren.amqpCaPath" -}}/etc/warren/amqp-ca/ca.crt{{- end -}}
{{- define "warren.tlsDir" -}}/etc/warren/tls{{- end -}}
{{- define "warren.authDir" -}}/etc/warren/auth{{- end -}}
{{- define "warren.authPolicyDir" -}}/etc/warren/auth-policy{{- end -}}
{{- define "warren.zkAuthDir" -}}/etc/warren/zk-auth{{- end -}}

{{/* The Secret with the tokens file: the user's, or the chart's from auth.tokens. */}}
{{- define "warren.authSecretName" -}}
{{- if .Values.auth.existingSecret -}}
{{- .Values.auth.existingSecret -}}
{{- else -}}
{{- printf "%s-auth" (include "warren.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The key of the tokens file in that Secret. */}}
{{- define "warren.authSecretKey" -}}
{{- if .Values.auth.existingSecret -}}{{ .Values.auth.existingSecretKey }}{{- else -}}tokens.yaml{{- end -}}
{{- end -}}

{{- define "warren.authPolicyName" -}}
{{- printf "%s-auth-policy" (include "warren.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "true" when warrend gets a tokens file, a policy file. */}}
{{- define "warren.authTokens" -}}
{{- if and .Values.auth.enabled (or .Values.auth.existingSecret .Values.auth.tokens) -}}true{{- end -}}
{{- end -}}
{{- define "warren.authPolicy" -}}
{{- if and .Values.auth.enabled .Values.auth.policy -}}true{{- end -}}
{{- end -}}

{{/*
The probe command when warrend serves TLS (native gRPC probes cannot):
warren-healthcheck against the pod's own port. It checks health, not the
certificate's identity (-tls-skip-verify); with clientAuth it presents the
pod's own certificate.
*/}}
{{- define "warren.tlsProbeCommand" -}}
- /usr/local/bin/warren-healthcheck
- {{ printf "-addr=127.0.0.1:%d" (int .Values.containerPorts.grpc) | quote }}
- -service=
- -tls
- -tls-skip-verify
{{- if .Values.tls.clientAuth }}
- {{ printf "-tls-cert=%s/%s" (include "warren.tlsDir" .) .Values.tls.certFilename | quote }}
- {{ printf "-tls-key=%s/%s" (include "warren.tlsDir" .) .Values.tls.keyFilename | quote }}
{{- end }}
{{- end -}}

{{/*
The settings warrend reads from its --config YAML file (the keys are flag
names; warrend rejects any other key), as YAML for the ConfigMap. A setting
also named in warren.extraFlags is left to the flag.
*/}}
{{- define "warren.fileSettings" -}}
{{- $w := .Values.warren -}}
{{- $s := dict
  "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.grpc))
  "zk_connect" (include "warren.zkConnect" .)
  "zk_session_timeout" $w.zkSessionTimeout
  "root" $w.root
  "amqp_heartbeat" $w.amqpHeartbeat
  "backend_wait" $w.backendWait
  "shutdown_grace" (printf "%ds" (int $w.shutdownGraceSeconds))
  "operation_timeout" $w.operationTimeout
  "heartbeat_interval" $w.heartbeatInterval
  "max_config_value_bytes" (int64 $w.maxConfigValueBytes)
  "max_message_bytes" (int64 $w.maxMessageBytes)
  "max_watches" (int64 $w.maxWatches)
  "max_concurrent_streams" (int64 $w.maxConcurrentStreams)
  "worker_threads" (int64 $w.workerThreads)
  "log_level" $w.logLevel
  "log_json" $w.logJson
-}}
{{- if .Values.externalRabbitmq.caSecret -}}
{{- $_ := set $s "amqp_ca_file" (include "warren.amqpCaPath" .) -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $dir := include "warren.tlsDir" . -}}
{{- $_ := set $s "tls_cert_file" (printf "%s/%s" $dir .Values.tls.certFilename) -}}
{{- $_ := set $s "tls_key_file" (printf "%s/%s" $dir .Values.tls.keyFilename) -}}
{{- $_ := set $s "tls_reload_interval" .Values.tls.reloadInterval -}}
{{- if .Values.tls.clientAuth -}}
{{- $_ := set $s "tls_client_ca_file" (printf "%s/%s" $dir .Values.tls.caFilename) -}}
{{- end -}}
{{- else -}}
{{/* Plaintext on the pod's every interface: an explicit opt-in. */}}
{{- $_ := set $s "allow_insecure_listen" true -}}
{{- end -}}
{{- if include "warren.authTokens" . -}}
{{- $_ := set $s "auth_tokens_file" (printf "%s/tokens.yaml" (include "warren.authDir" .)) -}}
{{- end -}}
{{- if include "warren.authPolicy" . -}}
{{- $_ := set $s "auth_policy_file" (printf "%s/policy.yaml" (include "warren.authPolicyDir" .)) -}}
{{- end -}}
{{- if .Values.auth.enabled -}}
{{- $_ := set $s "auth_reload_interval" .Values.auth.reloadInterval -}}
{{- end -}}
{{- if .Values.zookeeper.auth.existingSecret -}}
{{- $_ := set $s "zk_auth_file" (printf "%s/zk-auth" (include "warren.zkAuthDir" .)) -}}
{{- $_ := set $s "zk_acl_world_read" .Values.zookeeper.auth.worldRead -}}
{{- end -}}
{{- if .Values.metrics.enabled -}}
{{- /* On the pod's addresses, for Prometheus: warrend wants the opt-in. */ -}}
{{- $_ := set $s "metrics_listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.metrics)) -}}
{{- $_ := set $s "metrics_allow_remote" true -}}
{{- end -}}
{{- range $name, $_ := $w.extraFlags -}}
{{- $_ := unset $s $name -}}
{{- end -}}
{{- toYaml $s -}}
{{- end -}}

{{/*
The settings warrend accepts only as flags (its YAML file and environment do
not know them) merged with warren.extraFlags (which win), as one
"--name=value" per line, sorted by name.
*/}}
{{- define "warren.flagSettings" -}}
{{- $w := .Values.warren -}}
{{- $f := dict
  "max_payload_bytes" (int64 $w.maxPayloadBytes)
  "max_header_bytes" (int64 $w.maxHeaderBytes)
  "publish_window" (int64 $w.publishWindow)
  "default_max_in_flight" (int64 $w.defaultMaxInFlight)
  "max_in_flight_cap" (int64 $w.maxInFlightCap)
  "publish_config_changes" $w.publishConfigChanges
  "config_change_exchange" $w.configChangeExchange
-}}
{{- $f = merge (deepCopy $w.extraFlags) $f -}}
{{- range $i, $name := keys $f | sortAlpha -}}
{{- if $i }}{{ "\n" }}{{ end -}}
{{- $v := index $f $name -}}
{{- if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) -}}
{{- $v = int64 $v -}}
{{- end -}}
--{{ $name }}={{ $v }}
{{- end -}}
{{- end -}}

{{/* terminationGracePeriodSeconds: explicit, or the drain deadline + 15s. */}}
{{- define "warren.terminationGracePeriodSeconds" -}}
{{- $grace := int .Values.warren.shutdownGraceSeconds -}}
{{- if ne (toString .Values.terminationGracePeriodSeconds) "" -}}
{{- $explicit := int .Values.terminationGracePeriodSeconds -}}
{{- if le $explicit $grace -}}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be longer than warren.shutdownGraceSeconds (%d): Kubernetes would kill warrend before its streams drain" $explicit $grace) -}}
{{- end -}}
{{- $explicit -}}
{{- else -}}
{{- add $grace 15 -}}
{{- end -}}
{{- end -}}

{{/* Rejects values the binary cannot serve yet. Included by the Deployment. */}}
{{- define "warren.validateValues" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- fail "tls.enabled needs tls.existingSecret: the Secret with the server certificate (tls.certFilename) and key (tls.keyFilename)" -}}
{{- end -}}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.enabled=true" -}}
{{- end -}}
{{- if and .Values.zookeeper.enabled .Values.externalZookeeper.connect -}}
{{- fail "set either zookeeper.enabled or externalZookeeper.connect, not both" -}}
{{- end -}}
{{- $a := .Values.auth -}}
{{- if and $a.enabled (not (or $a.existingSecret $a.tokens)) (not (and $a.policy .Values.tls.enabled .Values.tls.clientAuth)) -}}
{{- fail "auth.enabled needs bearer tokens (auth.tokens or auth.existingSecret), or a policy (auth.policy) for the client certificates of tls.clientAuth: otherwise no caller could authenticate" -}}
{{- end -}}
{{- if and (not $a.enabled) (or $a.existingSecret $a.tokens $a.policy) -}}
{{- fail "auth.tokens, auth.existingSecret or auth.policy is set but auth.enabled is false: warrend would let every caller do everything" -}}
{{- end -}}
{{- if and .Values.zookeeper.auth.worldRead (not .Values.zookeeper.auth.existingSecret) -}}
{{- fail "zookeeper.auth.worldRead needs zookeeper.auth.existingSecret (without digest credentials Warren's nodes are open anyway)" -}}
{{- end -}}
{{- end -}}

{{/* Renders a value that may contain template expressions (bitnami's common.tplvalues.render). */}}
{{- define "warren.tplvalues" -}}
{{- $text := .value -}}
{{- if not (typeIs "string" $text) -}}
{{- $text = toYaml .value -}}
{{- end -}}
{{- regexReplaceAll "\\s+$" (tpl $text .context) "" -}}
{{- end -}}
