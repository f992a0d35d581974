// render-check renders the warren chart the way Helm does (see engine.go),
// without Helm and without a cluster, and asserts what the chart promises:
// schema-valid values, well-formed YAML, standard labels, matching
// selectors, ports and probes that agree with warrend's flags, the security
// context, optional objects present exactly when switched on, and required
// values failing with their message. With -warrend it also hands every
// rendered configuration (ConfigMap file + args + env) to the real warrend,
// which must accept it and get as far as connecting to ZooKeeper.
//
// Run it through helm/check.sh.
package main

import (
	"flag"
	"fmt"
	"io/ioutil"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Report collects assertion results.
type Report struct {
	checks   int
	failures []string
	verbose  bool
}

func (r *Report) Check(ok bool, scope, format string, args ...interface{}) bool {
	r.checks++
	if !ok {
		msg := fmt.Sprintf("FAIL [%s] %s", scope, fmt.Sprintf(format, args...))
		r.failures = append(r.failures, msg)
		fmt.Println(msg)
	}
	return ok
}

func (r *Report) Fail(scope, format string, args ...interface{}) {
	r.Check(false, scope, format, args...)
}

func main() {
	chartDir := flag.String("chart", "../warren", "chart directory")
	optionsCC := flag.String("options", "../../server/daemon/options.cc", "warrend's options.cc (flag and setting names)")
	cmakeLists := flag.String("cmakelists", "../../CMakeLists.txt", "top CMakeLists.txt (project version)")
	failDir := flag.String("failcases", "testdata/fail", "values files that must fail, with '# expect:' lines")
	outDir := flag.String("out", "../.out/rendered", "where rendered manifests are written (for yamllint)")
	warrend := flag.String("warrend", "", "warrend binary to hand each rendered configuration to (empty: skip)")
	yamllintConfig := flag.String("yamllint-config", "yamllint.yaml", "yamllint configuration ('' skips yamllint)")
	release := flag.String("release", "demo", "release name")
	namespace := flag.String("namespace", "apps", "release namespace")
	verbose := flag.Bool("v", false, "print each case's manifests")
	flag.Parse()

	r := &Report{verbose: *verbose}
	chart, err := LoadChart(*chartDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render-check:", err)
		os.Exit(2)
	}
	known, err := ParseWarrendOptions(*optionsCC)
	if err != nil {
		fmt.Fprintln(os.Stderr, "render-check:", err)
		os.Exit(2)
	}

	CheckChartStatic(r, chart, *cmakeLists)

	if err := os.RemoveAll(*outDir); err != nil {
		fmt.Fprintln(os.Stderr, "render-check:", err)
		os.Exit(2)
	}
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "render-check:", err)
		os.Exit(2)
	}

	rel := Release{Name: *release, Namespace: *namespace, Service: "Helm", IsInstall: true, Revision: 1}
	ciFiles, _ := filepath.Glob(filepath.Join(*chartDir, "ci", "*.yaml"))
	sort.Strings(ciFiles)
	r.Check(len(ciFiles) >= 3, "ci", "want at least 3 value sets under ci/, have %d", len(ciFiles))
	cases := 0
	for _, f := range ciFiles {
		name := strings.TrimSuffix(filepath.Base(f), ".yaml")
		user, err := ReadValuesFile(f)
		if !r.Check(err == nil, name, "read: %v", err) {
			continue
		}
		cases++
		vals := CoalesceValues(chart.Values, user)
		if !r.Check(ValidateValues(chart.Schema, vals) == nil, name, "schema: %v", ValidateValues(chart.Schema, vals)) {
			continue
		}
		out, err := Render(chart, vals, rel)
		if !r.Check(err == nil, name, "render: %v", err) {
			continue
		}
		manifest := writeManifest(*outDir, name, chart, out)
		if *verbose {
			fmt.Println(manifest)
		}
		docs := ParseDocs(r, name, chart, out)
		c := &Case{Name: name, Values: vals, Docs: docs, Notes: out[chart.Metadata.Name+"/templates/NOTES.txt"],
			Release: rel, Chart: chart, Known: known}
		c.CheckAll(r)
		if *warrend != "" {
			c.RunWarrend(r, *warrend, *outDir)
		}
	}

	// Release names that exercise the name helpers.
	for _, relName := range []string{"warren", "my-warren-prod", strings.Repeat("x", 60)} {
		cases++
		name := "release-" + relName[:minInt(len(relName), 12)]
		user, _ := ReadValuesFile(filepath.Join(*chartDir, "ci", "default-values.yaml"))
		vals := CoalesceValues(chart.Values, user)
		rr := Release{Name: relName, Namespace: *namespace, Service: "Helm", IsInstall: true, Revision: 1}
		out, err := Render(chart, vals, rr)
		if !r.Check(err == nil, name, "render: %v", err) {
			continue
		}
		docs := ParseDocs(r, name, chart, out)
		c := &Case{Name: name, Values: vals, Docs: docs, Notes: out[chart.Metadata.Name+"/templates/NOTES.txt"],
			Release: rr, Chart: chart, Known: known}
		c.CheckAll(r)
	}

	// The defaults alone must fail with the required message.
	cases++
	_, err = Render(chart, CoalesceValues(chart.Values, nil), rel)
	r.Check(err != nil && strings.Contains(err.Error(), "externalZookeeper.connect is required"),
		"defaults", "the chart's defaults alone must fail with the externalZookeeper.connect message; got %v", err)
	r.Check(ValidateValues(chart.Schema, CoalesceValues(chart.Values, nil)) == nil,
		"defaults", "values.yaml must satisfy values.schema.json: %v", ValidateValues(chart.Schema, CoalesceValues(chart.Values, nil)))

	cases += RunFailCases(r, chart, *failDir, rel)

	if *yamllintConfig != "" {
		targets := []string{*outDir, filepath.Join(*chartDir, "Chart.yaml"), filepath.Join(*chartDir, "values.yaml"),
			filepath.Join(*chartDir, "ci")}
		cmd := exec.Command("yamllint", append([]string{"-s", "-c", *yamllintConfig}, targets...)...)
		output, err := cmd.CombinedOutput()
		r.Check(err == nil, "yamllint", "rendered manifests and chart YAML:\n%s%v", output, err)
	}

	fmt.Printf("render-check: %d cases, %d assertions, %d failures\n", cases, r.checks, len(r.failures))
	if len(r.failures) > 0 {
		os.Exit(1)
	}
}

func minInt(a, b int) int {
	if a < b {
		return a
	}
	return b
}

// writeManifest writes a case's output as `helm template` prints it and
// returns it.
func writeManifest(dir, name string, chart *Chart, out map[string]string) string {
	var names []string
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") {
			_ = ioutil.WriteFile(filepath.Join(dir, name+".NOTES.txt"), []byte(out[n]), 0o644)
			continue
		}
		if strings.TrimSpace(out[n]) == "" {
			continue
		}
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", n, strings.Trim(out[n], "\n"))
	}
	_ = ioutil.WriteFile(filepath.Join(dir, name+".yaml"), []byte(b.String()), 0o644)
	return b.String()
}

var docSplit = regexp.MustCompile(`(?m)^---[ \t]*$`)

// Doc is one rendered Kubernetes object.
type Doc struct {
	Source string
	Obj    map[string]interface{}
}

func (d Doc) Kind() string { return str(d.Obj, "kind") }
func (d Doc) Name() string { return str(d.Obj, "metadata", "name") }

// ParseDocs splits every template's output into documents and parses each
// strictly (duplicate keys are errors).
func ParseDocs(r *Report, scope string, chart *Chart, out map[string]string) []Doc {
	var names []string
	for n := range out {
		names = append(names, n)
	}
	sort.Strings(names)
	var docs []Doc
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") {
			continue
		}
		for _, part := range docSplit.Split(out[n], -1) {
			if isBlankYAML(part) {
				continue
			}
			r.Check(!strings.Contains(part, "{{"), scope, "%s: unrendered template text left in the output", n)
			j, err := yaml.YAMLToJSONStrict([]byte(part))
			if !r.Check(err == nil, scope, "%s: not valid YAML: %v\n%s", n, err, part) {
				continue
			}
			obj := map[string]interface{}{}
			if !r.Check(yaml.Unmarshal(j, &obj) == nil && obj != nil, scope, "%s: not a YAML mapping", n) {
				continue
			}
			docs = append(docs, Doc{Source: n, Obj: obj})
		}
	}
	return docs
}

func isBlankYAML(s string) bool {
	for _, line := range strings.Split(s, "\n") {
		t := strings.TrimSpace(line)
		if t != "" && !strings.HasPrefix(t, "#") {
			return false
		}
	}
	return true
}

// failCase is a values file under testdata/fail with its expectations.
//
//	# stage: schema | render
//	# expect: <substring of the error>
func RunFailCases(r *Report, chart *Chart, dir string, rel Release) int {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	sort.Strings(files)
	r.Check(len(files) > 0, "fail-cases", "no fail cases under %s", dir)
	for _, f := range files {
		name := "fail/" + strings.TrimSuffix(filepath.Base(f), ".yaml")
		raw, err := ioutil.ReadFile(f)
		if !r.Check(err == nil, name, "read: %v", err) {
			continue
		}
		var stage string
		var expects []string
		for _, line := range strings.Split(string(raw), "\n") {
			if m := regexp.MustCompile(`^# stage: (\S+)`).FindStringSubmatch(line); m != nil {
				stage = m[1]
			}
			if m := regexp.MustCompile(`^# expect: (.+)$`).FindStringSubmatch(line); m != nil {
				expects = append(expects, m[1])
			}
		}
		if !r.Check((stage == "schema" || stage == "render") && len(expects) > 0, name, "needs '# stage: schema|render' and '# expect:' lines") {
			continue
		}
		user, err := ReadValuesFile(f)
		if !r.Check(err == nil, name, "read: %v", err) {
			continue
		}
		vals := CoalesceValues(chart.Values, user)
		schemaErr := ValidateValues(chart.Schema, vals)
		var got error
		if stage == "schema" {
			got = schemaErr
		} else {
			if !r.Check(schemaErr == nil, name, "must pass the schema (it tests a render failure): %v", schemaErr) {
				continue
			}
			_, got = Render(chart, vals, rel)
		}
		if !r.Check(got != nil, name, "%s stage should have failed", stage) {
			continue
		}
		for _, e := range expects {
			r.Check(strings.Contains(got.Error(), e), name, "error should contain %q; got:\n%v", e, got)
		}
	}
	return len(files)
}

// WarrendOptions are the names warrend knows, read from options.cc.
type WarrendOptions struct {
	Flags    map[string]bool // every ABSL_FLAG
	Settings map[string]bool // what its YAML file and WARREN_* env accept
}

// ParseWarrendOptions reads the flag names (ABSL_FLAG) from warrend's
// options.cc. Every flag defined there but --config is also a setting of
// the --config file and of WARREN_* (options.cc takes the list from absl's
// flag registry).
func ParseWarrendOptions(p string) (*WarrendOptions, error) {
	src, err := ioutil.ReadFile(p)
	if err != nil {
		return nil, err
	}
	o := &WarrendOptions{Flags: map[string]bool{}, Settings: map[string]bool{}}
	for _, m := range regexp.MustCompile(`ABSL_FLAG\(\s*[^,]+,\s*(\w+)\s*,`).FindAllStringSubmatch(string(src), -1) {
		o.Flags[m[1]] = true
		if m[1] != "config" {
			o.Settings[m[1]] = true
		}
	}
	if len(o.Flags) < 10 {
		return nil, fmt.Errorf("%s: found only %d flags", p, len(o.Flags))
	}
	return o, nil
}
