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
