// Package docs keeps docs/config.md in step with the configuration structs:
// every key the code accepts is documented, every documented key exists, the
// documented defaults are the code's, the YAML examples are valid, and
// the relative links of the operator documentation resolve.
package docs

import (
	"bufio"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis/portcullis/gateway"
	"github.com/portcullis/portcullis/policy"
)

const docPath = "../../docs/config.md"

// leaf is one configuration key: a field that is not a struct (or a list of
// structs) of its own.
type leaf struct {
	path string
	typ  reflect.Type
}

var durationType = reflect.TypeOf(time.Duration(0))

// keys lists every key path of t's yaml tags: "server.tls.cert_file",
// "jwt.issuers[].leeway", "routes[].step_up.acr".
func keys(t reflect.Type, prefix string) []leaf {
	var out []leaf
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if tag == "" || tag == "-" {
			continue
		}
		p := tag
		if prefix != "" {
			p = prefix + "." + tag
		}
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && ft != durationType:
			out = append(out, keys(ft, p)...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			out = append(out, keys(ft.Elem(), p+"[]")...)
		default:
			out = append(out, leaf{p, ft})
		}
	}
	return out
}

// docRow is one row of a "| Key | Default | Description |" table.
type docRow struct {
	key, def string
	line     int
}

type doc struct {
	rows []docRow
	// restart holds the keys named in the "Needs a restart" table.
	restart []string
	// yamlBlocks are the ```yaml code blocks, with their first line.
	yamlBlocks []codeBlock
	text       string
}

type codeBlock struct {
	body string
	line int
}

var (
	rowRe      = regexp.MustCompile("^\\|\\s*`([a-z_.\\[\\]]+)`\\s*\\|\\s*(.*?)\\s*\\|")
	backticked = regexp.MustCompile("`([^`]+)`")
)

func readDoc(t *testing.T) doc {
	t.Helper()
	data, err := os.ReadFile(docPath)
	if err != nil {
		t.Fatalf("reading %s: %v", docPath, err)
	}
	d := doc{text: string(data)}
	sc := bufio.NewScanner(strings.NewReader(d.text))
	var (
		header  string // the header row of the table being read
		inBlock bool
		isYAML  bool
		block   strings.Builder
		start   int
	)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			if !inBlock {
				inBlock, isYAML, start = true, trimmed == "```yaml", n+1
				block.Reset()
			} else {
				if isYAML {
					d.yamlBlocks = append(d.yamlBlocks, codeBlock{block.String(), start})
				}
				inBlock = false
			}
			continue
		}
		if inBlock {
			block.WriteString(line)
			block.WriteByte('\n')
			continue
		}
		if !strings.HasPrefix(line, "|") {
			header = ""
			continue
		}
		if header == "" {
			header = line
			continue
		}
		switch {
		case strings.HasPrefix(header, "| Key | Default | Description |"):
			if m := rowRe.FindStringSubmatch(line); m != nil {
				d.rows = append(d.rows, docRow{key: m[1], def: m[2], line: n})
			}
		case strings.HasPrefix(header, "| Needs a restart |"):
			cell, _, _ := strings.Cut(strings.TrimPrefix(line, "|"), "|")
			for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
				d.restart = append(d.restart, m[1])
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(d.rows) == 0 {
		t.Fatalf("%s: no \"| Key | Default | Description |\" rows found", docPath)
	}
	return d
}

// TestEveryConfigKeyIsDocumented fails when a key of gateway.Config (or of a
// nested section) has no row in docs/config.md, or a row names a key the
// code does not accept.
func TestEveryConfigKeyIsDocumented(t *testing.T) {
	t.Parallel()
	d := readDoc(t)
	code := keys(reflect.TypeOf(gateway.Config{}), "")
	documented := map[string]bool{}
	for _, r := range d.rows {
		documented[r.key] = true
	}
	known := map[string]bool{}
	for _, k := range code {
		known[k.path] = true
		if !documented[k.path] {
			t.Errorf("config key %s is not documented in docs/config.md (add a row: | `%s` | default | description |)", k.path, k.path)
		}
	}
	for _, r := range d.rows {
		if !known[r.key] {
			t.Errorf("docs/config.md:%d documents %s, which is not a configuration key", r.line, r.key)
		}
	}
	// Every section has a heading.
	for i := 0; i < reflect.TypeOf(gateway.Config{}).NumField(); i++ {
		f := reflect.TypeOf(gateway.Config{}).Field(i)
		section, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if f.IsExported() && section != "" && !strings.Contains(d.text, "\n## "+section+"\n") {
			t.Errorf("docs/config.md has no \"## %s\" section", section)
		}
	}
	// The restart table names real keys (or key prefixes written "x.*").
	if len(d.restart) == 0 {
		t.Error(`docs/config.md: the "Needs a restart" table is missing`)
	}
	for _, r := range d.restart {
		prefix, wild := strings.CutSuffix(r, ".*")
		ok := false
		for _, k := range code {
			if k.path == r || (wild && strings.HasPrefix(k.path, prefix+".")) {
				ok = true
				break
			}
		}
		if !ok {
			t.Errorf("docs/config.md: the restart table names %q, which is not a configuration key", r)
		}
	}
}

// defaultsConfig is the smallest configuration that has one issuer and one
// route, so that the per-entry defaults can be read too.
const defaultsConfig = `
jwt:
  issuers:
    - issuer: "https://idp.example.com/"
      keys: ["idp.pub.pem"]
routes:
  - path: /api
    upstream: "http://127.0.0.1:9001"
    auth: jwt
`

// TestDocumentedDefaultsMatchTheCode compares every default written as a
// YAML value (a Default cell that starts with a backticked value) with the
// value the code fills in.
func TestDocumentedDefaultsMatchTheCode(t *testing.T) {
	t.Parallel()
	d := readDoc(t)
	cfg, err := gateway.ParseConfig("defaults.yaml", []byte(defaultsConfig))
	if err != nil {
		t.Fatal(err)
	}
	// Route defaults are applied when the table is compiled.
	table, err := policy.Compile(cfg.Routes)
	if err != nil {
		t.Fatal(err)
	}
	resolved := *cfg
	resolved.Routes = []policy.RouteConfig{table.Routes()[0].Config}
	root := reflect.ValueOf(resolved)

	// Optional booleans whose nil means a documented value.
	effective := map[string]any{"log.access": cfg.Log.AccessEnabled()}

	// Keys defaultsConfig sets: their value there is not the default.
	set := map[string]bool{"jwt.issuers[].keys": true}

	checked := 0
	for _, r := range d.rows {
		if !strings.HasPrefix(r.def, "`") || set[r.key] {
			continue // "required", or a default described in words
		}
		lit := backticked.FindStringSubmatch(r.def)[1]
		got, ok := valueAt(root, r.key)
		if !ok {
			continue // reported by TestEveryConfigKeyIsDocumented
		}
		if got.Kind() == reflect.Pointer && got.IsNil() {
			v, ok := effective[r.key]
			if !ok {
				t.Errorf("docs/config.md:%d: %s: the code leaves it nil; say what nil means in the test's effective map", r.line, r.key)
				continue
			}
			got = reflect.ValueOf(v)
		}
		want := reflect.New(got.Type())
		if err := yaml.Unmarshal([]byte(lit), want.Interface()); err != nil {
			t.Errorf("docs/config.md:%d: %s: default %s is not a valid %s: %v", r.line, r.key, lit, got.Type(), err)
			continue
		}
		if !equal(got, want.Elem()) {
			t.Errorf("docs/config.md:%d: %s: documented default %s, the code's is %v", r.line, r.key, lit, show(got))
		}
		checked++
	}
	if checked < 60 {
		t.Errorf("only %d defaults were checked; the Default cells should start with a backticked YAML value", checked)
	}
}

// valueAt walks root by yaml tags along path; "[]" selects the first entry.
func valueAt(root reflect.Value, path string) (reflect.Value, bool) {
	v := root
	for _, part := range strings.Split(path, ".") {
		name, list := strings.CutSuffix(part, "[]")
		for v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		found := false
		for i := 0; i < v.NumField(); i++ {
			tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
			if tag == name && v.Type().Field(i).IsExported() {
				v, found = v.Field(i), true
				break
			}
		}
		if !found {
			return reflect.Value{}, false
		}
		if list {
			if v.Len() == 0 {
				return reflect.Value{}, false
			}
			v = v.Index(0)
		}
	}
	return v, true
}

// equal is reflect.DeepEqual with nil and empty slices and maps equal.
func equal(a, b reflect.Value) bool {
	for a.Kind() == reflect.Pointer && b.Kind() == reflect.Pointer {
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		a, b = a.Elem(), b.Elem()
	}
	switch a.Kind() {
	case reflect.Slice, reflect.Map:
		if a.Len() == 0 && b.Len() == 0 {
			return true
		}
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

func show(v reflect.Value) any {
	for v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	return v.Interface()
}

// base is merged under every YAML example of docs/config.md: an example
// shows one or a few sections; the others come from here.
const base = `
jwt:
  issuers:
    - issuer: "https://idp.example.com/"
      keys: ["idp.pub.pem"]
routes:
  - path: /
    upstream: "http://127.0.0.1:9001"
    auth: jwt
`

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// TestConfigDocExamplesAreValid loads every ```yaml block of
// docs/config.md (its sections over a minimal base) with the gateway's own
// parser.
func TestConfigDocExamplesAreValid(t *testing.T) {
	d := readDoc(t)
	if len(d.yamlBlocks) < 10 {
		t.Fatalf("found %d yaml examples, want one per section at least", len(d.yamlBlocks))
	}
	// Variables referenced without a default get a value long enough for
	// an HMAC secret.
	for _, m := range envRef.FindAllStringSubmatch(d.text, -1) {
		t.Setenv(m[1], strings.Repeat("x", 64))
	}
	dir := t.TempDir()
	for _, b := range d.yamlBlocks {
		var sections, merged map[string]any
		if err := yaml.Unmarshal([]byte(b.body), &sections); err != nil {
			t.Errorf("docs/config.md:%d: not YAML: %v", b.line, err)
			continue
		}
		if err := yaml.Unmarshal([]byte(base), &merged); err != nil {
			t.Fatal(err)
		}
		for k, v := range sections {
			merged[k] = v
		}
		out, err := yaml.Marshal(merged)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Join(dir, "example.yaml")
		if _, err := gateway.ParseConfig(name, out); err != nil {
			t.Errorf("docs/config.md:%d: the example does not load:\n%v\n--- merged config:\n%s", b.line, err, out)
		}
	}
	// The complete example stands on its own.
	last := d.yamlBlocks[len(d.yamlBlocks)-1]
	if _, err := gateway.ParseConfig("complete.yaml", []byte(last.body)); err != nil {
		t.Errorf("docs/config.md:%d: the complete example does not load:\n%v", last.line, err)
	}
	if !slices.ContainsFunc(d.yamlBlocks, func(b codeBlock) bool { return strings.Contains(b.body, "step_up:") }) {
		t.Error("docs/config.md has no step_up example")
	}
}

var (
	mdLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeading = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	slugDrop  = regexp.MustCompile(`[^\p{L}\p{N} _-]`)
)

// slug is GitHub's anchor of a heading: lower case, punctuation dropped
// (except - and _), spaces as hyphens.
func slug(heading string) string {
	return strings.ReplaceAll(slugDrop.ReplaceAllString(strings.ToLower(strings.TrimSpace(heading)), ""), " ", "-")
}

// TestDocLinks checks the relative links of the operator documentation:
// the files exist and the #anchors name a heading.
func TestDocLinks(t *testing.T) {
	t.Parallel()
	for heading, want := range map[string]string{
		"Gateway signing key (`tokens.signing_key`)": "gateway-signing-key-tokenssigning_key",
		"Reload (SIGHUP) and restart":                "reload-sighup-and-restart",
		"fail_mode trade-offs":                       "fail_mode-trade-offs",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
	anchors := map[string]map[string]bool{}
	anchorsOf := func(file string) map[string]bool {
		if a, ok := anchors[file]; ok {
			return a
		}
		a := map[string]bool{}
		if data, err := os.ReadFile(file); err == nil {
			text := regexp.MustCompile("(?s)```.*?```").ReplaceAllString(string(data), "")
			for _, m := range mdHeading.FindAllStringSubmatch(text, -1) {
				a[slug(m[1])] = true
			}
		}
		anchors[file] = a
		return a
	}
	for _, doc := range []string{"../../docs/config.md", "../../docs/operations.md", "../../deploy/README.md", "../../CHANGELOG.md"} {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(data), -1) {
			target := m[1]
			if strings.Contains(target, "://") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			path := doc
			if file != "" {
				path = filepath.Join(filepath.Dir(doc), file)
				if _, err := os.Stat(path); err != nil {
					t.Errorf("%s: link %s: %v", doc, target, err)
					continue
				}
			}
			if anchor != "" && !anchorsOf(path)[anchor] {
				t.Errorf("%s: link %s: no heading with anchor #%s in %s", doc, target, anchor, path)
			}
		}
	}
}

// TestDocumentedEnvExpansion pins the ${VAR} rules that docs/config.md
// describes ("How the file is read"); if the code changes, so must the doc.
func TestDocumentedEnvExpansion(t *testing.T) {
	const route = "\nroutes:\n  - {path: /, upstream: \"http://127.0.0.1:1\", auth: none}\n"
	t.Setenv("PORTCULLIS_DOC_SET", "from-env")
	t.Setenv("PORTCULLIS_DOC_EMPTY", "")
	t.Setenv("PORTCULLIS_DOC_PORT", "9443")
	tests := []struct {
		name, value, want, wantErr string
	}{
		{"set", `"${PORTCULLIS_DOC_SET}"`, "from-env", ""},
		{"default unused", `"${PORTCULLIS_DOC_SET:-other}"`, "from-env", ""},
		{"default used", `"${PORTCULLIS_DOC_UNSET:-fallback}"`, "fallback", ""},
		{"empty default", `"${PORTCULLIS_DOC_UNSET:-}"`, "", ""},
		{"set but empty takes the default, as in the shell", `"${PORTCULLIS_DOC_EMPTY:-fallback}"`, "fallback", ""},
		{"set but empty without a default stays empty", `"${PORTCULLIS_DOC_EMPTY}"`, "", ""},
		{"inside a value", `"a-${PORTCULLIS_DOC_SET}-b"`, "a-from-env-b", ""},
		{"unset is an error", `"${PORTCULLIS_DOC_UNSET}"`, "", "environment variable PORTCULLIS_DOC_UNSET is not set"},
	}
	for _, tt := range tests {
		cfg, err := gateway.ParseConfig("env.yaml", []byte("admin:\n  token: "+tt.value+route))
		switch {
		case tt.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), "env.yaml:2: admin.token: "+tt.wantErr) {
				t.Errorf("%s: error %v, want %q", tt.name, err, tt.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case cfg.Admin.Token != tt.want:
			t.Errorf("%s: admin.token = %q, want %q", tt.name, cfg.Admin.Token, tt.want)
		}
	}
	// An unquoted variable is typed after expansion: a number where a
	// number is expected.
	cfg, err := gateway.ParseConfig("env.yaml", []byte("server:\n  max_header_count: ${PORTCULLIS_DOC_PORT}"+route))
	if err != nil {
		t.Fatalf("unquoted number: %v", err)
	}
	if cfg.Server.MaxHeaderCount != 9443 {
		t.Errorf("unquoted number: max_header_count = %d, want 9443", cfg.Server.MaxHeaderCount)
	}
}
