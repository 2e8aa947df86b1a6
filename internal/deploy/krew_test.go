package deploy

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/rolesync/rolesync/internal/testing/testenv"
)

// krewPlugin is the part of krew's Plugin manifest (v1alpha2) that krew
// validates before installing.
type krewPlugin struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Version          string `json:"version"`
		Homepage         string `json:"homepage"`
		ShortDescription string `json:"shortDescription"`
		Description      string `json:"description"`
		Caveats          string `json:"caveats"`
		Platforms        []struct {
			Selector struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			URI    string `json:"uri"`
			Sha256 string `json:"sha256"`
			Bin    string `json:"bin"`
		} `json:"platforms"`
	} `json:"spec"`
}

// TestKrewManifest builds the plugin release for this platform with
// hack/krew-release.sh and checks the manifest as krew would: its kind and
// name, a semantic version, an https URI and a sha256 per platform that
// matches the archive, an archive holding the bin, and a bin that runs and
// prints the version the manifest names.
func TestKrewManifest(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(testenv.RepoRoot(), "hack", "krew-release.sh"), "v0.1.0")
	cmd.Env = append(os.Environ(), "OUT="+out, "PLATFORMS="+runtime.GOOS+"/"+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("krew-release.sh: %v\n%s", err, b)
	}
	data, err := os.ReadFile(filepath.Join(out, "rolesync.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var p krewPlugin
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		t.Fatalf("the manifest: %v\n%s", err, data)
	}
	switch {
	case p.APIVersion != "krew.googlecontainertools.github.com/v1alpha2" || p.Kind != "Plugin":
		t.Fatalf("not a krew Plugin: %s %s", p.APIVersion, p.Kind)
	case p.Metadata.Name != "rolesync":
		t.Fatalf("name %q: krew runs the plugin as kubectl-<name>", p.Metadata.Name)
	case !regexp.MustCompile(`^v\d+\.\d+\.\d+$`).MatchString(p.Spec.Version):
		t.Fatalf("version %q is not vMAJOR.MINOR.PATCH", p.Spec.Version)
	case p.Spec.ShortDescription == "" || len(p.Spec.ShortDescription) > 50 || p.Spec.Description == "" || !strings.HasPrefix(p.Spec.Homepage, "https://"):
		t.Fatalf("descriptions and homepage: %+v", p.Spec)
	case len(p.Spec.Platforms) != 1:
		t.Fatalf("%d platforms, want this one", len(p.Spec.Platforms))
	}
	pl := p.Spec.Platforms[0]
	if pl.Selector.MatchLabels["os"] != runtime.GOOS || pl.Selector.MatchLabels["arch"] != runtime.GOARCH || !strings.HasPrefix(pl.URI, "https://") {
		t.Fatalf("platform %+v", pl)
	}
	archive := filepath.Join(out, filepath.Base(pl.URI))
	f, err := os.ReadFile(archive)
	if err != nil {
		t.Fatalf("the URI's archive: %v", err)
	}
	sum := sha256.Sum256(f)
	if hex.EncodeToString(sum[:]) != pl.Sha256 {
		t.Fatalf("sha256 %s does not match the archive (%x)", pl.Sha256, sum)
	}
	bin := extract(t, archive, pl.Bin, t.TempDir())
	run := exec.Command(bin, "version", "-o", "json")
	b, err := run.Output()
	if err != nil {
		t.Fatalf("%s version: %v", pl.Bin, err)
	}
	var v struct{ Version, Commit string }
	if err := json.Unmarshal(b, &v); err != nil || v.Version != p.Spec.Version || v.Commit == "" || v.Commit == "unknown" {
		t.Fatalf("the plugin's version %s (%v), want %s and a commit", b, err, p.Spec.Version)
	}
}

// extract writes the archive's file name into dir and returns its path.
func extract(t *testing.T, archive, name, dir string) string {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("the archive holds no %s", name)
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != name {
			continue
		}
		path := filepath.Join(dir, name)
		out, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, io.LimitReader(tr, 256<<20)); err != nil {
			t.Fatal(err)
		}
		_ = out.Close()
		return path
	}
}
