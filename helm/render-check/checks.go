package main

// The assertions of the render check, per rendered value set (Case) and on
// the chart's own files (CheckChartStatic).

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io/ioutil"
	"math/big"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ---- generic access to decoded YAML ----

func get(v interface{}, keys ...string) interface{} {
	for _, k := range keys {
		m, ok := v.(map[string]interface{})
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v interface{}, keys ...string) string {
	s, _ := get(v, keys...).(string)
	return s
}

func mapAt(v interface{}, keys ...string) map[string]interface{} {
	m, _ := get(v, keys...).(map[string]interface{})
	return m
}

func listAt(v interface{}, keys ...string) []interface{} {
	l, _ := get(v, keys...).([]interface{})
	return l
}

func num(v interface{}, keys ...string) (float64, bool) {
	f, ok := get(v, keys...).(float64)
	return f, ok
}

func boolAt(v interface{}, keys ...string) (bool, bool) {
	b, ok := get(v, keys...).(bool)
	return b, ok
}

func truthy(v interface{}) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	case float64:
		return x != 0
	case map[string]interface{}:
		return len(x) > 0
	case []interface{}:
		return len(x) > 0
	}
	return true
}

func stringMap(m map[string]interface{}) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = fmt.Sprint(v)
	}
	return out
}

// subset reports whether every key of a is in b with the same value.
func subset(a, b map[string]string) bool {
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// plain prints a decoded YAML scalar as written (no 1e+06 for numbers).
func plain(v interface{}) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

// parseDuration reads absl-style durations (10s, 1m30s, 500ms).
func parseDuration(s string) (time.Duration, error) { return time.ParseDuration(s) }

// ---- per value set ----

// Case is one rendered value set.
type Case struct {
	Name    string
	Values  map[string]interface{}
	Docs    []Doc
	Notes   string
	Release Release
	Chart   *Chart
	Known   *WarrendOptions
}

func (c *Case) v(keys ...string) interface{} { return get(c.Values, keys...) }

func (c *Case) find(kind string) []Doc {
	var out []Doc
	for _, d := range c.Docs {
		if d.Kind() == kind {
			out = append(out, d)
		}
	}
	return out
}

func (c *Case) fullname() string {
	if s := str(c.Values, "fullnameOverride"); s != "" {
		return trunc63(s)
	}
	name := c.Chart.Metadata.Name
	if s := str(c.Values, "nameOverride"); s != "" {
		name = s
	}
	if strings.Contains(c.Release.Name, name) {
		return trunc63(c.Release.Name)
	}
	return trunc63(c.Release.Name + "-" + name)
}

func trunc63(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.TrimSuffix(s, "-")
}

func (c *Case) namespace() string {
	if s := str(c.Values, "namespaceOverride"); s != "" {
		return s
	}
	return c.Release.Namespace
}

func (c *Case) selectorLabels() map[string]string {
	name := c.Chart.Metadata.Name
	if s := str(c.Values, "nameOverride"); s != "" {
		name = s
	}
	return map[string]string{
		"app.kubernetes.io/name":      name,
		"app.kubernetes.io/instance":  c.Release.Name,
		"app.kubernetes.io/component": "server",
	}
}

// CheckAll runs every assertion on the case.
func (c *Case) CheckAll(r *Report) {
	c.checkObjectsPresent(r)
	c.checkMetadata(r)
	dep := c.one(r, "Deployment")
	if dep == nil {
		return
	}
	pod := mapAt(dep.Obj, "spec", "template")
	podLabels := stringMap(mapAt(pod, "metadata", "labels"))
	c.checkDeployment(r, dep, podLabels)
	c.checkSecurity(r, "Deployment", mapAt(pod, "spec"))
	c.checkServerConfig(r, dep)
	c.checkAuth(r, dep)
	c.checkServices(r, podLabels)
	c.checkOptional(r, dep, podLabels)
	c.checkTestPod(r, dep)
	c.checkNotes(r)
}

func (c *Case) one(r *Report, kind string) *Doc {
	docs := c.find(kind)
	if !r.Check(len(docs) == 1, c.Name, "want exactly one %s, have %d", kind, len(docs)) {
		return nil
	}
	return &docs[0]
}

// Each optional object is present exactly when its switch is on, and no
// unexpected kind appears.
func (c *Case) checkObjectsPresent(r *Report) {
	existingAmqp := truthy(c.v("externalRabbitmq", "existingSecret"))
	chartSecret := !existingAmqp && truthy(c.v("externalRabbitmq", "urls"))
	metrics := truthy(c.v("metrics", "enabled"))
	auth := truthy(c.v("auth", "enabled"))
	authSecret := auth && truthy(c.v("auth", "tokens")) && !truthy(c.v("auth", "existingSecret"))
	authPolicy := auth && truthy(c.v("auth", "policy"))
	want := map[string]int{
		"Deployment":              1,
		"ConfigMap":               1 + b2i(authPolicy),
		"Service":                 1 + b2i(truthy(c.v("service", "headless", "enabled"))),
		"Secret":                  b2i(chartSecret) + b2i(authSecret),
		"ServiceAccount":          b2i(truthy(c.v("serviceAccount", "create"))),
		"PodDisruptionBudget":     b2i(truthy(c.v("pdb", "create"))),
		"HorizontalPodAutoscaler": b2i(truthy(c.v("autoscaling", "enabled"))),
		"ServiceMonitor":          b2i(metrics && truthy(c.v("metrics", "serviceMonitor", "enabled"))),
		"NetworkPolicy":           b2i(truthy(c.v("networkPolicy", "enabled"))),
		"Pod":                     b2i(truthy(c.v("tests", "enabled"))),
	}
	have := map[string]int{}
	for _, d := range c.Docs {
		have[d.Kind()]++
	}
	for kind, n := range want {
		r.Check(have[kind] == n, c.Name, "%s: want %d, rendered %d", kind, n, have[kind])
	}
	for kind := range have {
		_, ok := want[kind]
		r.Check(ok, c.Name, "unexpected kind %s", kind)
	}
	// Names are unique per kind.
	seen := map[string]bool{}
	for _, d := range c.Docs {
		key := d.Kind() + "/" + d.Name()
		r.Check(!seen[key], c.Name, "duplicate object %s", key)
		seen[key] = true
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
var dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// Standard labels on every object; names valid; namespace the release's.
func (c *Case) checkMetadata(r *Report) {
	name := c.Chart.Metadata.Name
	if s := str(c.Values, "nameOverride"); s != "" {
		name = s
	}
	want := map[string]string{
		"helm.sh/chart":                c.Chart.Metadata.Name + "-" + c.Chart.Metadata.Version,
		"app.kubernetes.io/name":       name,
		"app.kubernetes.io/instance":   c.Release.Name,
		"app.kubernetes.io/version":    c.Chart.Metadata.AppVersion,
		"app.kubernetes.io/managed-by": "Helm",
		"app.kubernetes.io/part-of":    "warren",
	}
	for k, v := range stringMap(mapAt(c.Values, "commonLabels")) {
		want[k] = v
	}
	common := stringMap(mapAt(c.Values, "commonAnnotations"))
	for _, d := range c.Docs {
		id := d.Kind() + "/" + d.Name()
		r.Check(str(d.Obj, "apiVersion") != "" && d.Kind() != "" && d.Name() != "", c.Name, "%s: apiVersion, kind and metadata.name are required", d.Source)
		labels := stringMap(mapAt(d.Obj, "metadata", "labels"))
		for k, v := range want {
			r.Check(labels[k] == v, c.Name, "%s: label %s=%q, want %q", id, k, labels[k], v)
		}
		r.Check(labels["app.kubernetes.io/component"] != "", c.Name, "%s: no app.kubernetes.io/component label", id)
		annotations := stringMap(mapAt(d.Obj, "metadata", "annotations"))
		r.Check(subset(common, annotations), c.Name, "%s: commonAnnotations missing", id)
		if d.Kind() == "Service" {
			r.Check(len(d.Name()) <= 63 && dnsLabel.MatchString(d.Name()), c.Name, "%s: Service name must be a DNS label", id)
		} else {
			r.Check(len(d.Name()) <= 253 && dnsSubdomain.MatchString(d.Name()), c.Name, "%s: name must be a DNS subdomain", id)
		}
		ns := str(d.Obj, "metadata", "namespace")
		if d.Kind() == "ServiceMonitor" && str(c.Values, "metrics", "serviceMonitor", "namespace") != "" {
			r.Check(ns == str(c.Values, "metrics", "serviceMonitor", "namespace"), c.Name, "%s: namespace %q", id, ns)
		} else {
			r.Check(ns == c.namespace(), c.Name, "%s: namespace %q, want %q", id, ns, c.namespace())
		}
		for k, v := range labels {
			r.Check(len(v) <= 63, c.Name, "%s: label %s value longer than 63", id, k)
		}
	}
}

func (c *Case) checkDeployment(r *Report, dep *Doc, podLabels map[string]string) {
	sel := stringMap(mapAt(dep.Obj, "spec", "selector", "matchLabels"))
	r.Check(reflect.DeepEqual(sel, c.selectorLabels()), c.Name, "Deployment selector %v, want exactly %v", sel, c.selectorLabels())
	r.Check(subset(sel, podLabels), c.Name, "Deployment selector %v does not select its pod labels %v", sel, podLabels)
	r.Check(str(dep.Obj, "metadata", "name") == c.fullname(), c.Name, "Deployment name %q, want %q", dep.Name(), c.fullname())

	_, hasReplicas := get(dep.Obj, "spec", "replicas").(float64)
	if truthy(c.v("autoscaling", "enabled")) {
		r.Check(!hasReplicas, c.Name, "spec.replicas must be absent while the HPA scales")
	} else {
		n, _ := num(dep.Obj, "spec", "replicas")
		want, _ := num(c.Values, "replicaCount")
		r.Check(hasReplicas && n == want, c.Name, "spec.replicas %v, want replicaCount %v", n, want)
	}
	r.Check(str(dep.Obj, "spec", "strategy", "type") == str(c.Values, "updateStrategy", "type"), c.Name, "strategy type")

	spec := mapAt(dep.Obj, "spec", "template", "spec")
	ann := stringMap(mapAt(dep.Obj, "spec", "template", "metadata", "annotations"))
	r.Check(regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(ann["checksum/config"]), c.Name, "pod template lacks checksum/config (config changes must roll the pods)")

	// ServiceAccount wiring.
	sa := str(spec, "serviceAccountName")
	if truthy(c.v("serviceAccount", "create")) {
		sas := c.find("ServiceAccount")
		r.Check(len(sas) == 1 && sas[0].Name() == sa, c.Name, "pod runs as %q, which the chart does not create", sa)
	} else {
		want := str(c.Values, "serviceAccount", "name")
		if want == "" {
			want = "default"
		}
		r.Check(sa == want, c.Name, "serviceAccountName %q, want %q", sa, want)
	}
	automount, ok := boolAt(spec, "automountServiceAccountToken")
	r.Check(ok && automount == truthy(c.v("serviceAccount", "automountServiceAccountToken")), c.Name, "automountServiceAccountToken must follow the value")

	// Topology spread selects the pods.
	tsc := listAt(spec, "topologySpreadConstraints")
	if truthy(c.v("topologySpread", "enabled")) || truthy(c.v("topologySpreadConstraints")) {
		r.Check(len(tsc) > 0, c.Name, "topologySpreadConstraints missing")
	} else {
		r.Check(len(tsc) == 0, c.Name, "topologySpreadConstraints present while switched off")
	}
	for _, t := range tsc {
		ml := stringMap(mapAt(t, "labelSelector", "matchLabels"))
		r.Check(len(ml) > 0 && subset(ml, podLabels), c.Name, "topology spread selector %v does not select the pods", ml)
		r.Check(str(t, "topologyKey") != "", c.Name, "topology spread without topologyKey")
	}

	// Image: repository:tag with the appVersion by default, or a digest.
	ctr := c.container(dep)
	img := str(ctr, "image")
	tag := fmt.Sprint(c.v("image", "tag"))
	if d := str(c.Values, "image", "digest"); d != "" {
		r.Check(strings.HasSuffix(img, "@"+d), c.Name, "image %q does not use the digest", img)
	} else if tag == "" || tag == "<nil>" {
		r.Check(strings.HasSuffix(img, ":"+c.Chart.Metadata.AppVersion), c.Name, "image %q should default to the appVersion tag", img)
	}
	if reg := str(c.Values, "global", "imageRegistry"); reg != "" {
		r.Check(strings.HasPrefix(img, reg+"/"), c.Name, "image %q ignores global.imageRegistry", img)
	}
}

func (c *Case) container(dep *Doc) map[string]interface{} {
	for _, x := range listAt(dep.Obj, "spec", "template", "spec", "containers") {
		if str(x, "name") == "warrend" {
			m, _ := x.(map[string]interface{})
			return m
		}
	}
	return nil
}

// Non-root, read-only root filesystem, no privilege escalation, all
// capabilities dropped, seccomp RuntimeDefault; no host namespaces.
func (c *Case) checkSecurity(r *Report, what string, podSpec map[string]interface{}) {
	psc := mapAt(podSpec, "securityContext")
	nonRoot, _ := boolAt(psc, "runAsNonRoot")
	uid, hasUID := num(psc, "runAsUser")
	r.Check(nonRoot && hasUID && uid > 0, c.Name, "%s: pod securityContext must run as a non-root uid: %v", what, psc)
	r.Check(str(psc, "seccompProfile", "type") == "RuntimeDefault", c.Name, "%s: pod seccompProfile must be RuntimeDefault", what)
	for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		b, _ := boolAt(podSpec, k)
		r.Check(!b, c.Name, "%s: %s must not be set", what, k)
	}
	for _, x := range listAt(podSpec, "containers") {
		name := str(x, "name")
		sc := mapAt(x, "securityContext")
		ro, _ := boolAt(sc, "readOnlyRootFilesystem")
		esc, escSet := boolAt(sc, "allowPrivilegeEscalation")
		priv, _ := boolAt(sc, "privileged")
		nr, _ := boolAt(sc, "runAsNonRoot")
		r.Check(ro, c.Name, "%s/%s: readOnlyRootFilesystem must be true", what, name)
		r.Check(escSet && !esc, c.Name, "%s/%s: allowPrivilegeEscalation must be false", what, name)
		r.Check(!priv, c.Name, "%s/%s: must not be privileged", what, name)
		r.Check(nr, c.Name, "%s/%s: runAsNonRoot must be true", what, name)
		dropsAll := false
		for _, d := range listAt(sc, "capabilities", "drop") {
			if d == "ALL" {
				dropsAll = true
			}
		}
		r.Check(dropsAll, c.Name, "%s/%s: capabilities.drop must contain ALL", what, name)
		r.Check(len(listAt(sc, "capabilities", "add")) == 0, c.Name, "%s/%s: no capabilities may be added", what, name)
		r.Check(str(sc, "seccompProfile", "type") == "RuntimeDefault", c.Name, "%s/%s: seccompProfile must be RuntimeDefault", what, name)
	}
}

// serverConfig is what warrend would be started with.
type serverConfig struct {
	File     map[string]interface{} // the --config YAML (ConfigMap)
	FileText string
	Args     []string
	Env      []interface{}
}

func (c *Case) serverConfig(dep *Doc) (*serverConfig, string) {
	ctr := c.container(dep)
	sc := &serverConfig{Env: listAt(ctr, "env")}
	for _, a := range listAt(ctr, "args") {
		sc.Args = append(sc.Args, fmt.Sprint(a))
	}
	var configPath string
	for _, a := range sc.Args {
		if strings.HasPrefix(a, "--config=") {
			configPath = strings.TrimPrefix(a, "--config=")
		}
	}
	cm := c.configMap()
	if cm == nil {
		return sc, configPath
	}
	sc.FileText = str(cm.Obj, "data", path.Base(configPath))
	_ = yaml.Unmarshal([]byte(sc.FileText), &sc.File)
	return sc, configPath
}

// configMap is warrend's settings ConfigMap (named like the release; the
// auth policy has one of its own).
func (c *Case) configMap() *Doc {
	for _, cm := range c.find("ConfigMap") {
		if cm.Name() == c.fullname() {
			return &cm
		}
	}
	return nil
}

// Ports, probes, flags, config file and environment agree with warrend.
func (c *Case) checkServerConfig(r *Report, dep *Doc) {
	ctr := c.container(dep)
	if !r.Check(ctr != nil, c.Name, "no container named warrend") {
		return
	}
	sc, configPath := c.serverConfig(dep)

	// --config points at the mounted ConfigMap key.
	r.Check(configPath != "", c.Name, "warrend gets no --config")
	mounted := false
	for _, m := range listAt(ctr, "volumeMounts") {
		if str(m, "mountPath") == path.Dir(configPath) {
			for _, v := range listAt(dep.Obj, "spec", "template", "spec", "volumes") {
				if str(v, "name") == str(m, "name") && c.configMap() != nil && str(v, "configMap", "name") == c.configMap().Name() {
					mounted = true
				}
			}
		}
	}
	r.Check(mounted, c.Name, "--config=%s is not the mounted ConfigMap", configPath)
	r.Check(sc.File != nil, c.Name, "ConfigMap has no YAML under key %s", path.Base(configPath))

	// Every file key is one warrend's YAML file accepts (it exits on others).
	for k := range sc.File {
		r.Check(c.Known.Settings[k], c.Name, "config file key %q is not a setting warrend's --config accepts (a flag of options.cc)", k)
	}
	// Every flag exists; no setting is given twice.
	seen := map[string]bool{}
	for _, a := range sc.Args {
		m := regexp.MustCompile(`^--([a-z0-9_]+)=(.*)$`).FindStringSubmatch(a)
		if !r.Check(m != nil, c.Name, "arg %q is not --name=value", a) {
			continue
		}
		r.Check(c.Known.Flags[m[1]], c.Name, "arg --%s is not a warrend flag (options.cc)", m[1])
		r.Check(!seen[m[1]], c.Name, "flag --%s given twice", m[1])
		_, inFile := sc.File[m[1]]
		r.Check(!inFile, c.Name, "--%s is both a flag and a config file key", m[1])
		seen[m[1]] = true
	}
	// Environment: WARREN_* variables are settings; the AMQP URLs come from
	// a Secret, never a literal.
	amqpFromSecret := false
	defined := map[string]bool{}
	for _, e := range sc.Env {
		name := str(e, "name")
		if strings.HasPrefix(name, "WARREN_") {
			r.Check(c.Known.Settings[strings.ToLower(strings.TrimPrefix(name, "WARREN_"))], c.Name, "env %s is not a warrend setting", name)
		}
		if name == "WARREN_AMQP_URLS" {
			if ref := mapAt(e, "valueFrom", "secretKeyRef"); ref != nil {
				amqpFromSecret = str(ref, "name") != "" && str(ref, "key") != ""
				c.checkAmqpSecretRef(r, str(ref, "name"), str(ref, "key"))
			} else {
				// Subchart mode: the password is spliced in from a Secret.
				val := str(e, "value")
				m := regexp.MustCompile(`\$\((\w+)\)`).FindStringSubmatch(val)
				amqpFromSecret = m != nil && defined[m[1]]
				r.Check(truthy(c.v("rabbitmq", "enabled")), c.Name, "WARREN_AMQP_URLS is a literal outside subchart mode")
			}
		}
		if ref := mapAt(e, "valueFrom", "secretKeyRef"); ref != nil {
			defined[name] = true
		}
	}
	r.Check(amqpFromSecret, c.Name, "WARREN_AMQP_URLS must come from a Secret")
	_, urlsInFile := sc.File["amqp_urls"]
	r.Check(!urlsInFile, c.Name, "amqp_urls (credentials) must not be in the ConfigMap")

	// The listen port, the container port, the probes.
	grpcPort := -1
	for _, p := range listAt(ctr, "ports") {
		if str(p, "name") == "grpc" {
			f, _ := num(p, "containerPort")
			grpcPort = int(f)
		}
	}
	r.Check(grpcPort > 0, c.Name, "no container port named grpc")
	// TLS from the mounted Secret, or the explicit plaintext opt-in
	// (warrend refuses plaintext on 0.0.0.0 without it).
	if truthy(c.v("tls", "enabled")) {
		r.Check(fmt.Sprint(sc.File["tls_cert_file"]) == "/etc/warren/tls/"+fmt.Sprint(c.v("tls", "certFilename")) &&
			fmt.Sprint(sc.File["tls_key_file"]) == "/etc/warren/tls/"+fmt.Sprint(c.v("tls", "keyFilename")),
			c.Name, "tls.enabled: tls_cert_file/tls_key_file must name the mounted Secret's files, got %v %v", sc.File["tls_cert_file"], sc.File["tls_key_file"])
		_, ca := sc.File["tls_client_ca_file"]
		r.Check(ca == truthy(c.v("tls", "clientAuth")), c.Name, "tls_client_ca_file set=%v, tls.clientAuth=%v", ca, c.v("tls", "clientAuth"))
		_, insecure := sc.File["allow_insecure_listen"]
		r.Check(!insecure, c.Name, "allow_insecure_listen must not be set with tls.enabled")
		mounted := false
		for _, m := range listAt(ctr, "volumeMounts") {
			if str(m, "mountPath") == "/etc/warren/tls" {
				mounted = get(m, "subPath") == nil
			}
		}
		r.Check(mounted, c.Name, "tls.enabled: the Secret must be mounted whole (no subPath) at /etc/warren/tls, so renewals reach warrend")
	} else {
		r.Check(fmt.Sprint(sc.File["allow_insecure_listen"]) == "true", c.Name, "plaintext on 0.0.0.0 needs allow_insecure_listen: true in the config file (warrend refuses to start otherwise)")
	}
	listen := fmt.Sprint(sc.File["listen"])
	r.Check(listen == fmt.Sprintf("0.0.0.0:%d", grpcPort), c.Name, "listen %q does not match the grpc container port %d", listen, grpcPort)
	want, _ := num(c.Values, "containerPorts", "grpc")
	r.Check(grpcPort == int(want), c.Name, "grpc container port %d, want containerPorts.grpc %v", grpcPort, want)

	hasMetricsPort := false
	metricsPort := -1
	for _, p := range listAt(ctr, "ports") {
		if str(p, "name") == "metrics" {
			hasMetricsPort = true
			f, _ := num(p, "containerPort")
			metricsPort = int(f)
		}
	}
	r.Check(hasMetricsPort == truthy(c.v("metrics", "enabled")), c.Name, "metrics container port present=%v, metrics.enabled=%v", hasMetricsPort, c.v("metrics", "enabled"))
	// warrend serves metrics on that port, on the pod's addresses (which
	// needs metrics_allow_remote), exactly when they are enabled.
	metricsListen, listens := sc.File["metrics_listen"]
	if _, overridden := mapAt(c.Values, "warren", "extraFlags")["metrics_listen"]; !overridden {
		r.Check(listens == hasMetricsPort, c.Name, "metrics_listen set=%v, metrics.enabled=%v", listens, c.v("metrics", "enabled"))
		if hasMetricsPort {
			r.Check(fmt.Sprint(metricsListen) == fmt.Sprintf("0.0.0.0:%d", metricsPort), c.Name, "metrics_listen %v does not match the metrics container port %d", metricsListen, metricsPort)
			r.Check(sc.File["metrics_allow_remote"] == true, c.Name, "metrics_listen on 0.0.0.0 needs metrics_allow_remote: true (warrend refuses otherwise)")
		}
	}

	for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
		custom := "custom" + strings.ToUpper(probe[:1]) + probe[1:]
		p := mapAt(ctr, probe)
		if truthy(c.v(custom)) {
			r.Check(p != nil, c.Name, "%s: %s set but no probe rendered", probe, custom)
			continue
		}
		enabled := truthy(c.v(probe, "enabled"))
		if !r.Check((p != nil) == enabled, c.Name, "%s present=%v, enabled=%v", probe, p != nil, enabled) || p == nil {
			continue
		}
		if truthy(c.v("tls", "enabled")) {
			// Native gRPC probes speak plaintext only: warren-healthcheck
			// over TLS on the pod's own port.
			var parts []string
			for _, a := range listAt(p, "exec", "command") {
				parts = append(parts, fmt.Sprint(a))
			}
			cmd := strings.Join(parts, " ")
			r.Check(strings.HasPrefix(cmd, "/usr/local/bin/warren-healthcheck ") &&
				strings.Contains(cmd, fmt.Sprintf("-addr=127.0.0.1:%d", grpcPort)) &&
				strings.Contains(cmd, " -tls ") && strings.Contains(cmd, " -service= "),
				c.Name, "%s: with tls.enabled, want warren-healthcheck -tls on port %d, got %q", probe, grpcPort, cmd)
			r.Check(strings.Contains(cmd, "-tls-cert=") == truthy(c.v("tls", "clientAuth")), c.Name,
				"%s: presents a client certificate exactly when tls.clientAuth: %q", probe, cmd)
		} else {
			port, _ := num(p, "grpc", "port")
			r.Check(int(port) == grpcPort, c.Name, "%s: native gRPC probe on port %v, want %d", probe, port, grpcPort)
			svc, hasSvc := get(p, "grpc", "service").(string)
			r.Check(hasSvc && svc == "", c.Name, "%s: must ask the whole server's health (service \"\")", probe)
		}
		handlers := 0
		for _, h := range []string{"grpc", "httpGet", "tcpSocket", "exec"} {
			if get(p, h) != nil {
				handlers++
			}
		}
		r.Check(handlers == 1, c.Name, "%s: %d handlers", probe, handlers)
		if probe != "readinessProbe" {
			s, _ := num(p, "successThreshold")
			r.Check(s == 1, c.Name, "%s: successThreshold must be 1", probe)
		}
	}
	// The startup probe's window covers warrend's wait for its backends.
	if sp := mapAt(ctr, "startupProbe"); sp != nil && !truthy(c.v("customStartupProbe")) {
		wait, err := parseDuration(fmt.Sprint(sc.File["backend_wait"]))
		period, _ := num(sp, "periodSeconds")
		fails, _ := num(sp, "failureThreshold")
		delay, _ := num(sp, "initialDelaySeconds")
		window := time.Duration(delay+period*fails) * time.Second
		r.Check(err == nil && window > wait, c.Name, "startup probe window %v must exceed backend_wait %v", window, sc.File["backend_wait"])
	}

	// terminationGracePeriodSeconds outlasts the drain.
	grace, err := parseDuration(fmt.Sprint(sc.File["shutdown_grace"]))
	tgp, ok := num(dep.Obj, "spec", "template", "spec", "terminationGracePeriodSeconds")
	r.Check(err == nil && ok && time.Duration(tgp)*time.Second > grace, c.Name,
		"terminationGracePeriodSeconds %v must exceed shutdown_grace %v", tgp, sc.File["shutdown_grace"])
	if gs, ok := num(c.Values, "warren", "shutdownGraceSeconds"); ok {
		r.Check(grace == time.Duration(gs)*time.Second, c.Name, "shutdown_grace %v, want warren.shutdownGraceSeconds %v", grace, gs)
	}

	// Values reach warrend unchanged (no float formatting such as 1.048576e+06).
	intSettings := map[string]string{
		"max_config_value_bytes": "maxConfigValueBytes", "max_message_bytes": "maxMessageBytes",
		"max_watches": "maxWatches", "max_concurrent_streams": "maxConcurrentStreams", "worker_threads": "workerThreads",
	}
	extra := mapAt(c.Values, "warren", "extraFlags")
	for name, v := range extra {
		want := fmt.Sprint(v)
		if f, ok := v.(float64); ok {
			want = strconv.FormatInt(int64(f), 10)
		}
		found := false
		for _, a := range sc.Args {
			found = found || a == "--"+name+"="+want
		}
		r.Check(found, c.Name, "extraFlags %s=%v not passed as --%s=%s", name, v, name, want)
	}
	for key, val := range intSettings {
		if _, overridden := extra[key]; overridden {
			continue
		}
		want, _ := num(c.Values, "warren", val)
		r.Check(plain(sc.File[key]) == strconv.FormatInt(int64(want), 10), c.Name, "%s: %v, want %d", key, plain(sc.File[key]), int64(want))
	}
	flagInts := map[string]string{
		"max_payload_bytes": "maxPayloadBytes", "max_header_bytes": "maxHeaderBytes", "publish_window": "publishWindow",
		"default_max_in_flight": "defaultMaxInFlight", "max_in_flight_cap": "maxInFlightCap",
	}
	for flagName, val := range flagInts {
		if _, overridden := extra[flagName]; overridden {
			continue
		}
		want, _ := num(c.Values, "warren", val)
		found := false
		for _, a := range sc.Args {
			if a == fmt.Sprintf("--%s=%d", flagName, int64(want)) {
				found = true
			}
		}
		r.Check(found, c.Name, "--%s=%d not among the args %v", flagName, int64(want), sc.Args)
	}
	// The CA bundle for amqps:// is mounted where amqp_ca_file points.
	if ca := str(c.Values, "externalRabbitmq", "caSecret"); ca != "" {
		caFile := fmt.Sprint(sc.File["amqp_ca_file"])
		ok := false
		for _, m := range listAt(ctr, "volumeMounts") {
			if str(m, "mountPath") == path.Dir(caFile) {
				for _, v := range listAt(dep.Obj, "spec", "template", "spec", "volumes") {
					if str(v, "name") == str(m, "name") && str(v, "secret", "secretName") == ca {
						for _, it := range listAt(v, "secret", "items") {
							if str(it, "path") == path.Base(caFile) {
								ok = true
							}
						}
					}
				}
			}
		}
		r.Check(ok, c.Name, "amqp_ca_file %q is not the mounted caSecret %q", caFile, ca)
	}
}

// mountedFrom returns the volume mounted (whole: no subPath) at dir and the
// path, below dir, of the file that its item `key` becomes.
func (c *Case) mountedFrom(dep *Doc, dir string) (volume map[string]interface{}, items map[string]string) {
	ctr := c.container(dep)
	for _, m := range listAt(ctr, "volumeMounts") {
		if str(m, "mountPath") != dir || get(m, "subPath") != nil {
			continue
		}
		for _, v := range listAt(dep.Obj, "spec", "template", "spec", "volumes") {
			if str(v, "name") == str(m, "name") {
				items = map[string]string{}
				for _, kind := range []string{"secret", "configMap"} {
					for _, it := range listAt(v, kind, "items") {
						items[str(it, "key")] = str(it, "path")
					}
				}
				return v.(map[string]interface{}), items
			}
		}
	}
	return nil, nil
}

// Authentication files and ZooKeeper credentials: each setting names a file
// of a volume mounted whole (edits reach warrend, which re-reads them) from
// the right Secret or ConfigMap, holding what the values say.
func (c *Case) checkAuth(r *Report, dep *Doc) {
	sc, _ := c.serverConfig(dep)
	auth := truthy(c.v("auth", "enabled"))
	existing := str(c.Values, "auth", "existingSecret")
	wantTokens := auth && (existing != "" || truthy(c.v("auth", "tokens")))
	wantPolicy := auth && truthy(c.v("auth", "policy"))
	tokensFile, hasTokens := sc.File["auth_tokens_file"]
	policyFile, hasPolicy := sc.File["auth_policy_file"]
	r.Check(hasTokens == wantTokens, c.Name, "auth_tokens_file set=%v, want %v", hasTokens, wantTokens)
	r.Check(hasPolicy == wantPolicy, c.Name, "auth_policy_file set=%v, want %v", hasPolicy, wantPolicy)
	_, hasReload := sc.File["auth_reload_interval"]
	r.Check(hasReload == auth, c.Name, "auth_reload_interval set=%v, auth.enabled=%v", hasReload, auth)
	if hasTokens {
		f := fmt.Sprint(tokensFile)
		v, items := c.mountedFrom(dep, path.Dir(f))
		secretName := str(v, "secret", "secretName")
		key := ""
		for k, p := range items {
			if p == path.Base(f) {
				key = k
			}
		}
		if existing != "" {
			r.Check(secretName == existing && key == str(c.Values, "auth", "existingSecretKey"), c.Name,
				"auth_tokens_file %s must be key %s of the mounted auth.existingSecret %s, is %s/%s", f, str(c.Values, "auth", "existingSecretKey"), existing, secretName, key)
		} else {
			var doc *Doc
			for _, s := range c.find("Secret") {
				if s.Name() == secretName {
					s := s
					doc = &s
				}
			}
			if r.Check(doc != nil && key != "", c.Name, "auth_tokens_file %s is not a key of a chart Secret mounted whole (secret %q, key %q)", f, secretName, key) {
				raw, err := secretText(doc, key)
				var got map[string]interface{}
				_ = yaml.Unmarshal([]byte(raw), &got)
				want := map[string]interface{}{"tokens": c.v("auth", "tokens")}
				r.Check(err == nil && reflect.DeepEqual(jsonRound(got), jsonRound(want)), c.Name,
					"the chart's tokens Secret holds %q, want the tokens of auth.tokens", raw)
			}
		}
	}
	if hasPolicy {
		f := fmt.Sprint(policyFile)
		v, _ := c.mountedFrom(dep, path.Dir(f))
		name := str(v, "configMap", "name")
		var got map[string]interface{}
		found := false
		for _, cm := range c.find("ConfigMap") {
			if cm.Name() == name && name != c.fullname() {
				found = yaml.Unmarshal([]byte(str(cm.Obj, "data", path.Base(f))), &got) == nil
			}
		}
		want := map[string]interface{}{"principals": c.v("auth", "policy")}
		r.Check(found && reflect.DeepEqual(jsonRound(got), jsonRound(want)), c.Name,
			"auth_policy_file %s must be the mounted policy ConfigMap %q holding auth.policy, holds %v", f, name, got)
	}
	zkSecret := str(c.Values, "zookeeper", "auth", "existingSecret")
	zkFile, hasZk := sc.File["zk_auth_file"]
	r.Check(hasZk == (zkSecret != ""), c.Name, "zk_auth_file set=%v, zookeeper.auth.existingSecret=%q", hasZk, zkSecret)
	if hasZk {
		f := fmt.Sprint(zkFile)
		v, items := c.mountedFrom(dep, path.Dir(f))
		key := str(c.Values, "zookeeper", "auth", "existingSecretKey")
		r.Check(str(v, "secret", "secretName") == zkSecret && items[key] == path.Base(f), c.Name,
			"zk_auth_file %s must be key %s of the mounted Secret %s (mounted whole)", f, key, zkSecret)
		r.Check(sc.File["zk_acl_world_read"] == truthy(c.v("zookeeper", "auth", "worldRead")), c.Name,
			"zk_acl_world_read %v, want zookeeper.auth.worldRead", sc.File["zk_acl_world_read"])
	}
	// Nothing about auth rides on the pod's checksum annotations: an
	// edited tokens Secret or policy must not restart every replica.
	ann := stringMap(mapAt(dep.Obj, "spec", "template", "metadata", "annotations"))
	for k := range ann {
		r.Check(!strings.Contains(k, "auth-"), c.Name, "annotation %s would restart the pods on an auth edit", k)
	}
}

// secretText is a Secret's key, from stringData or (base64) data.
func secretText(s *Doc, key string) (string, error) {
	if v, ok := get(s.Obj, "stringData", key).(string); ok {
		return v, nil
	}
	raw, err := base64.StdEncoding.DecodeString(str(s.Obj, "data", key))
	return string(raw), err
}

// jsonRound normalizes decoded YAML for comparison (numbers, map types).
func jsonRound(v interface{}) interface{} {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out interface{}
	_ = json.Unmarshal(b, &out)
	return out
}

// The referenced Secret: the chart's (holding exactly the URLs) or the
// user's existing one.
func (c *Case) checkAmqpSecretRef(r *Report, name, key string) {
	if ex := str(c.Values, "externalRabbitmq", "existingSecret"); ex != "" {
		r.Check(name == ex && key == str(c.Values, "externalRabbitmq", "existingSecretKey"), c.Name,
			"WARREN_AMQP_URLS must read existingSecret %s/%s, reads %s/%s", ex, str(c.Values, "externalRabbitmq", "existingSecretKey"), name, key)
		return
	}
	var urls []string
	for _, u := range listAt(c.Values, "externalRabbitmq", "urls") {
		urls = append(urls, fmt.Sprint(u))
	}
	for _, s := range c.find("Secret") {
		if s.Name() == name {
			raw, err := base64.StdEncoding.DecodeString(str(s.Obj, "data", key))
			r.Check(err == nil && string(raw) == strings.Join(urls, ","), c.Name, "Secret %s/%s does not hold the URLs", name, key)
			return
		}
	}
	r.Fail(c.Name, "WARREN_AMQP_URLS reads Secret %s, which the chart does not render", name)
}

// Services select the pods, target the named container ports and expose
// metrics exactly when switched on.
func (c *Case) checkServices(r *Report, podLabels map[string]string) {
	for _, s := range c.find("Service") {
		sel := stringMap(mapAt(s.Obj, "spec", "selector"))
		r.Check(reflect.DeepEqual(sel, c.selectorLabels()), c.Name, "Service %s selector %v, want %v", s.Name(), sel, c.selectorLabels())
		r.Check(subset(sel, podLabels), c.Name, "Service %s does not select the pods", s.Name())
		ports := map[string]map[string]interface{}{}
		for _, p := range listAt(s.Obj, "spec", "ports") {
			m, _ := p.(map[string]interface{})
			ports[str(m, "name")] = m
		}
		g := ports["grpc"]
		want, _ := num(c.Values, "service", "ports", "grpc")
		port, _ := num(g, "port")
		r.Check(g != nil && int(port) == int(want) && fmt.Sprint(g["targetPort"]) == "grpc" && str(g, "appProtocol") == "grpc",
			c.Name, "Service %s: grpc port %v -> %v, want %v -> grpc (appProtocol grpc)", s.Name(), port, g["targetPort"], want)
		headless := str(s.Obj, "spec", "clusterIP") == "None"
		if headless {
			r.Check(s.Name() == trunc63(c.fullname()+"-headless"), c.Name, "headless Service name %s", s.Name())
			r.Check(ports["metrics"] == nil, c.Name, "the headless Service must not expose metrics (a ServiceMonitor would scrape twice)")
		} else {
			r.Check(s.Name() == c.fullname(), c.Name, "Service name %s, want %s", s.Name(), c.fullname())
			r.Check((ports["metrics"] != nil) == truthy(c.v("metrics", "enabled")), c.Name, "Service metrics port present=%v, metrics.enabled=%v", ports["metrics"] != nil, c.v("metrics", "enabled"))
			if m := ports["metrics"]; m != nil {
				r.Check(fmt.Sprint(m["targetPort"]) == "metrics", c.Name, "metrics targetPort %v", m["targetPort"])
			}
			r.Check(str(s.Obj, "spec", "type") == str(c.Values, "service", "type"), c.Name, "Service type")
		}
	}
}

func (c *Case) checkOptional(r *Report, dep *Doc, podLabels map[string]string) {
	sel := c.selectorLabels()
	for _, p := range c.find("PodDisruptionBudget") {
		ml := stringMap(mapAt(p.Obj, "spec", "selector", "matchLabels"))
		r.Check(reflect.DeepEqual(ml, sel) && subset(ml, podLabels), c.Name, "PDB selector %v, want %v", ml, sel)
		_, hasMin := p.Obj["spec"].(map[string]interface{})["minAvailable"]
		_, hasMax := p.Obj["spec"].(map[string]interface{})["maxUnavailable"]
		r.Check(hasMin != hasMax, c.Name, "PDB needs exactly one of minAvailable and maxUnavailable")
		if !truthy(c.v("autoscaling", "enabled")) {
			if mv, ok := num(p.Obj, "spec", "minAvailable"); ok {
				rc, _ := num(c.Values, "replicaCount")
				r.Check(mv < rc, c.Name, "PDB minAvailable %v blocks every eviction with %v replicas", mv, rc)
			}
		}
	}
	for _, h := range c.find("HorizontalPodAutoscaler") {
		r.Check(str(h.Obj, "apiVersion") == "autoscaling/v2", c.Name, "HPA must be autoscaling/v2")
		r.Check(str(h.Obj, "spec", "scaleTargetRef", "kind") == "Deployment" && str(h.Obj, "spec", "scaleTargetRef", "name") == dep.Name() &&
			str(h.Obj, "spec", "scaleTargetRef", "apiVersion") == "apps/v1", c.Name, "HPA does not target the Deployment")
		mn, _ := num(h.Obj, "spec", "minReplicas")
		mx, _ := num(h.Obj, "spec", "maxReplicas")
		r.Check(mn >= 1 && mn <= mx, c.Name, "HPA replicas %v..%v", mn, mx)
		r.Check(len(listAt(h.Obj, "spec", "metrics")) > 0, c.Name, "HPA without metrics")
	}
	for _, sm := range c.find("ServiceMonitor") {
		ml := stringMap(mapAt(sm.Obj, "spec", "selector", "matchLabels"))
		matched := 0
		for _, s := range c.find("Service") {
			if subset(ml, stringMap(mapAt(s.Obj, "metadata", "labels"))) {
				for _, p := range listAt(s.Obj, "spec", "ports") {
					if str(p, "name") == "metrics" {
						matched++
					}
				}
			}
		}
		r.Check(matched == 1, c.Name, "ServiceMonitor selects %d Services with a metrics port, want 1", matched)
		names := listAt(sm.Obj, "spec", "namespaceSelector", "matchNames")
		r.Check(len(names) == 1 && names[0] == c.namespace(), c.Name, "ServiceMonitor namespaceSelector %v", names)
		eps := listAt(sm.Obj, "spec", "endpoints")
		r.Check(len(eps) == 1 && str(eps[0], "port") == "metrics" && str(eps[0], "path") == str(c.Values, "metrics", "path"), c.Name, "ServiceMonitor endpoints %v", eps)
	}
	for _, np := range c.find("NetworkPolicy") {
		ml := stringMap(mapAt(np.Obj, "spec", "podSelector", "matchLabels"))
		r.Check(reflect.DeepEqual(ml, sel), c.Name, "NetworkPolicy podSelector %v, want %v", ml, sel)
		grpcPort, _ := num(c.Values, "containerPorts", "grpc")
		grpcAllowed := false
		var grpcRule interface{}
		for _, rule := range listAt(np.Obj, "spec", "ingress") {
			for _, p := range listAt(rule, "ports") {
				if n, _ := num(p, "port"); int(n) == int(grpcPort) {
					grpcAllowed = true
					grpcRule = rule
				}
			}
		}
		r.Check(grpcAllowed, c.Name, "NetworkPolicy does not admit the grpc port %v", grpcPort)
		if !truthy(c.v("networkPolicy", "allowExternal")) && grpcRule != nil && truthy(c.v("tests", "enabled")) {
			tp := c.find("Pod")
			admitted := false
			if len(tp) == 1 {
				tl := stringMap(mapAt(tp[0].Obj, "metadata", "labels"))
				for _, from := range listAt(grpcRule, "from") {
					if pl := stringMap(mapAt(from, "podSelector", "matchLabels")); len(pl) > 0 && get(from, "namespaceSelector") == nil && subset(pl, tl) {
						admitted = true
					}
				}
			}
			r.Check(admitted, c.Name, "the NetworkPolicy keeps the helm test pod out")
		}
		if !truthy(c.v("networkPolicy", "allowExternalEgress")) {
			ports := map[int]bool{}
			for _, rule := range listAt(np.Obj, "spec", "egress") {
				r.Check(len(mapAt(rule)) > 0, c.Name, "egress rule allows everything while allowExternalEgress=false")
				for _, p := range listAt(rule, "ports") {
					n, _ := num(p, "port")
					ports[int(n)] = true
				}
			}
			zk, _ := num(c.Values, "externalZookeeper", "port")
			need := []int{53, int(zk)}
			for _, p := range listAt(c.Values, "externalRabbitmq", "ports") {
				need = append(need, int(p.(float64)))
			}
			for _, p := range need {
				r.Check(ports[p], c.Name, "egress does not allow port %d (DNS, ZooKeeper, RabbitMQ)", p)
			}
		}
		if truthy(c.v("metrics", "enabled")) {
			mp, _ := num(c.Values, "containerPorts", "metrics")
			ok := false
			for _, rule := range listAt(np.Obj, "spec", "ingress") {
				for _, p := range listAt(rule, "ports") {
					if n, _ := num(p, "port"); int(n) == int(mp) {
						ok = true
					}
				}
			}
			r.Check(ok, c.Name, "NetworkPolicy does not admit the metrics port")
		}
	}
	for _, s := range c.find("Secret") {
		r.Check(str(s.Obj, "type") == "Opaque", c.Name, "Secret %s type", s.Name())
	}
}

// The helm test pod: a test hook, outside the Deployment's selector, asking
// the Service's grpc port for health.
func (c *Case) checkTestPod(r *Report, dep *Doc) {
	for _, p := range c.find("Pod") {
		ann := stringMap(mapAt(p.Obj, "metadata", "annotations"))
		r.Check(ann["helm.sh/hook"] == "test", c.Name, "test pod lacks helm.sh/hook: test")
		r.Check(strings.Contains(ann["helm.sh/hook-delete-policy"], "before-hook-creation"), c.Name, "test pod must be replaced on re-runs (before-hook-creation)")
		labels := stringMap(mapAt(p.Obj, "metadata", "labels"))
		sel := stringMap(mapAt(dep.Obj, "spec", "selector", "matchLabels"))
		r.Check(!subset(sel, labels), c.Name, "the test pod matches the Deployment's selector (its ReplicaSet would adopt it)")
		r.Check(str(p.Obj, "spec", "restartPolicy") == "Never", c.Name, "test pod restartPolicy must be Never")
		c.checkSecurity(r, "test Pod", mapAt(p.Obj, "spec"))
		ctrs := listAt(p.Obj, "spec", "containers")
		if !r.Check(len(ctrs) == 1, c.Name, "test pod containers: %d", len(ctrs)) {
			continue
		}
		cmd := listAt(ctrs[0], "command")
		r.Check(len(cmd) == 1 && cmd[0] == "/usr/local/bin/warren-healthcheck", c.Name, "test pod command %v", cmd)
		want := fmt.Sprintf("-addr=%s.%s.svc:%d", c.fullname(), c.namespace(), int(c.v("service", "ports", "grpc").(float64)))
		found := false
		for _, a := range listAt(ctrs[0], "args") {
			if a == want {
				found = true
			}
		}
		r.Check(found, c.Name, "test pod must check %s; args %v", want, listAt(ctrs[0], "args"))
	}
}

func (c *Case) checkNotes(r *Report) {
	r.Check(strings.Contains(c.Notes, c.fullname()+"."+c.namespace()+".svc:"), c.Name, "NOTES.txt does not tell clients the Service address")
	r.Check(!strings.Contains(c.Notes, "<no value>") && !strings.Contains(c.Notes, "%!"), c.Name, "NOTES.txt has unrendered values")
	if truthy(c.v("metrics", "enabled")) {
		r.Check(strings.Contains(c.Notes, fmt.Sprint(c.v("metrics", "path"))), c.Name, "NOTES.txt must tell where the metrics are served")
	}
}

// RunWarrend starts the real warrend with the rendered config file, args and
// settings env (backends replaced by closed loopback ports, backend_wait
// 1ms): warrend must accept everything and fail only at connecting.
func (c *Case) RunWarrend(r *Report, bin, outDir string) {
	deps := c.find("Deployment")
	if len(deps) != 1 {
		return
	}
	sc, _ := c.serverConfig(&deps[0])
	// Files the pod gets from mounted Secrets (/etc/warren/...) are made
	// under outDir, valid PEM, so that warrend's start-up check of them
	// passes and the run stops only at connecting.
	fileText := sc.FileText
	mountRoot := filepath.Join(outDir, c.Name+".mounts")
	for name, v := range sc.File {
		target := fmt.Sprint(v)
		if !strings.HasSuffix(name, "_file") || !strings.HasPrefix(target, "/etc/warren/") {
			continue
		}
		dest := filepath.Join(mountRoot, target)
		var err error
		if content, ok := c.mountedText(&deps[0], name, target); ok {
			if err = os.MkdirAll(filepath.Dir(dest), 0o755); err == nil {
				err = ioutil.WriteFile(dest, []byte(content), 0o600)
			}
		} else {
			err = writeTestPem(dest, strings.HasSuffix(name, "_key_file"))
		}
		if !r.Check(err == nil, c.Name, "make %s: %v", target, err) {
			return
		}
	}
	fileText = strings.ReplaceAll(fileText, " /etc/warren/", " "+mountRoot+"/etc/warren/")
	file := filepath.Join(outDir, c.Name+".warrend.yaml")
	if !r.Check(ioutil.WriteFile(file, []byte(fileText), 0o644) == nil, c.Name, "write %s", file) {
		return
	}
	var args []string
	for _, a := range sc.Args {
		if strings.HasPrefix(a, "--config=") {
			a = "--config=" + file
		}
		args = append(args, a)
	}
	cmd := exec.Command(bin, args...)
	env := []string{"PATH=" + os.Getenv("PATH")}
	for _, e := range sc.Env {
		name := str(e, "name")
		if strings.HasPrefix(name, "WARREN_") && name != "WARREN_AMQP_URLS" {
			env = append(env, name+"="+str(e, "value"))
		}
	}
	env = append(env, "WARREN_ZK_CONNECT=127.0.0.1:1", "WARREN_AMQP_URLS=amqp://guest:guest@127.0.0.1:1/",
		"WARREN_BACKEND_WAIT=1ms", "WARREN_LOG_LEVEL=off")
	cmd.Env = env
	done := make(chan struct{})
	var output []byte
	var err error
	go func() { output, err = cmd.CombinedOutput(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		r.Fail(c.Name, "warrend did not exit within 20s: %s", output)
		return
	}
	r.Check(err != nil && strings.Contains(string(output), "could not connect to"), c.Name,
		"warrend must accept the rendered configuration and stop only at connecting; it said:\n%s", output)
}

// mountedText is what a mounted auth file holds in the pod: the rendered
// Secret's or ConfigMap's text, so that warrend parses what the chart makes;
// for a user's existing Secret, a valid stand-in. ok false: a PEM file.
func (c *Case) mountedText(dep *Doc, setting, target string) (string, bool) {
	switch setting {
	case "auth_tokens_file":
		v, items := c.mountedFrom(dep, path.Dir(target))
		for _, s := range c.find("Secret") {
			for key, p := range items {
				if s.Name() == str(v, "secret", "secretName") && p == path.Base(target) {
					if text, err := secretText(&s, key); err == nil {
						return text, true
					}
				}
			}
		}
		return "tokens:\n  - {principal: render-check, token: render-check-token-0123456789}\n", true
	case "auth_policy_file":
		v, _ := c.mountedFrom(dep, path.Dir(target))
		for _, cm := range c.find("ConfigMap") {
			if cm.Name() == str(v, "configMap", "name") {
				return str(cm.Obj, "data", path.Base(target)), true
			}
		}
	case "zk_auth_file":
		return "warren:render-check-password\n", true
	}
	return "", false
}

// ---- the chart's own files ----

// CheckChartStatic checks Chart.yaml, @param coverage of values.yaml and
// schema coverage of every value.
func CheckChartStatic(r *Report, chart *Chart, cmakeLists string) {
	m := chart.Metadata
	r.Check(m.APIVersion == "v2", "Chart.yaml", "apiVersion %q, want v2", m.APIVersion)
	r.Check(m.Name == filepath.Base(filepath.Clean(chart.Dir)), "Chart.yaml", "name %q differs from the directory", m.Name)
	r.Check(regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+`).MatchString(m.Version), "Chart.yaml", "version %q is not SemVer", m.Version)
	if src, err := ioutil.ReadFile(cmakeLists); r.Check(err == nil, "Chart.yaml", "read %s: %v", cmakeLists, err) {
		pm := regexp.MustCompile(`project\(\s*warren\s+VERSION\s+([0-9.]+)`).FindStringSubmatch(string(src))
		r.Check(pm != nil && pm[1] == m.AppVersion, "Chart.yaml", "appVersion %q differs from the project version %v", m.AppVersion, pm)
	}
	for _, d := range listAt(chart.Raw, "dependencies") {
		r.Check(str(d, "condition") != "", "Chart.yaml", "dependency %s has no condition", str(d, "name"))
		cond := strings.Split(str(d, "condition"), ".")
		en, ok := boolAt(chart.Values, cond...)
		r.Check(ok && !en, "Chart.yaml", "dependency %s must be off by default (%s)", str(d, "name"), str(d, "condition"))
	}

	// @param coverage.
	raw, err := ioutil.ReadFile(filepath.Join(chart.Dir, "values.yaml"))
	if !r.Check(err == nil, "values.yaml", "%v", err) {
		return
	}
	params := map[string]bool{}
	for _, mm := range regexp.MustCompile(`(?m)^\s*## @param (\S+) \S`).FindAllStringSubmatch(string(raw), -1) {
		r.Check(!params[mm[1]], "values.yaml", "@param %s documented twice", mm[1])
		params[mm[1]] = true
	}
	leaves := map[string]bool{}
	collectLeaves(chart.Values, "", leaves)
	var sorted []string
	for l := range leaves {
		sorted = append(sorted, l)
	}
	sort.Strings(sorted)
	for _, l := range sorted {
		r.Check(coveredBy(l, params), "values.yaml", "value %s has no ## @param (on itself or a parent)", l)
	}
	for p := range params {
		r.Check(get(chart.Values, strings.Split(p, ".")...) != nil || hasPath(chart.Values, strings.Split(p, ".")), "values.yaml", "@param %s names no value", p)
	}
	// Schema coverage: every value has a schema node.
	var schema map[string]interface{}
	if !r.Check(json.Unmarshal(chart.Schema, &schema) == nil, "values.schema.json", "not JSON") {
		return
	}
	for _, l := range sorted {
		r.Check(schemaCovers(schema, strings.Split(l, ".")), "values.schema.json", "value %s is not described by the schema", l)
	}
}

func collectLeaves(v interface{}, prefix string, out map[string]bool) {
	m, ok := v.(map[string]interface{})
	if !ok || len(m) == 0 {
		if prefix != "" {
			out[prefix] = true
		}
		return
	}
	for k, x := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		collectLeaves(x, p, out)
	}
}

func coveredBy(leaf string, params map[string]bool) bool {
	parts := strings.Split(leaf, ".")
	for i := len(parts); i > 0; i-- {
		if params[strings.Join(parts[:i], ".")] {
			return true
		}
	}
	return false
}

func hasPath(v interface{}, keys []string) bool {
	for _, k := range keys {
		m, ok := v.(map[string]interface{})
		if !ok {
			return false
		}
		if v, ok = m[k]; !ok {
			return false
		}
	}
	return true
}

// schemaCovers walks properties; a node without properties (a free-form
// object, an array, a scalar) covers everything below it.
func schemaCovers(node map[string]interface{}, keys []string) bool {
	for _, k := range keys {
		props, ok := node["properties"].(map[string]interface{})
		if !ok {
			return node["type"] != nil || node["oneOf"] != nil
		}
		next, ok := props[k].(map[string]interface{})
		if !ok {
			return false
		}
		node = next
	}
	return node["type"] != nil || node["oneOf"] != nil
}

// testKey and testCert are one self-signed pair, made once per run, for the
// mounted files of RunWarrend (a key file gets the key, any other the
// certificate: the certificate is its own CA).
var testKey, testCert []byte

func writeTestPem(path string, key bool) error {
	if testKey == nil {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "render-check"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
		if err != nil {
			return err
		}
		keyDer, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return err
		}
		testCert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		testKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDer})
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	content := testCert
	if key {
		content = testKey
	}
	return ioutil.WriteFile(path, content, 0o600)
}
