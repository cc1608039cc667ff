// Package pipeline turns the request route of a configuration into a
// compiled proxy.Pipeline: it looks up each step's module in the registry,
// lets the module decode its options and compiles the step's condition.
package pipeline

import (
	"fmt"
	"sort"
	"sync"

	"github.com/veloxsip/velox/proxy"
)

// Decoder decodes a step's options into the module's options struct,
// rejecting unknown keys.
type Decoder interface {
	Decode(v any) error
}

// Factory creates a module instance from its options.
type Factory func(opts Decoder, srv *proxy.Server) (proxy.Handler, error)

// Module describes a routing module.
type Module struct {
	Name string  // the name used in the config ("record-route")
	Doc  string  // one line saying what it does
	New  Factory // builds an instance
}

var (
	regMu    sync.Mutex
	registry = map[string]Module{}
)

// Register adds a module; modules call it from init. Registering a name
// twice panics (a programming error).
func Register(m Module) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[m.Name]; dup {
		panic(fmt.Sprintf("pipeline: module %q registered twice", m.Name))
	}
	registry[m.Name] = m
}

// Lookup returns the module registered under name.
func Lookup(name string) (Module, bool) {
	regMu.Lock()
	defer regMu.Unlock()
	m, ok := registry[name]
	return m, ok
}

// Modules lists the registered modules by name.
func Modules() []Module {
	regMu.Lock()
	defer regMu.Unlock()
	out := make([]Module, 0, len(registry))
	for _, m := range registry {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// NoOptions is a Decoder for modules built from Go code with no options.
type NoOptions struct{}

// Decode leaves v as it is.
func (NoOptions) Decode(any) error { return nil }
