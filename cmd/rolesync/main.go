// Command rolesync is the operator's command-line companion, and a kubectl
// plugin when installed as kubectl-rolesync (kubectl rolesync explain|diff).
//
//	rolesync explain -f <RoleMapping YAML file or directory> --claims <claims.json|-> [--issuer URL] [-o text|json]
//	rolesync explain --user NAME [-n NAMESPACE] [-f files] [--users export] [-o text|json]
//	rolesync diff -f <proposed RoleMappings> [--base files] [--users export] [-n NS | -A] [-o text|json|markdown] [--fail-on escalation]
//
// explain prints which role the mappings grant for a set of decoded token
// claims, or for a live ProxyUser from the claims it stores, and why: every
// rule that matched, the winner and the reason. diff lists every user whose
// decision a proposed RoleMapping change moves (docs/review.md). Both make
// the controller's own decision (proxyuser.Decide), with the mappings in
// force. Invalid input exits 2, naming the file and the field.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/claimpath"
	"github.com/rolesync/rolesync/internal/proxyuser"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitInvalid = 2
)

// maxInputBytes bounds every file and the claims read.
const maxInputBytes = 8 << 20

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, usage)
		if len(args) == 0 {
			return exitInvalid
		}
		return exitOK
	}
	switch args[0] {
	case "explain":
		return explain(args[1:], stdin, stdout, stderr)
	case "diff":
		return diff(args[1:], stdout, stderr)
	case "version":
		return versionCmd(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "rolesync: unknown command %q\n%s\n", args[0], usage)
		return exitInvalid
	}
}

const usage = `usage: rolesync explain -f <RoleMapping file or directory> --claims <claims.json|-> [--issuer URL] [-o text|json]
       rolesync explain --user NAME [-n NAMESPACE] [-f <files>] [--users <export>] [-o text|json]
       rolesync diff -f <proposed RoleMappings> [--base <files>] [--users <export>] [-n NAMESPACE | -A]
                     [--prune] [-o text|json|markdown] [--fail-on escalation]
       rolesync version [-o text|json]
Cluster flags (kubectl's): --kubeconfig, --context, -n/--namespace, -A/--all-namespaces.
As a kubectl plugin (the binary named kubectl-rolesync on PATH): kubectl rolesync explain|diff|version ...`

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func explain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := newCommand("explain", "", stderr)
	fs := cmd.fs
	var files stringList
	var kube kubeFlags
	fs.Var(&files, "f", "RoleMapping YAML file or directory (repeatable; directories are read recursively); with --user, default: the cluster's mappings in force")
	claimsPath := fs.String("claims", "", "decoded token claims as a JSON object: a file, or - for stdin")
	issuer := fs.String("issuer", "", "issuer URL of the login (mappings with another issuer do not apply)")
	user := fs.String("user", "", "explain this ProxyUser (by name) from the claims it stores, its issuer and its roleOverride")
	usersFile := fs.String("users", "", "with --user: read the ProxyUser from this export (kubectl get proxyusers -o yaml|json) instead of the cluster")
	output := fs.String("o", "text", "output format: text or json")
	kube.bind(fs)
	if code, ok := cmd.parse(args); !ok {
		return code
	}
	fail := cmd.fail
	switch {
	case *output != "text" && *output != "json":
		return fail("-o must be text or json, not %q", *output)
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case *user != "":
		if *claimsPath != "" || *issuer != "" {
			return fail("--user explains the stored claims and issuer: drop --claims and --issuer")
		}
		return explainUser(*user, files, *usersFile, &kube, *output, stdout, stderr)
	case len(files) == 0:
		return fail("-f is required (or --user)")
	case *claimsPath == "":
		return fail("--claims is required (or --user)")
	}
	mappings, err := loadMappings(files)
	if err != nil {
		return fail("%v", err)
	}
	claims, err := loadClaims(*claimsPath, stdin)
	if err != nil {
		return fail("%v", err)
	}
	// The same decision the controller and the login server make (for a
	// user with these claims and no override).
	engine := rolemap.NewEngine(mappings...)
	in := proxyuser.Input{Engine: engine, Issuer: *issuer, Login: claims}
	d := proxyuser.Decide(in).Engine
	var td rolemap.TeamDecision
	teams := proxyuser.Teams(in, claims, d.Denied, &td)
	if *output == "json" {
		doc := toJSON(d)
		doc.Teams = append(doc.Teams, teams...)
		for _, g := range td.Dropped {
			doc.DroppedTeams = append(doc.DroppedTeams, g.Team)
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(doc); err != nil {
			fmt.Fprintf(stderr, "rolesync explain: %v\n", err)
			return exitFailure
		}
		return exitOK
	}
	printText(stdout, d, len(mappings))
	printTeams(stdout, teams, &td)
	return exitOK
}

// printTeams lists the teams granted, and those dropped for being outside
// the granting mapping's allowedTeams.
func printTeams(w io.Writer, teams []rolesyncv1.TeamMembership, td *rolemap.TeamDecision) {
	if len(teams) > 0 {
		fmt.Fprintln(w, "Teams:")
		for _, m := range teams {
			fmt.Fprintf(w, "  %s (%s) <- %s\n", m.Team, m.Role, m.Source)
		}
	}
	for _, g := range td.Dropped {
		fmt.Fprintf(w, "Dropped:  team %s from %s: not in that mapping's allowedTeams\n", g.Team, g.Describe())
	}
}

// explainJSON is the -o json document; its keys are a stable interface.
type explainJSON struct {
	Role    rolesyncv1.Role `json:"role"`
	Denied  bool            `json:"denied"`
	Reason  string          `json:"reason"`
	Message string          `json:"message"`
	Source  sourceJSON      `json:"source"`
	Matches []rolemap.Match `json:"matches"`
	// Teams are the LiteLLM team memberships granted (empty when denied).
	Teams []rolesyncv1.TeamMembership `json:"teams"`
	// DroppedTeams are templated teams outside their mapping's allowedTeams.
	DroppedTeams []string `json:"droppedTeams,omitempty"`
}

type sourceJSON struct {
	Type        string `json:"type,omitempty"`
	RoleMapping string `json:"roleMapping,omitempty"`
	Rule        *int   `json:"rule,omitempty"`
	Claim       string `json:"claim,omitempty"`
	Value       string `json:"value,omitempty"`
}

func toJSON(d rolemap.Decision) explainJSON {
	out := explainJSON{
		Role: d.Role, Denied: d.Denied, Reason: d.Reason, Message: d.Message(),
		Source:  sourceJSON{Type: string(d.Source.Type), RoleMapping: d.Source.RoleMapping, Claim: d.Source.Claim, Value: d.Source.Value},
		Matches: []rolemap.Match{},
		Teams:   []rolesyncv1.TeamMembership{},
	}
	if d.Source.Rule >= 0 {
		r := d.Source.Rule
		out.Source.Rule = &r
	}
	out.Matches = append(out.Matches, d.Matches...)
	return out
}

func printText(w io.Writer, d rolemap.Decision, n int) {
	if d.Denied {
		fmt.Fprintf(w, "Decision: DENIED (%s)\n", d.Reason)
	} else {
		fmt.Fprintf(w, "Decision: %s (%s)\n", d.Role, d.Reason)
	}
	fmt.Fprintf(w, "Why:      %s\n", d.Message())
	fmt.Fprintf(w, "Mappings: %d read\n", n)
	if len(d.Matches) == 0 {
		fmt.Fprintln(w, "Matches:  none")
		return
	}
	fmt.Fprintln(w, "Matches:")
	for _, m := range d.Matches {
		mark := " "
		if !d.Denied && m.RoleMapping == d.Source.RoleMapping && m.Rule == d.Source.Rule {
			mark = "*"
		}
		what := "expression"
		if m.Claim != "" {
			what = m.Claim + "=" + m.Value
		}
		fmt.Fprintf(w, "  %s %s#%d (priority %d) %s -> %s\n", mark, m.RoleMapping, m.Rule, m.Priority, what, m.Role)
	}
}

// loadMappings reads every RoleMapping in the files and directories given,
// validates and compiles them. Other kinds are ignored.
func loadMappings(paths []string) ([]*rolemap.Mapping, error) {
	return loadMappingsIn(paths, "default")
}

// loadMappingsIn is loadMappings with defaultNS for documents that name no
// namespace (kubectl's rule: -n, else the context's namespace).
func loadMappingsIn(paths []string, defaultNS string) ([]*rolemap.Mapping, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch strings.ToLower(filepath.Ext(path)) {
			case ".yaml", ".yml", ".json":
				if !de.IsDir() {
					files = append(files, path)
				}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(files)
	var out []*rolemap.Mapping
	seen := map[string]string{}
	for _, f := range files {
		ms, err := loadFile(f, defaultNS)
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			if prev, dup := seen[m.Key()]; dup {
				return nil, fmt.Errorf("%s: RoleMapping %s is also defined in %s", f, m.Key(), prev)
			}
			seen[m.Key()] = f
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no RoleMapping found in %s", strings.Join(paths, ", "))
	}
	return out, nil
}

func loadFile(name, defaultNS string) ([]*rolemap.Mapping, error) {
	data, err := readBounded(name, nil)
	if err != nil {
		return nil, err
	}
	reader := utilyaml.NewYAMLReader(bufioReader(data))
	var out []*rolemap.Mapping
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		var meta struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal(raw, &meta); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if meta.Kind != "RoleMapping" {
			continue
		}
		if meta.APIVersion != rolesyncv1.GroupVersion.String() {
			return nil, fmt.Errorf("%s: document %d: apiVersion %q, want %s", name, doc, meta.APIVersion, rolesyncv1.GroupVersion)
		}
		rm := &rolesyncv1.RoleMapping{}
		if err := yaml.UnmarshalStrict(raw, rm); err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if rm.Name == "" {
			return nil, fmt.Errorf("%s: document %d: metadata.name: Required value", name, doc)
		}
		if rm.Namespace == "" {
			rm.Namespace = defaultNS
		}
		m, errs := rolemap.Compile(rm)
		if len(errs) > 0 {
			msgs := make([]string, len(errs))
			for i, e := range errs {
				msgs[i] = e.Error()
			}
			return nil, fmt.Errorf("%s: RoleMapping %s/%s is invalid:\n  %s", name, rm.Namespace, rm.Name, strings.Join(msgs, "\n  "))
		}
		out = append(out, m)
	}
	return out, nil
}

func loadClaims(name string, stdin io.Reader) (map[string]any, error) {
	data, err := readBounded(name, stdin)
	if err != nil {
		return nil, err
	}
	label := name
	if name == "-" {
		label = "claims from stdin"
	}
	// Numbers stay exact, as the login server and the controller decode them.
	claims, err := claimpath.DecodeClaims(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", label, err)
	}
	if claims == nil {
		return nil, fmt.Errorf("%s: not a JSON object", label)
	}
	return claims, nil
}

func readBounded(name string, stdin io.Reader) ([]byte, error) {
	return readBoundedFrom(name, stdin, maxInputBytes)
}

func readBoundedN(name string, limit int64) ([]byte, error) {
	return readBoundedFrom(name, nil, limit)
}

func readBoundedFrom(name string, stdin io.Reader, limit int64) ([]byte, error) {
	var r io.Reader
	if name == "-" && stdin != nil {
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer func() { _ = f.Close() }()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return data, nil
}

func bufioReader(data []byte) *bufio.Reader { return bufio.NewReader(bytes.NewReader(data)) }

// command is a subcommand's flag set and its error reporting: the prelude
// every subcommand shares.
type command struct {
	name   string
	fs     *flag.FlagSet
	stderr io.Writer
}

// newCommand returns the flag set of subcommand name, writing to stderr;
// usage, when set, is printed above the flags by -h.
func newCommand(name, usage string, stderr io.Writer) *command {
	c := &command{name: name, fs: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr}
	c.fs.SetOutput(stderr)
	if usage != "" {
		c.fs.Usage = func() { fmt.Fprintln(stderr, usage); c.fs.PrintDefaults() }
	}
	return c
}

// parse parses args; when it returns false the command ends with code
// (exitOK for -h, exitInvalid for a bad flag, which the flag package has
// reported).
func (c *command) parse(args []string) (int, bool) {
	if err := c.fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitInvalid, false
	}
	return 0, true
}

// fail reports invalid input, naming the subcommand, and returns exitInvalid.
func (c *command) fail(format string, a ...any) int {
	fmt.Fprintf(c.stderr, "rolesync "+c.name+": "+format+"\n", a...)
	return exitInvalid
}
