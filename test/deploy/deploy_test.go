// Package deploy validates the deployment examples in deploy/ without Docker
// or kubectl: the Compose file, the Kubernetes manifests, the gateway
// configuration they carry and the repository's Dockerfile must agree with
// each other (ports, probes, config path, secrets, users, grace periods).
package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/portcullis/portcullis/gateway"
)

// root is the repository root, seen from this package's directory.
const root = "../.."

func repoPath(p string) string { return filepath.Join(root, filepath.FromSlash(p)) }

// --- Dockerfile ---------------------------------------------------------------

// image is what the final stage of the Dockerfile declares.
type image struct {
	user   string
	uid    int
	expose []int
	env    map[string]string
	// copies maps a destination in the image to its source in the
	// repository (COPY without --from).
	copies map[string]string
}

func readDockerfile(t *testing.T) image {
	t.Helper()
	data, err := os.ReadFile(repoPath("Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := parseDockerfile(data)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return img
}

// parseDockerfile reads the final stage of a Dockerfile.
func parseDockerfile(data []byte) (image, error) {
	var img image
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(instr) {
		case "FROM": // a new stage: only the last one is the image
			img = image{env: map[string]string{}, copies: map[string]string{}, uid: -1}
		case "USER":
			img.user = rest
			u, _, _ := strings.Cut(rest, ":")
			if n, err := strconv.Atoi(u); err == nil {
				img.uid = n
			}
		case "EXPOSE":
			for _, f := range strings.Fields(rest) {
				p, _, _ := strings.Cut(f, "/")
				n, err := strconv.Atoi(p)
				if err != nil {
					return img, fmt.Errorf("EXPOSE %q: not a port", f)
				}
				img.expose = append(img.expose, n)
			}
		case "ENV":
			if k, v, ok := strings.Cut(rest, "="); ok && !strings.Contains(k, " ") {
				img.env[k] = strings.Trim(v, `"`)
			} else if k, v, ok := strings.Cut(rest, " "); ok {
				img.env[k] = strings.TrimSpace(v)
			}
		case "COPY":
			f := strings.Fields(rest)
			if slices.ContainsFunc(f, func(s string) bool { return strings.HasPrefix(s, "--from") }) {
				continue
			}
			f = slices.DeleteFunc(f, func(s string) bool { return strings.HasPrefix(s, "--") })
			if len(f) == 2 {
				img.copies[f[1]] = f[0]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return img, err
	}
	if img.env == nil {
		return img, errors.New("no FROM")
	}
	return img, nil
}

// fileIn reports the repository file that provides p inside the image, if
// a COPY does.
func (img image) fileIn(p string) (string, bool) {
	for dst, src := range img.copies {
		if p == dst {
			return src, true
		}
		if dir := strings.TrimSuffix(dst, "/") + "/"; strings.HasPrefix(p, dir) {
			return path.Join(src, strings.TrimPrefix(p, dir)), true
		}
	}
	return "", false
}

// dockerfileProblems lists what is wrong with the image for the
// deployments: a root or non-numeric user, no EXPOSE, no PORTCULLIS_CONFIG.
func dockerfileProblems(img image) []string {
	var out []string
	if img.user == "" || img.uid == 0 || strings.HasPrefix(img.user, "root") {
		out = append(out, fmt.Sprintf("USER %q must be a non-root user", img.user))
	} else if img.uid < 0 {
		out = append(out, fmt.Sprintf("USER %q must be numeric (Kubernetes runAsNonRoot cannot check a name)", img.user))
	}
	if len(img.expose) == 0 {
		out = append(out, "no EXPOSE")
	}
	if img.env["PORTCULLIS_CONFIG"] == "" {
		out = append(out, "no ENV PORTCULLIS_CONFIG")
	}
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	for _, p := range dockerfileProblems(readDockerfile(t)) {
		t.Errorf("Dockerfile: %s", p)
	}
}

// TestDockerfileProblems shows that the checks above catch what they claim
// to, on Dockerfiles written for the purpose.
func TestDockerfileProblems(t *testing.T) {
	t.Parallel()
	const good = "FROM golang AS build\nUSER root\nFROM scratch\nUSER 65532:65532\nEXPOSE 8080 9090/tcp\nENV PORTCULLIS_CONFIG=/etc/p.yaml\n"
	tests := []struct {
		name, dockerfile, want string
	}{
		{"good", good, ""},
		{"root by name", strings.Replace(good, "USER 65532:65532", "USER root", 1), "non-root"},
		{"root by uid", strings.Replace(good, "USER 65532:65532", "USER 0:0", 1), "non-root"},
		{"no user", strings.Replace(good, "USER 65532:65532\n", "", 1), "non-root"},
		{"user by name", strings.Replace(good, "USER 65532:65532", "USER app", 1), "numeric"},
		{"no expose", strings.Replace(good, "EXPOSE 8080 9090/tcp\n", "", 1), "no EXPOSE"},
		{"no config", strings.Replace(good, "ENV PORTCULLIS_CONFIG=/etc/p.yaml\n", "", 1), "PORTCULLIS_CONFIG"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			img, err := parseDockerfile([]byte(tt.dockerfile))
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Join(dockerfileProblems(img), "; ")
			if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Errorf("problems %q, want %q", got, tt.want)
			}
		})
	}
	img, _ := parseDockerfile([]byte(good))
	if !sameInts(img.expose, []int{8080, 9090}) || img.uid != 65532 {
		t.Errorf("parsed %+v", img)
	}
}

// --- the gateway configuration -------------------------------------------------

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}`)

// requiredVars are the variables a configuration references without a
// default: the deployment must provide them.
func requiredVars(cfg string) []string {
	var out []string
	for _, m := range envRef.FindAllStringSubmatch(cfg, -1) {
		if m[2] == "" && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return out
}

// loadConfig parses a configuration as the gateway does, named by its path
// inside the container, with every referenced variable set to a dummy
// value. t must not be parallel (t.Setenv).
func loadConfig(t *testing.T, where, containerPath, data string) *gateway.Config {
	t.Helper()
	for _, v := range requiredVars(data) {
		t.Setenv(v, "dummy-"+strings.ToLower(v))
	}
	cfg, err := gateway.ParseConfig(containerPath, []byte(data))
	if err != nil {
		t.Fatalf("%s: the configuration does not load:\n%v", where, err)
	}
	return cfg
}

func listenPort(t *testing.T, where, key, addr string) (host string, port int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: %s %q: %v", where, key, addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n == 0 {
		t.Fatalf("%s: %s %q must name a fixed port", where, key, addr)
	}
	return h, n
}

// checkConfig runs the checks common to every deployment: ports against the
// Dockerfile, the admin listener reachable from outside the container,
// Redis for several nodes, key files present in the image.
func checkConfig(t *testing.T, where string, cfg *gateway.Config, img image, replicas int) (mainPort, adminPort int) {
	t.Helper()
	_, mainPort = listenPort(t, where, "server.listen", cfg.Server.Listen)
	adminHost, adminPort := listenPort(t, where, "admin.listen", cfg.Admin.Listen)
	if adminHost != "0.0.0.0" {
		t.Errorf("%s: admin.listen is %q; inside a container it must be 0.0.0.0:<port> for probes to reach it", where, cfg.Admin.Listen)
	}
	if !sameInts(img.expose, []int{mainPort, adminPort}) {
		t.Errorf("%s: Dockerfile EXPOSE %v, but the configuration listens on %d and %d", where, img.expose, mainPort, adminPort)
	}
	if replicas > 1 && cfg.Store.Type != "redis" {
		t.Errorf("%s: %d gateway nodes need store.type redis, got %q", where, replicas, cfg.Store.Type)
	}
	if cfg.Admin.Token == "" || !strings.HasPrefix(cfg.Admin.Token, "dummy-") {
		t.Errorf("%s: admin.token must come from an environment variable", where)
	}
	for i, is := range cfg.JWT.Issuers {
		for _, k := range is.Keys {
			src, ok := img.fileIn(k)
			if !ok {
				t.Errorf("%s: jwt.issuers[%d].keys: %s is neither mounted nor in the image", where, i, k)
				continue
			}
			if _, err := os.Stat(repoPath(src)); err != nil {
				t.Errorf("%s: jwt.issuers[%d].keys: %s comes from %s, which is missing: %v", where, i, k, src, err)
			}
		}
	}
	return mainPort, adminPort
}

func sameInts(a, b []int) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(slices.Compact(a), slices.Compact(b))
}

// configFlag is the value of --config (or --config=) in args, if any.
func configFlag(args []string) (string, bool) {
	for i, a := range args {
		if (a == "--config" || a == "-config") && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			return v, true
		}
	}
	return "", false
}

// --- generic YAML access -----------------------------------------------------

type obj = map[string]any

func field(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(obj)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func objAt(v any, keys ...string) obj {
	m, _ := field(v, keys...).(obj)
	return m
}

func listAt(v any, keys ...string) []any {
	l, _ := field(v, keys...).([]any)
	return l
}

func strAt(v any, keys ...string) string {
	switch x := field(v, keys...).(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return ""
}

func intAt(v any, keys ...string) (int, bool) {
	n, ok := field(v, keys...).(int)
	return n, ok
}

func toStrings(l []any) []string {
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, strAt(obj{"v": e}, "v"))
	}
	return out
}

// --- Docker Compose -----------------------------------------------------------

const composeFile = "deploy/docker-compose.yml"

// composeArgs is a service's command as a list.
func composeArgs(svc obj) []string {
	switch c := svc["command"].(type) {
	case string:
		return strings.Fields(c)
	case []any:
		return toStrings(c)
	}
	return nil
}

// composeEnv is a service's environment: environment: (map or list) and
// env_file: files (a file kept out of git is read from its .example).
func composeEnv(t *testing.T, dir string, svc obj) map[string]string {
	t.Helper()
	env := map[string]string{}
	switch e := svc["environment"].(type) {
	case obj:
		for k, v := range e {
			env[k] = strAt(obj{"v": v}, "v")
		}
	case []any:
		for _, kv := range toStrings(e) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	var files []string
	switch f := svc["env_file"].(type) {
	case string:
		files = []string{f}
	case []any:
		for _, e := range f {
			if m, ok := e.(obj); ok {
				files = append(files, strAt(m, "path"))
			} else {
				files = append(files, strAt(obj{"v": e}, "v"))
			}
		}
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			data, err = os.ReadFile(p + ".example")
		}
		if err != nil {
			t.Errorf("%s: env_file %s: neither it nor %s.example exists: %v", composeFile, f, f, err)
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			k, v, _ := strings.Cut(line, "=")
			env[k] = v
		}
	}
	return env
}

// composeMount is one entry of a service's volumes:.
type composeMount struct {
	source, target string
	readOnly       bool
}

func composeMounts(svc obj) []composeMount {
	var out []composeMount
	for _, v := range listAt(svc, "volumes") {
		switch m := v.(type) {
		case string:
			parts := strings.Split(m, ":")
			cm := composeMount{source: parts[0]}
			if len(parts) > 1 {
				cm.target = parts[1]
			}
			if len(parts) > 2 {
				cm.readOnly = slices.Contains(strings.Split(parts[2], ","), "ro")
			}
			out = append(out, cm)
		case obj:
			ro, _ := m["read_only"].(bool)
			out = append(out, composeMount{source: strAt(m, "source"), target: strAt(m, "target"), readOnly: ro})
		}
	}
	return out
}

// composePort is one entry of ports: ("[ip:]host:container").
type composePort struct {
	ip        string
	container int
}

func composePorts(t *testing.T, svc obj) []composePort {
	t.Helper()
	var out []composePort
	for _, p := range listAt(svc, "ports") {
		s := strAt(obj{"v": p}, "v")
		parts := strings.Split(s, ":")
		n, err := strconv.Atoi(strings.TrimSuffix(parts[len(parts)-1], "/tcp"))
		if err != nil {
			t.Errorf("%s: port %q: want [ip:]host:container", composeFile, s)
			continue
		}
		cp := composePort{container: n}
		if len(parts) == 3 {
			cp.ip = parts[0]
		}
		out = append(out, cp)
	}
	return out
}

func TestDockerCompose(t *testing.T) {
	img := readDockerfile(t)
	dir := repoPath("deploy")
	data, err := os.ReadFile(repoPath(composeFile))
	if err != nil {
		t.Fatal(err)
	}
	var doc obj
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", composeFile, err)
	}
	services := objAt(doc, "services")
	if len(services) == 0 {
		t.Fatalf("%s: no services", composeFile)
	}

	// Redis, with AOF persistence.
	redisSvc := ""
	for name, s := range services {
		if strings.HasPrefix(strAt(s, "image"), "redis:") {
			redisSvc = name
			args := composeArgs(s.(obj))
			if i := slices.Index(args, "--appendonly"); i < 0 || i+1 >= len(args) || args[i+1] != "yes" {
				t.Errorf("%s: service %s: Redis must run with --appendonly yes, command is %q", composeFile, name, args)
			}
			if len(listAt(s, "ports")) > 0 {
				t.Errorf("%s: service %s: Redis must not be published on the host", composeFile, name)
			}
		}
	}
	if redisSvc == "" {
		t.Fatalf("%s: no redis service", composeFile)
	}

	// The gateway nodes: services built from the repository's Dockerfile.
	var nodes []string
	for name, s := range services {
		ctx := strAt(s, "build", "context")
		if ctx == "" {
			ctx = strAt(s, "build")
		}
		if ctx == "" {
			continue
		}
		df := strAt(s, "build", "dockerfile")
		if df == "" {
			df = "Dockerfile"
		}
		if got, _ := filepath.Abs(filepath.Join(dir, ctx, df)); got != mustAbs(t, repoPath("Dockerfile")) {
			t.Errorf("%s: service %s builds %s, not the repository's Dockerfile", composeFile, name, filepath.Join(ctx, df))
			continue
		}
		nodes = append(nodes, name)
	}
	slices.Sort(nodes)
	if len(nodes) < 2 {
		t.Fatalf("%s: want two portcullis nodes built from the repository's Dockerfile, got %v", composeFile, nodes)
	}

	for _, name := range nodes {
		svc := services[name].(obj)
		where := composeFile + ": " + name
		env := composeEnv(t, dir, svc)

		// Where the configuration is, and that it is mounted there read-only.
		cfgPath, ok := configFlag(composeArgs(svc))
		if !ok {
			cfgPath = env["PORTCULLIS_CONFIG"]
		}
		if cfgPath == "" {
			cfgPath = img.env["PORTCULLIS_CONFIG"]
		}
		if v, ok := env["PORTCULLIS_CONFIG"]; ok && v != cfgPath {
			t.Errorf("%s: PORTCULLIS_CONFIG %q differs from --config %q", where, v, cfgPath)
		}
		var mount *composeMount
		for _, m := range composeMounts(svc) {
			if m.target == cfgPath {
				mount = &m
			}
		}
		if mount == nil {
			t.Fatalf("%s: nothing is mounted at the configuration path %s", where, cfgPath)
		}
		if !mount.readOnly {
			t.Errorf("%s: the configuration mount %s must be read-only (:ro)", where, mount.target)
		}
		if filepath.Clean(filepath.Join(dir, mount.source)) != filepath.Clean(repoPath("deploy/compose/portcullis.yaml")) {
			t.Errorf("%s: the configuration comes from %s, want ./compose/portcullis.yaml", where, mount.source)
		}
		cfgData, err := os.ReadFile(filepath.Join(dir, mount.source))
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}

		// Every variable the configuration needs is set, the admin token
		// from an env file.
		for _, v := range requiredVars(string(cfgData)) {
			if _, ok := env[v]; !ok {
				t.Errorf("%s: the configuration needs ${%s}, which the service does not set", where, v)
			}
		}
		if _, inline := objAt(svc, "environment")["PORTCULLIS_ADMIN_TOKEN"]; inline {
			t.Errorf("%s: PORTCULLIS_ADMIN_TOKEN must come from an env_file, not be written in the Compose file", where)
		}

		cfg := loadConfig(t, where, cfgPath, string(cfgData))
		mainPort, adminPort := checkConfig(t, where, cfg, img, len(nodes))

		// Published ports: the main and admin listeners, admin on loopback.
		var published []int
		for _, p := range composePorts(t, svc) {
			published = append(published, p.container)
			if p.container == adminPort && p.ip != "127.0.0.1" {
				t.Errorf("%s: the admin port %d must be published on 127.0.0.1 only", where, adminPort)
			}
		}
		if !sameInts(published, []int{mainPort, adminPort}) {
			t.Errorf("%s: publishes container ports %v, the configuration listens on %d and %d", where, published, mainPort, adminPort)
		}

		// Redis and the upstreams are services of this file.
		for _, a := range cfg.Store.Redis.Addrs {
			h, _, _ := net.SplitHostPort(a)
			if h != redisSvc {
				t.Errorf("%s: store.redis.addrs %q is not the redis service %q", where, a, redisSvc)
			}
		}
		if _, ok := objAt(svc, "depends_on")[redisSvc]; !ok && !slices.Contains(toStrings(listAt(svc, "depends_on")), redisSvc) {
			t.Errorf("%s: must depend on %s", where, redisSvc)
		}
		for i, r := range cfg.Routes {
			u := strings.TrimPrefix(strings.TrimPrefix(r.Upstream, "http://"), "https://")
			host, port, _ := net.SplitHostPort(strings.SplitN(u, "/", 2)[0])
			up, ok := services[host]
			if !ok {
				t.Errorf("%s: routes[%d].upstream %s is not a service of the Compose file", where, i, r.Upstream)
				continue
			}
			if p := strAt(up, "environment", "PORT"); p != "" && p != port {
				t.Errorf("%s: routes[%d].upstream uses port %s, service %s listens on %s", where, i, port, host, p)
			}
		}

		// Hardening, and time to drain before SIGKILL.
		if ro, _ := svc["read_only"].(bool); !ro {
			t.Errorf("%s: read_only: true is missing", where)
		}
		if !slices.Contains(toStrings(listAt(svc, "cap_drop")), "ALL") {
			t.Errorf("%s: cap_drop: [ALL] is missing", where)
		}
		grace, err := time.ParseDuration(strAt(svc, "stop_grace_period"))
		if err != nil {
			grace = 10 * time.Second // Compose's default
		}
		if need := cfg.Server.ShutdownDelay + cfg.Server.ShutdownTimeout; grace <= need {
			t.Errorf("%s: stop_grace_period %s must exceed server.shutdown_delay + server.shutdown_timeout = %s", where, grace, need)
		}
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// --- Kubernetes ---------------------------------------------------------------

const k8sDir = "deploy/kubernetes"

// manifest is one Kubernetes object and the file it came from.
type manifest struct {
	file string
	obj  obj
}

func (m manifest) kind() string { return strAt(m.obj, "kind") }
func (m manifest) name() string { return strAt(m.obj, "metadata", "name") }

func readManifests(t *testing.T) (objs []manifest, files []string) {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(repoPath(k8sDir), "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("%s: no manifests (%v)", k8sDir, err)
	}
	for _, p := range paths {
		files = append(files, filepath.Base(p))
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(f)
		for {
			var o obj
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			if o == nil {
				continue
			}
			if strAt(o, "apiVersion") == "" || strAt(o, "kind") == "" {
				t.Errorf("%s: a document without apiVersion or kind", p)
			}
			objs = append(objs, manifest{filepath.Base(p), o})
		}
		f.Close()
	}
	return objs, files
}

func find(objs []manifest, kind, name string) (obj, bool) {
	for _, m := range objs {
		if m.kind() == kind && m.name() == name {
			return m.obj, true
		}
	}
	return nil, false
}

// selects reports whether a label selector (matchLabels, or a Service's
// plain map) selects labels.
func selects(selector obj, labels obj) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// resolvePort turns a port reference (number or container port name) into a
// number.
func resolvePort(ref any, ports []any) int {
	switch r := ref.(type) {
	case int:
		return r
	case string:
		if n, err := strconv.Atoi(r); err == nil {
			return n
		}
		for _, p := range ports {
			if strAt(p, "name") == r {
				n, _ := intAt(p, "containerPort")
				return n
			}
		}
	}
	return 0
}

func seconds(d time.Duration) int { return int((d + time.Second - 1) / time.Second) }

func TestKubernetes(t *testing.T) {
	img := readDockerfile(t)
	objs, files := readManifests(t)

	// kustomization.yaml applies every manifest.
	kust, ok := find(objs, "Kustomization", "")
	if !ok {
		t.Errorf("%s: kustomization.yaml is missing", k8sDir)
	} else {
		res := toStrings(listAt(kust, "resources"))
		for _, f := range files {
			if f != "kustomization.yaml" && !slices.Contains(res, f) {
				t.Errorf("%s/kustomization.yaml does not list %s", k8sDir, f)
			}
		}
		for _, r := range res {
			if !slices.Contains(files, r) {
				t.Errorf("%s/kustomization.yaml lists %s, which does not exist", k8sDir, r)
			}
		}
	}

	dep, ok := find(objs, "Deployment", "portcullis")
	if !ok {
		t.Fatalf("%s: no Deployment portcullis", k8sDir)
	}
	where := k8sDir + ": Deployment portcullis"
	replicas, _ := intAt(dep, "spec", "replicas")
	if replicas != 2 {
		t.Errorf("%s: replicas %d, want 2", where, replicas)
	}
	podLabels := objAt(dep, "spec", "template", "metadata", "labels")
	if !selects(objAt(dep, "spec", "selector", "matchLabels"), podLabels) {
		t.Errorf("%s: spec.selector does not select the pod template's labels", where)
	}
	pod := objAt(dep, "spec", "template", "spec")
	var ctr obj
	for _, c := range listAt(pod, "containers") {
		if strAt(c, "name") == "portcullis" {
			ctr = c.(obj)
		}
	}
	if ctr == nil {
		t.Fatalf("%s: no container named portcullis", where)
	}

	// Environment: literal values, or keys of Secrets defined here.
	env := map[string]string{}
	for _, e := range listAt(ctr, "env") {
		name := strAt(e, "name")
		if ref := objAt(e, "valueFrom", "secretKeyRef"); ref != nil {
			sec, ok := find(objs, "Secret", strAt(ref, "name"))
			key := strAt(ref, "key")
			_, inData := objAt(sec, "data")[key]
			_, inString := objAt(sec, "stringData")[key]
			if !ok || !(inData || inString) {
				t.Errorf("%s: env %s references Secret %s key %s, which the manifests do not define", where, name, strAt(ref, "name"), key)
			}
			env[name] = "(secret)"
			continue
		}
		env[name] = strAt(e, "value")
	}
	if env["PORTCULLIS_ADMIN_TOKEN"] != "(secret)" {
		t.Errorf("%s: PORTCULLIS_ADMIN_TOKEN must come from a Secret (valueFrom.secretKeyRef)", where)
	}

	// The configuration path, and the ConfigMap mounted there.
	args := append(toStrings(listAt(ctr, "command")), toStrings(listAt(ctr, "args"))...)
	cfgPath, ok := configFlag(args)
	if !ok {
		cfgPath = env["PORTCULLIS_CONFIG"]
	}
	if cfgPath == "" {
		cfgPath = img.env["PORTCULLIS_CONFIG"]
	}
	if v, ok := env["PORTCULLIS_CONFIG"]; ok && v != cfgPath {
		t.Errorf("%s: PORTCULLIS_CONFIG %q differs from --config %q", where, v, cfgPath)
	}
	var cfgData string
	for _, vm := range listAt(ctr, "volumeMounts") {
		mp, sub := strAt(vm, "mountPath"), strAt(vm, "subPath")
		var key string
		switch {
		case sub != "" && mp == cfgPath:
			key = sub
		case sub == "" && path.Dir(cfgPath) == path.Clean(mp):
			key = path.Base(cfgPath)
		default:
			continue
		}
		if sub != "" {
			t.Errorf("%s: the configuration is mounted with subPath, which never sees ConfigMap updates", where)
		}
		if ro, _ := field(vm, "readOnly").(bool); !ro {
			t.Errorf("%s: the configuration mount must be readOnly", where)
		}
		for _, v := range listAt(pod, "volumes") {
			if strAt(v, "name") != strAt(vm, "name") {
				continue
			}
			cmName := strAt(v, "configMap", "name")
			cm, ok := find(objs, "ConfigMap", cmName)
			if !ok {
				t.Fatalf("%s: volume %s names ConfigMap %q, which the manifests do not define", where, strAt(v, "name"), cmName)
			}
			cfgData = strAt(cm, "data", key)
			if cfgData == "" {
				t.Fatalf("%s: ConfigMap %s has no key %s (mounted as %s)", where, cmName, key, cfgPath)
			}
		}
	}
	if cfgData == "" {
		t.Fatalf("%s: no ConfigMap is mounted at the configuration path %s", where, cfgPath)
	}
	for _, v := range requiredVars(cfgData) {
		if _, ok := env[v]; !ok {
			t.Errorf("%s: the configuration needs ${%s}, which the container does not set", where, v)
		}
	}
	cfg := loadConfig(t, where, cfgPath, cfgData)
	mainPort, adminPort := checkConfig(t, where, cfg, img, replicas)

	// Ports and probes.
	ports := listAt(ctr, "ports")
	var declared []int
	for _, p := range ports {
		n, _ := intAt(p, "containerPort")
		declared = append(declared, n)
	}
	if !sameInts(declared, []int{mainPort, adminPort}) {
		t.Errorf("%s: containerPorts %v, the configuration listens on %d and %d", where, declared, mainPort, adminPort)
	}
	for _, p := range []struct{ probe, path string }{
		{"readinessProbe", "/readyz"}, {"livenessProbe", "/healthz"}, {"startupProbe", ""},
	} {
		pr := objAt(ctr, p.probe)
		if pr == nil {
			if p.path != "" {
				t.Errorf("%s: %s is missing", where, p.probe)
			}
			continue
		}
		if p.path != "" && strAt(pr, "httpGet", "path") != p.path {
			t.Errorf("%s: %s path %q, want %s", where, p.probe, strAt(pr, "httpGet", "path"), p.path)
		}
		if got := resolvePort(field(pr, "httpGet", "port"), ports); got != adminPort {
			t.Errorf("%s: %s on port %d, want the admin port %d", where, p.probe, got, adminPort)
		}
	}

	// Security context: non-root (the image's user), read-only root,
	// no privilege escalation, no capabilities.
	sc, psc := objAt(ctr, "securityContext"), objAt(pod, "securityContext")
	pick := func(key string) any {
		if v, ok := sc[key]; ok {
			return v
		}
		return psc[key]
	}
	if v, _ := pick("runAsNonRoot").(bool); !v {
		t.Errorf("%s: runAsNonRoot: true is missing", where)
	}
	if uid, ok := pick("runAsUser").(int); ok && uid != img.uid {
		t.Errorf("%s: runAsUser %d differs from the Dockerfile's USER %s", where, uid, img.user)
	}
	if v, _ := sc["readOnlyRootFilesystem"].(bool); !v {
		t.Errorf("%s: readOnlyRootFilesystem: true is missing", where)
	}
	if v, ok := sc["allowPrivilegeEscalation"].(bool); !ok || v {
		t.Errorf("%s: allowPrivilegeEscalation: false is missing", where)
	}
	if !slices.Contains(toStrings(listAt(sc, "capabilities", "drop")), "ALL") {
		t.Errorf("%s: capabilities.drop: [ALL] is missing", where)
	}
	for _, k := range []string{"requests", "limits"} {
		if strAt(ctr, "resources", k, "memory") == "" {
			t.Errorf("%s: resources.%s.memory is missing", where, k)
		}
	}

	// Time to drain before SIGKILL.
	grace, ok := intAt(pod, "terminationGracePeriodSeconds")
	if !ok {
		grace = 30
	}
	if need := seconds(cfg.Server.ShutdownDelay + cfg.Server.ShutdownTimeout); grace <= need {
		t.Errorf("%s: terminationGracePeriodSeconds %d must exceed server.shutdown_delay + server.shutdown_timeout = %ds", where, grace, need)
	}
	if cfg.Server.ShutdownDelay == 0 && objAt(ctr, "lifecycle", "preStop") == nil {
		t.Errorf("%s: set server.shutdown_delay (or a preStop hook) so that endpoints are removed before the listener closes", where)
	}

	// Services: the main one targets the main port; none exposes the admin
	// port outside the cluster.
	if _, ok := find(objs, "Service", "portcullis"); !ok {
		t.Errorf("%s: no Service portcullis", k8sDir)
	}
	for _, m := range objs {
		if m.kind() != "Service" || !selects(objAt(m.obj, "spec", "selector"), podLabels) {
			continue
		}
		typ := strAt(m.obj, "spec", "type")
		for _, p := range listAt(m.obj, "spec", "ports") {
			target := field(p, "targetPort")
			if target == nil {
				target = field(p, "port")
			}
			n := resolvePort(target, ports)
			if n != mainPort && n != adminPort {
				t.Errorf("%s: Service %s targets port %v, which the container does not listen on", m.file, m.name(), target)
			}
			if n == adminPort && (typ == "LoadBalancer" || typ == "NodePort") {
				t.Errorf("%s: Service %s exposes the admin port outside the cluster (type %s)", m.file, m.name(), typ)
			}
			if m.name() == "portcullis" && n != mainPort {
				t.Errorf("%s: Service portcullis must target the main port %d, not %v", m.file, mainPort, target)
			}
		}
	}

	// A NetworkPolicy restricts who reaches the admin port.
	restricted := false
	for _, m := range objs {
		if m.kind() != "NetworkPolicy" || !selects(objAt(m.obj, "spec", "podSelector", "matchLabels"), podLabels) {
			continue
		}
		for _, rule := range listAt(m.obj, "spec", "ingress") {
			for _, p := range listAt(rule, "ports") {
				if resolvePort(field(p, "port"), ports) == adminPort {
					restricted = len(listAt(rule, "from")) > 0
				}
			}
		}
	}
	if !restricted {
		t.Errorf("%s: no NetworkPolicy limits the sources of the admin port %d", k8sDir, adminPort)
	}

	// Redis: the configured address is a Service of the manifests (or a
	// managed Redis outside them), with persistence.
	for _, a := range cfg.Store.Redis.Addrs {
		host, port, _ := net.SplitHostPort(a)
		svcName, _, _ := strings.Cut(host, ".")
		svc, ok := find(objs, "Service", svcName)
		if !ok {
			continue
		}
		found := false
		for _, p := range listAt(svc, "spec", "ports") {
			if strAt(p, "port") == port {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: store.redis.addrs %q: Service %s has no port %s", where, a, svcName, port)
		}
		for _, m := range objs {
			if m.kind() != "StatefulSet" && m.kind() != "Deployment" || !selects(objAt(svc, "spec", "selector"), objAt(m.obj, "spec", "template", "metadata", "labels")) {
				continue
			}
			for _, c := range listAt(m.obj, "spec", "template", "spec", "containers") {
				cmd := strings.Join(append(toStrings(listAt(c, "command")), toStrings(listAt(c, "args"))...), " ")
				if !strings.Contains(cmd, "--appendonly yes") {
					t.Errorf("%s: %s %s: Redis must run with --appendonly yes", m.file, m.kind(), m.name())
				}
			}
		}
	}
}

// TestComposeAndKubernetesAgree checks that both examples use the same
// ports, so that the docs and the Dockerfile describe one product.
func TestComposeAndKubernetesAgree(t *testing.T) {
	t.Parallel()
	compose, err := os.ReadFile(repoPath("deploy/compose/portcullis.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	objs, _ := readManifests(t)
	cm, ok := find(objs, "ConfigMap", "portcullis-config")
	if !ok {
		t.Fatal("no ConfigMap portcullis-config")
	}
	listens := func(data string) [2]string {
		var c struct {
			Server struct{ Listen string } `yaml:"server"`
			Admin  struct{ Listen string } `yaml:"admin"`
		}
		if err := yaml.Unmarshal([]byte(data), &c); err != nil {
			t.Fatal(err)
		}
		return [2]string{c.Server.Listen, c.Admin.Listen}
	}
	for _, data := range cm["data"].(obj) {
		if a, b := listens(string(compose)), listens(data.(string)); a != b {
			t.Errorf("listeners differ: compose %q, kubernetes %q", a, b)
		}
	}
}
