package rolemap

import "sync"

// Registry holds the valid compiled mappings of every namespace and hands out
// one immutable Engine per namespace, rebuilt only after a change. The
// RoleMapping controller writes it; the login server and the ProxyUser
// controller read it. An invalid mapping is never Set, so it never reaches an
// engine while the namespace's other mappings keep working; a mapping that
// was valid and is edited into something invalid keeps deciding with its
// last valid generation (dropping it could let users fall through to a
// laxer mapping).
//
// The registry also remembers the generation of every RoleMapping it has
// seen, valid or not, so readers can tell whether it has caught up with the
// RoleMappings in the API (see Observed): deciding a user's role from a
// registry that has not yet loaded a namespace's mappings would deny them.
type Registry struct {
	mu       sync.RWMutex
	byNS     map[string]map[string]*Mapping // namespace -> name -> mapping
	observed map[string]map[string]int64    // namespace -> name -> generation seen (valid or not)
	engines  map[string]*Engine             // namespace -> engine, nil when stale
	version  map[string]uint64              // namespace -> change counter
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{
		byNS:     map[string]map[string]*Mapping{},
		observed: map[string]map[string]int64{},
		engines:  map[string]*Engine{},
		version:  map[string]uint64{},
	}
}

// Set stores (or replaces) a valid mapping and observes its generation.
func (r *Registry) Set(m *Mapping) {
	r.SetObserved(m, m.Generation)
}

// SetObserved stores a valid mapping that decides for a newer, observed
// generation: the last valid generation of a mapping whose current one is
// invalid (restored from its status after a restart).
func (r *Registry) SetObserved(m *Mapping, observed int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ns := r.byNS[m.Namespace]
	if ns == nil {
		ns = map[string]*Mapping{}
		r.byNS[m.Namespace] = ns
	}
	ns[m.Name] = m
	r.observe(m.Namespace, m.Name, observed)
	r.changed(m.Namespace)
}

// SetInvalid records that generation of a mapping is invalid: it counts as
// observed, and the engine keeps the mapping's last valid generation, if
// any (see InForce). The engine does not change.
func (r *Registry) SetInvalid(namespace, name string, generation int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.observe(namespace, name, generation)
}

// InForce returns the generation of a mapping the engine decides with, and
// false when none of its generations was ever valid (here).
func (r *Registry) InForce(namespace, name string) (int64, bool) {
	if m := r.Mapping(namespace, name); m != nil {
		return m.Generation, true
	}
	return 0, false
}

// Mappings returns the mappings in force in a namespace.
func (r *Registry) Mappings(namespace string) []*Mapping {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]*Mapping, 0, len(r.byNS[namespace]))
	for _, m := range r.byNS[namespace] {
		out = append(out, m)
	}
	return out
}

// Mapping returns the generation of a mapping the engine decides with, or
// nil when none of its generations was ever valid (here).
func (r *Registry) Mapping(namespace, name string) *Mapping {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byNS[namespace][name]
}

// Delete removes a mapping (deleted from the API) and forgets its
// generation. It reports whether the engine changed.
func (r *Registry) Delete(namespace, name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if obs := r.observed[namespace]; obs != nil {
		delete(obs, name)
		if len(obs) == 0 {
			delete(r.observed, namespace)
		}
	}
	return r.remove(namespace, name)
}

// Observed returns the generation of a mapping the registry last saw, valid
// or invalid, and false when it has not seen the mapping (or saw it deleted).
func (r *Registry) Observed(namespace, name string) (int64, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	g, ok := r.observed[namespace][name]
	return g, ok
}

// ObservedCount returns how many mappings of a namespace the registry has
// seen and not seen deleted.
func (r *Registry) ObservedCount(namespace string) int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.observed[namespace])
}

func (r *Registry) observe(namespace, name string, generation int64) {
	obs := r.observed[namespace]
	if obs == nil {
		obs = map[string]int64{}
		r.observed[namespace] = obs
	}
	obs[name] = generation
}

func (r *Registry) remove(namespace, name string) bool {
	ns := r.byNS[namespace]
	if _, ok := ns[name]; !ok {
		return false
	}
	delete(ns, name)
	if len(ns) == 0 {
		delete(r.byNS, namespace)
	}
	r.changed(namespace)
	return true
}

func (r *Registry) changed(namespace string) {
	delete(r.engines, namespace)
	r.version[namespace]++
}

// Engine returns the engine of a namespace (an engine with no mappings when
// the namespace has none), and a version that changes whenever the
// namespace's mappings change.
func (r *Registry) Engine(namespace string) (*Engine, uint64) {
	r.mu.RLock()
	e, v := r.engines[namespace], r.version[namespace]
	r.mu.RUnlock()
	if e != nil {
		return e, v
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if e = r.engines[namespace]; e == nil {
		ms := make([]*Mapping, 0, len(r.byNS[namespace]))
		for _, m := range r.byNS[namespace] {
			ms = append(ms, m)
		}
		e = NewEngine(ms...) // sorts by priority and name: map order does not leak
		r.engines[namespace] = e
	}
	return e, r.version[namespace]
}
