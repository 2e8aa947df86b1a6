package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	rolesyncv1 "github.com/rolesync/rolesync/api/v1"
	"github.com/rolesync/rolesync/internal/review"
	"github.com/rolesync/rolesync/internal/rolemap"
)

// Exit codes of diff besides exitOK (no change) and exitInvalid.
const (
	exitChanges    = 1
	exitEscalation = 3
)

// maxUsersBytes bounds a --users export (10,000 users are about 5 MiB).
const maxUsersBytes = 512 << 20

const diffUsage = `usage: rolesync diff -f <proposed RoleMappings: file or directory>... [--base <files>...] [--users <export>]
                     [--prune] [-o text|json|markdown] [--fail-on escalation]
                     [--kubeconfig FILE] [--context NAME] [-n NAMESPACE | -A]

Decides every user's role under the mappings in force (the live cluster's, or --base files) and under the
proposed ones (-f, replacing mappings of the same namespace/name), from the claims each ProxyUser stores (the
live cluster's, or --users, an export from kubectl get proxyusers -o yaml|json), and lists every user whose
decision changes, privilege gains first, then the count of each transition.

Exit codes: 0 no change, 1 changes, 2 invalid input, 3 (with --fail-on escalation) a user would gain privilege
(a higher role, a team or a team's admin, or possibly more at the next login: a rule reads a claim their
ProxyUser does not store; store it first with the mapping's spec.keepClaims).`

type diffOptions struct {
	kube      kubeFlags
	proposed  stringList
	base      stringList
	usersFile string
	prune     bool
	output    string
	failOn    string
	brake     review.Brake
}

func diff(args []string, stdout, stderr io.Writer) int {
	var o diffOptions
	cmd := newCommand("diff", diffUsage, stderr)
	fs := cmd.fs
	fs.Var(&o.proposed, "f", "proposed RoleMappings: a YAML file or directory (repeatable, read recursively)")
	fs.Var(&o.base, "base", "the mappings in force as files instead of the live cluster's (repeatable)")
	fs.StringVar(&o.usersFile, "users", "", "ProxyUsers exported with kubectl get proxyusers -o yaml|json, instead of the live cluster's")
	fs.BoolVar(&o.prune, "prune", false, "a namespace with proposed mappings holds exactly those: its other mappings are deleted (a GitOps directory of the whole namespace)")
	fs.StringVar(&o.output, "o", "text", "output: text, json or markdown")
	fs.StringVar(&o.failOn, "fail-on", "", "escalation: exit 3 when any user would gain privilege: a higher role, a team or a team's admin, or possibly more at the next login through a rule reading a claim not stored for them (a CI gate)")
	fs.IntVar(&o.brake.Percent, "brake-percent", review.DefaultBrake.Percent, "the operator's --brake-percent: say where its mass-change brake would hold the change (0: off)")
	fs.IntVar(&o.brake.MinUsers, "brake-min-users", review.DefaultBrake.MinUsers, "the operator's --brake-min-users")
	o.kube.bind(fs)
	if code, ok := cmd.parse(args); !ok {
		return code
	}
	fail := cmd.fail
	switch {
	case o.brake.Percent < 0 || o.brake.Percent > 100 || o.brake.MinUsers < 1:
		return fail("--brake-percent must be 0 to 100 and --brake-min-users at least 1")
	case len(o.proposed) == 0:
		return fail("-f is required (the proposed RoleMappings)")
	case o.output != "text" && o.output != "json" && o.output != "markdown":
		return fail("-o must be text, json or markdown, not %q", o.output)
	case o.failOn != "" && o.failOn != "escalation":
		return fail("--fail-on must be escalation, not %q", o.failOn)
	case fs.NArg() > 0:
		return fail("unexpected argument %q", fs.Arg(0))
	case o.kube.allNamespaces && o.kube.namespace != "":
		return fail("-n and -A exclude each other")
	}
	report, err := o.run(context.Background(), stderr)
	if err != nil {
		var inv *invalidInput
		if errors.As(err, &inv) {
			return fail("%v", err)
		}
		fmt.Fprintf(stderr, "rolesync diff: %v\n", err)
		return exitFailure
	}
	report.ApplyBrake(o.brake)
	var werr error
	switch o.output {
	case "json":
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		werr = enc.Encode(report)
	case "markdown":
		werr = printMarkdown(stdout, report)
	default:
		werr = printDiffText(stdout, report)
	}
	if werr != nil {
		fmt.Fprintf(stderr, "rolesync diff: %v\n", werr)
		return exitFailure
	}
	switch {
	case o.failOn == "escalation" && report.Escalates():
		return exitEscalation
	case len(report.Changes) > 0:
		return exitChanges
	}
	return exitOK
}

// invalidInput is an error in what the user gave (exit 2).
type invalidInput struct{ err error }

func (e *invalidInput) Error() string { return e.err.Error() }
func (e *invalidInput) Unwrap() error { return e.err }

func invalid(err error) error { return &invalidInput{err} }

// run reads the inputs and computes the report.
func (o *diffOptions) run(ctx context.Context, stderr io.Writer) (review.Report, error) {
	offline := len(o.base) > 0 && o.usersFile != ""
	// The scope: -A, -n, the context's namespace, or (offline, no -n) every
	// namespace of the files.
	namespace := ""
	if !o.kube.allNamespaces && (!offline || o.kube.namespace != "") {
		ns, err := o.kube.resolvedNamespace()
		if err != nil {
			return review.Report{}, err
		}
		namespace = ns
	}
	defaultNS := namespace
	if defaultNS == "" {
		defaultNS = "default"
	}
	proposed, err := loadMappingsIn(o.proposed, defaultNS)
	if err != nil {
		return review.Report{}, invalid(err)
	}
	var c *cluster
	if !offline {
		if c, err = o.kube.connect(); err != nil {
			return review.Report{}, err
		}
	}
	var base []*rolemap.Mapping
	if len(o.base) > 0 {
		if base, err = loadMappingsIn(o.base, defaultNS); err != nil {
			return review.Report{}, invalid(err)
		}
	} else if base, err = c.mappings(ctx, namespace, func(w string) { fmt.Fprintln(stderr, "rolesync diff: warning:", w) }); err != nil {
		return review.Report{}, err
	}
	var users []rolesyncv1.ProxyUser
	if o.usersFile != "" {
		if users, err = loadUsers(o.usersFile); err != nil {
			return review.Report{}, invalid(err)
		}
	} else if users, err = c.users(ctx, namespace); err != nil {
		return review.Report{}, err
	}
	if namespace != "" {
		base, proposed, users = inNamespace(base, namespace), inNamespace(proposed, namespace), usersIn(users, namespace)
	}
	return review.Diff(users, engines(base), engines(overlay(base, proposed, o.prune))), nil
}

func inNamespace(ms []*rolemap.Mapping, ns string) []*rolemap.Mapping {
	var out []*rolemap.Mapping
	for _, m := range ms {
		if m.Namespace == ns {
			out = append(out, m)
		}
	}
	return out
}

func usersIn(users []rolesyncv1.ProxyUser, ns string) []rolesyncv1.ProxyUser {
	out := users[:0:0]
	for _, u := range users {
		if u.Namespace == ns {
			out = append(out, u)
		}
	}
	return out
}

// loadUsers reads a ProxyUser export: a List (kubectl get -o json|yaml),
// ProxyUser documents, or several YAML documents of either.
func loadUsers(name string) ([]rolesyncv1.ProxyUser, error) {
	data, err := readBoundedN(name, maxUsersBytes)
	if err != nil {
		return nil, err
	}
	var out []rolesyncv1.ProxyUser
	add := func(doc []byte, where string) error {
		var head struct {
			Kind  string            `json:"kind"`
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal(doc, &head); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		items := [][]byte{doc}
		switch head.Kind {
		case "List", "ProxyUserList":
			items = items[:0]
			for _, it := range head.Items {
				items = append(items, it)
			}
		case "ProxyUser":
		case "":
			return nil // an empty document
		default:
			return fmt.Errorf("%s: kind %q: want ProxyUser, ProxyUserList or List", where, head.Kind)
		}
		for i, it := range items {
			var pu rolesyncv1.ProxyUser
			if err := json.Unmarshal(it, &pu); err != nil {
				return fmt.Errorf("%s: item %d: %w", where, i, err)
			}
			if pu.Kind != "ProxyUser" {
				return fmt.Errorf("%s: item %d: kind %q, want ProxyUser", where, i, pu.Kind)
			}
			if pu.Namespace == "" || pu.Name == "" {
				return fmt.Errorf("%s: item %d: metadata.namespace and metadata.name are required", where, i)
			}
			out = append(out, pu)
		}
		return nil
	}
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		if err := add(trimmed, name); err != nil {
			return nil, err
		}
		return out, nil
	}
	reader := utilyaml.NewYAMLReader(bufioReader(data))
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, doc, err)
		}
		if string(js) == "null" {
			continue
		}
		if err := add(js, fmt.Sprintf("%s: document %d", name, doc)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func printDiffText(w io.Writer, r review.Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "rolesync diff: %s\n", r.Summary())
	section := func(title string, in func(review.Change) bool) {
		first := true
		for _, c := range r.Changes {
			if !in(c) {
				continue
			}
			if first {
				fmt.Fprintf(&b, "\n%s\n", title)
				first = false
			}
			fmt.Fprintf(&b, "  %s/%s (%s): %s -> %s   [%s -> %s]%s\n", c.Namespace, c.Name, text(c.UserID), c.Old, c.New,
				text(orNone(c.Old.Source)), text(orNone(c.New.Source)), text(teamText(c)))
		}
	}
	section("PRIVILEGE GAINS", func(c review.Change) bool { return c.Gain })
	section("TEAM GAINS (joins a team or becomes its admin)", func(c review.Change) bool { return !c.Gain && c.TeamGain })
	section("OTHER CHANGES", func(c review.Change) bool { return !c.Gain && !c.TeamGain })
	if len(r.Unknown) > 0 {
		fmt.Fprintf(&b, "\nOUTCOME UNKNOWN AT NEXT LOGIN (a proposed rule reads a claim their ProxyUsers do not store; keep it first: spec.keepClaims)\n")
		for _, u := range r.Unknown {
			fmt.Fprintf(&b, "  %s: %s\n", u.Namespace, unknownText(u))
		}
	}
	if len(r.Transitions) > 0 {
		fmt.Fprintf(&b, "\nTRANSITIONS\n")
		for _, t := range r.Transitions {
			mark := ""
			if t.Gain {
				mark = "  (gain)"
			}
			fmt.Fprintf(&b, "  %6d  %s -> %s%s\n", t.Users, t.From, t.To, mark)
		}
	}
	if len(r.Held) > 0 {
		fmt.Fprintf(&b, "\nMASS-CHANGE BRAKE (the operator holds the edit until it is confirmed)\n")
		for _, h := range r.Held {
			fmt.Fprintf(&b, "  %s: denies or demotes %d of %d users (the brake holds %d or more); once applied, confirm with kubectl annotate rolemapping NAME -n %s %s=<its generation>\n",
				h.Namespace, h.Lost, h.Users, h.Threshold, h.Namespace, rolesyncv1.ConfirmGenerationAnnotation)
		}
	}
	if len(r.Overridden) > 0 {
		fmt.Fprintf(&b, "\nUNAFFECTED (spec.roleOverride decides)\n")
		for _, c := range r.Overridden {
			fmt.Fprintf(&b, "  %s/%s (%s): the claims alone would go %s -> %s\n", c.Namespace, c.Name, text(c.UserID), c.Old, c.New)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// unknownText says what is unknown about one claim.
func unknownText(u review.UnknownClaim) string {
	claim := "claim `" + u.Claim + "`"
	if u.Claim == rolemap.AnyClaim {
		claim = "claims read by expression rules"
	}
	s := fmt.Sprintf("outcome unknown at next login: %s not stored for %s users", claim, thousands(u.Users))
	if u.CouldGain > 0 {
		s += fmt.Sprintf(" (%s could gain: a rule reading it grants more than predicted; e.g. %s)", thousands(u.CouldGain), strings.Join(u.Gainers, ", "))
	}
	return s
}

// thousands writes n with comma separators: 1,204.
func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// text makes a value safe for one line of the text report: control
// characters (a line break in a claim value) become spaces.
func text(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// teamText lists the teams a change grants and takes away.
func teamText(c review.Change) string {
	var parts []string
	if len(c.TeamsGained) > 0 {
		parts = append(parts, "teams +"+strings.Join(c.TeamsGained, ", +"))
	}
	if len(c.TeamsLost) > 0 {
		parts = append(parts, "teams -"+strings.Join(c.TeamsLost, ", -"))
	}
	if len(parts) == 0 {
		return ""
	}
	return "   " + strings.Join(parts, "; ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// printMarkdown writes a pull-request comment. Every value that comes from
// a user, a claim or a mapping goes through md.
func printMarkdown(w io.Writer, r review.Report) error {
	var b strings.Builder
	icon := "✅"
	switch {
	case r.Escalates():
		icon = "⚠️"
	case len(r.Changes) > 0:
		icon = "ℹ️"
	}
	fmt.Fprintf(&b, "### %s rolesync diff: %s\n\n", icon, r.Summary()) // counts only
	for _, h := range r.Held {
		fmt.Fprintf(&b, "> **Mass-change brake:** in namespace %s this denies or demotes %d of %d users (the brake holds %d or more): the operator holds it until `%s` names its generation.\n\n",
			md(h.Namespace), h.Lost, h.Users, h.Threshold, rolesyncv1.ConfirmGenerationAnnotation)
	}
	for _, u := range r.Unknown {
		mark := ""
		if u.CouldGain > 0 {
			mark = "⚠️ "
		}
		fmt.Fprintf(&b, "> %s**Outcome unknown at next login** in namespace %s: %s\n\n", mark, md(u.Namespace), md(unknownText(u)))
	}
	if len(r.Changes) > 0 {
		b.WriteString("| | user | namespace | role | decided by | teams |\n|---|---|---|---|---|---|\n")
		for _, c := range r.Changes {
			mark := ""
			switch {
			case c.Gain:
				mark = "⬆️ gain"
			case c.TeamGain:
				mark = "⬆️ team gain"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s → **%s** | %s → %s | %s |\n", mark, md(c.UserID), md(c.Namespace), md(c.Old.String()), md(c.New.String()),
				md(orNone(c.Old.Source)), md(orNone(c.New.Source)), md(strings.TrimSpace(teamText(c))))
		}
		b.WriteString("\n| users | from | to | |\n|---:|---|---|---|\n")
		for _, t := range r.Transitions {
			mark := ""
			if t.Gain {
				mark = "⬆️ gain"
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %s |\n", t.Users, md(t.From), md(t.To), mark)
		}
	}
	if len(r.Overridden) > 0 {
		fmt.Fprintf(&b, "\n%d user(s) with `spec.roleOverride` are unaffected: ", len(r.Overridden))
		names := make([]string, len(r.Overridden))
		for i, c := range r.Overridden {
			names[i] = md(c.Namespace + "/" + c.Name)
		}
		b.WriteString(strings.Join(names, ", ") + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdSpecial are the characters with a meaning inside a GitHub-flavoured
// Markdown table cell (cells are inline: block syntax such as a leading
// "-" or "#" cannot start there): code spans, emphasis, links and images,
// raw HTML and entities, strikethrough, math, the cell separator, issue
// references, and the ":" of autolinked URLs.
const mdSpecial = "\\`*_[]()!<>&|~$#{}:"

// md makes s inert text in a Markdown table cell: control characters (CR,
// LF, tabs, Unicode line separators) become spaces, so a row stays one
// row; each of mdSpecial is backslash-escaped (CommonMark allows it for
// any ASCII punctuation), so no "|" ends a cell and no "[", "!", "`" or
// "<" starts a link, an image, a code span or HTML; and "@" is followed by
// a zero-width space, so "@org/team" mentions nobody.
func md(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			b.WriteByte(' ')
		case r == '@':
			b.WriteString("@\u200b")
		case strings.ContainsRune(mdSpecial, r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
