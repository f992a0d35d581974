package main

// The rendering half of the render check: loads a chart directory and renders
// it the way Helm 3 does (pkg/engine, pkg/chartutil), without Helm. What it
// reproduces:
//   - text/template with sprig's function map minus env/expandenv, plus
//     Helm's include, tpl, required, toYaml, fromYaml, fromYamlArray, toJson,
//     fromJson, fromJsonArray and lookup (always empty: there is no cluster);
//   - missingkey=zero and "<no value>" erased from the output;
//   - values read with sigs.k8s.io/yaml (numbers become float64, as in Helm:
//     a template that prints a big number without int64 shows 1.048576e+06
//     here exactly as it would under Helm);
//   - user values coalesced over values.yaml (maps merge, a null deletes);
//   - the coalesced values validated against values.schema.json with
//     gojsonschema, as Helm does;
//   - .Release, .Chart, .Capabilities, .Files and .Template.
// What it does not: subcharts (the dependencies are off by default and not
// vendored), hooks ordering, Kubernetes schema validation of the objects.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/ioutil"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"github.com/xeipuuv/gojsonschema"
	"sigs.k8s.io/yaml"
)

// ChartMetadata mirrors the fields of Helm's chart.Metadata that templates
// read as .Chart.<Field>.
type ChartMetadata struct {
	APIVersion  string   `json:"apiVersion"`
	Name        string   `json:"name"`
	Version     string   `json:"version"`
	AppVersion  string   `json:"appVersion"`
	Description string   `json:"description"`
	Type        string   `json:"type"`
	KubeVersion string   `json:"kubeVersion"`
	Keywords    []string `json:"keywords"`
}

type templateFile struct {
	name string // as Helm names it: <chart>/templates/<path>
	data string
}

// Chart is a loaded chart directory.
type Chart struct {
	Dir       string
	Metadata  ChartMetadata
	Raw       map[string]interface{} // Chart.yaml as parsed
	Values    map[string]interface{} // values.yaml
	Schema    []byte                 // values.schema.json
	Templates []templateFile
	Files     Files
}

// Files is .Files: the chart's files outside templates/.
type Files map[string][]byte

// Get returns a file's content, or "" when absent (as Helm does).
func (f Files) Get(name string) string { return string(f[name]) }

// GetBytes returns a file's content as bytes.
func (f Files) GetBytes(name string) []byte { return f[name] }

// Capabilities is .Capabilities for a fixed, recent cluster.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]string
}

// KubeVersion is .Capabilities.KubeVersion.
type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

// VersionSet is .Capabilities.APIVersions.
type VersionSet []string

// Has reports whether an apiVersion (or apiVersion/Kind) is known.
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

func defaultCapabilities() Capabilities {
	return Capabilities{
		KubeVersion: KubeVersion{Version: "v1.28.0", Major: "1", Minor: "28", GitVersion: "v1.28.0"},
		APIVersions: VersionSet{"v1", "apps/v1", "policy/v1", "autoscaling/v2",
			"networking.k8s.io/v1", "monitoring.coreos.com/v1"},
		HelmVersion: map[string]string{"version": "v3.13.0"},
	}
}

// Release is .Release.
type Release struct {
	Name      string
	Namespace string
	Service   string
	IsInstall bool
	IsUpgrade bool
	Revision  int
}

// LoadChart reads a chart directory.
func LoadChart(dir string) (*Chart, error) {
	c := &Chart{Dir: dir, Files: Files{}}
	raw, err := ioutil.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(raw, &c.Metadata); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	if err := yaml.Unmarshal(raw, &c.Raw); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %v", err)
	}
	if c.Values, err = ReadValuesFile(filepath.Join(dir, "values.yaml")); err != nil {
		return nil, err
	}
	if c.Schema, err = ioutil.ReadFile(filepath.Join(dir, "values.schema.json")); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if info.IsDir() {
			if rel == "charts" || rel == "ci" {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := ioutil.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			c.Templates = append(c.Templates, templateFile{name: path.Join(c.Metadata.Name, rel), data: string(data)})
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json":
		default:
			c.Files[rel] = data
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(c.Templates, func(i, j int) bool { return c.Templates[i].name < c.Templates[j].name })
	return c, nil
}

// ReadValuesFile reads a values file the way Helm does (sigs.k8s.io/yaml).
func ReadValuesFile(p string) (map[string]interface{}, error) {
	data, err := ioutil.ReadFile(p)
	if err != nil {
		return nil, err
	}
	vals := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &vals); err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	if vals == nil {
		vals = map[string]interface{}{}
	}
	return vals, nil
}

// CoalesceValues merges user values over the chart's defaults as Helm's
// chartutil.CoalesceTables does: maps merge recursively, anything else is
// replaced, and a user null removes the key.
func CoalesceValues(defaults, user map[string]interface{}) map[string]interface{} {
	dst := deepCopyMap(user)
	coalesceTables(dst, deepCopyMap(defaults))
	if _, ok := dst["global"]; !ok {
		dst["global"] = map[string]interface{}{}
	}
	return dst
}

func coalesceTables(dst, src map[string]interface{}) {
	for k, v := range dst {
		if v == nil {
			delete(dst, k)
			delete(src, k)
		}
	}
	for k, sv := range src {
		dv, ok := dst[k]
		if !ok {
			dst[k] = sv
			continue
		}
		dm, dIsMap := dv.(map[string]interface{})
		sm, sIsMap := sv.(map[string]interface{})
		if dIsMap && sIsMap {
			coalesceTables(dm, sm)
		}
	}
}

func deepCopyMap(m map[string]interface{}) map[string]interface{} {
	if m == nil {
		return map[string]interface{}{}
	}
	data, _ := json.Marshal(m)
	out := map[string]interface{}{}
	_ = json.Unmarshal(data, &out)
	return out
}

// ValidateValues checks coalesced values against values.schema.json the way
// Helm's chartutil.ValidateAgainstSingleSchema does.
func ValidateValues(schema []byte, vals map[string]interface{}) error {
	if len(schema) == 0 {
		return nil
	}
	y, err := yaml.Marshal(vals)
	if err != nil {
		return err
	}
	j, err := yaml.YAMLToJSON(y)
	if err != nil {
		return err
	}
	if bytes.Equal(j, []byte("null")) {
		j = []byte("{}")
	}
	res, err := gojsonschema.Validate(gojsonschema.NewBytesLoader(schema), gojsonschema.NewBytesLoader(j))
	if err != nil {
		return fmt.Errorf("values.schema.json: %v", err)
	}
	if res.Valid() {
		return nil
	}
	var msgs []string
	for _, e := range res.Errors() {
		msgs = append(msgs, "- "+e.String())
	}
	return fmt.Errorf("values don't meet the specifications of the schema(s):\n%s", strings.Join(msgs, "\n"))
}

// funcMap is Helm's: sprig's text functions minus env and expandenv, plus
// Helm's own (include and tpl are bound per render).
func funcMap() template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	extra := template.FuncMap{
		"toYaml":        toYAML,
		"mustToYaml":    mustToYAML,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"mustToJson":    mustToJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"required": func(warn string, val interface{}) (interface{}, error) {
			if val == nil {
				return val, fmt.Errorf("%s", warn)
			} else if s, ok := val.(string); ok && s == "" {
				return val, fmt.Errorf("%s", warn)
			}
			return val, nil
		},
		"lookup": func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
		"include": func(string, interface{}) string { return "not implemented" },
		"tpl":     func(string, interface{}) string { return "not implemented" },
	}
	for k, v := range extra {
		f[k] = v
	}
	return f
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func mustToYAML(v interface{}) (string, error) {
	data, err := yaml.Marshal(v)
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(data), "\n"), nil
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func mustToJSON(v interface{}) (string, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

const recursionMaxNums = 1000

// includeFun is Helm's include: execute a named template into a string.
func includeFun(t *template.Template, includedNames map[string]int) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		var buf strings.Builder
		if v, ok := includedNames[name]; ok {
			if v > recursionMaxNums {
				return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
			}
			includedNames[name]++
		} else {
			includedNames[name] = 1
		}
		err := t.ExecuteTemplate(&buf, name, data)
		includedNames[name]--
		return buf.String(), err
	}
}

// tplFun is Helm's tpl: parse a string as a template in the chart's
// template set and execute it.
func tplFun(parent *template.Template, includedNames map[string]int) func(string, interface{}) (string, error) {
	return func(text string, vals interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %v", err)
		}
		t.Option("missingkey=zero")
		t.Funcs(template.FuncMap{
			"include": includeFun(t, includedNames),
			"tpl":     tplFun(t, includedNames),
		})
		t, err = t.New(parent.Name()).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %v", text, err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %v", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
}

// Render renders every template of the chart with the given (coalesced)
// values. It returns the output per template name, NOTES.txt included.
func Render(c *Chart, vals map[string]interface{}, rel Release) (map[string]string, error) {
	t := template.New("gotpl")
	t.Option("missingkey=zero")
	includedNames := map[string]int{}
	funcs := funcMap()
	funcs["include"] = includeFun(t, includedNames)
	funcs["tpl"] = tplFun(t, includedNames)
	t.Funcs(funcs)
	for _, f := range c.Templates {
		if _, err := t.New(f.name).Parse(f.data); err != nil {
			return nil, fmt.Errorf("parse error in %s: %v", f.name, err)
		}
	}
	top := map[string]interface{}{
		"Values":       vals,
		"Release":      rel,
		"Chart":        c.Metadata,
		"Capabilities": defaultCapabilities(),
		"Files":        c.Files,
	}
	out := map[string]string{}
	for _, f := range c.Templates {
		if strings.HasPrefix(path.Base(f.name), "_") {
			continue
		}
		data := map[string]interface{}{}
		for k, v := range top {
			data[k] = v
		}
		data["Template"] = map[string]interface{}{
			"Name":     f.name,
			"BasePath": path.Join(c.Metadata.Name, "templates"),
		}
		var buf strings.Builder
		if err := t.ExecuteTemplate(&buf, f.name, data); err != nil {
			return nil, fmt.Errorf("%s: %v", f.name, err)
		}
		out[f.name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return out, nil
}
