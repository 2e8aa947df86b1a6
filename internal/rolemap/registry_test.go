package rolemap

import "testing"

func TestRegistry(t *testing.T) {
	r := NewRegistry()
	e0, v0 := r.Engine("ns")
	if len(e0.Mappings()) != 0 {
		t.Fatal("empty namespace has mappings")
	}
	m, _ := Compile(parseMapping(t, "metadata: {name: a}\nspec:\n  claim: g\n  rules: [{equals: x, role: internal_user}]\n"))
	r.Set(m)
	e1, v1 := r.Engine("ns")
	if v1 == v0 || len(e1.Mappings()) != 1 {
		t.Fatalf("after Set: version %d->%d, %d mappings", v0, v1, len(e1.Mappings()))
	}
	if e, v := r.Engine("ns"); e != e1 || v != v1 {
		t.Fatal("engine rebuilt without a change")
	}
	if d := e1.Evaluate(map[string]any{"g": "x"}, ""); d.Role != "internal_user" {
		t.Fatalf("role %q", d.Role)
	}
	if !r.Delete("ns", "a") || r.Delete("ns", "a") {
		t.Fatal("Delete reported wrongly")
	}
	if e, _ := r.Engine("ns"); len(e.Mappings()) != 0 {
		t.Fatal("deleted mapping still in the engine")
	}
	if e, _ := r.Engine("other"); len(e.Mappings()) != 0 {
		t.Fatal("namespaces leak into each other")
	}
}

func TestRegistryObserved(t *testing.T) {
	r := NewRegistry()
	rm := parseMapping(t, "metadata: {name: a, generation: 3}\nspec:\n  claim: g\n  rules: [{equals: x, role: internal_user}]\n")
	m, _ := Compile(rm)
	if _, ok := r.Observed("ns", "a"); ok {
		t.Fatal("unseen mapping reported observed")
	}
	r.Set(m)
	if g, ok := r.Observed("ns", "a"); !ok || g != 3 {
		t.Fatalf("after Set: generation %d, %v; want 3", g, ok)
	}
	_, v := r.Engine("ns")
	r.SetInvalid("ns", "a", 4)
	if g, ok := r.Observed("ns", "a"); !ok || g != 4 {
		t.Fatalf("after SetInvalid: generation %d, %v; want 4", g, ok)
	}
	// The last valid generation keeps deciding: an invalid edit never widens access.
	if e, v2 := r.Engine("ns"); len(e.Mappings()) != 1 || v2 != v {
		t.Fatal("an invalid edit dropped the mapping's last valid generation from the engine")
	}
	if g, ok := r.InForce("ns", "a"); !ok || g != 3 {
		t.Fatalf("in force: generation %d, %v; want 3", g, ok)
	}
	r.SetInvalid("ns", "b", 1)
	if _, ok := r.InForce("ns", "b"); ok {
		t.Fatal("a never-valid mapping is in force")
	}
	if r.ObservedCount("ns") != 2 {
		t.Fatalf("ObservedCount %d, want 2", r.ObservedCount("ns"))
	}
	r.Delete("ns", "a")
	r.Delete("ns", "b")
	if _, ok := r.Observed("ns", "a"); ok || r.ObservedCount("ns") != 0 {
		t.Fatal("deleted mapping still observed")
	}
}
