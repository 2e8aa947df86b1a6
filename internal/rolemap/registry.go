package rolemap

import "sync"

// Registry holds the valid compiled mappings of every namespace and hands out
// one immutable Engine per namespace, rebuilt only after a change. The
// RoleMapping controller writes it; the login server and the ProxyUser
// controller read it. An invalid mapping is never Set, so it never reaches an
// engine while the namespace's other mappings keep working.
type Registry struct {
	mu      sync.RWMutex
	byNS    map[string]map[string]*Mapping // namespace -> name -> mapping
	engines map[string]*Engine             // namespace -> engine, nil when stale
	version map[string]uint64              // namespace -> change counter
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byNS: map[string]map[string]*Mapping{}, engines: map[string]*Engine{}, version: map[string]uint64{}}
}

// Set stores (or replaces) a valid mapping.
func (r *Registry) Set(m *Mapping) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ns := r.byNS[m.Namespace]
	if ns == nil {
		ns = map[string]*Mapping{}
		r.byNS[m.Namespace] = ns
	}
	ns[m.Name] = m
	r.changed(m.Namespace)
}

// Delete removes a mapping (deleted, or no longer valid). It reports whether
// the mapping was there.
func (r *Registry) Delete(namespace, name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
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
