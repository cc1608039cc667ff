package pipeline

import (
	"errors"
	"strings"

	"github.com/veloxsip/velox/config"
	"github.com/veloxsip/velox/pipeline/cond"
	"github.com/veloxsip/velox/proxy"
)

// Build compiles the request steps of a configuration. Every problem is
// reported with the file and line of its step; all are collected.
func Build(steps []config.Step, srv *proxy.Server) (proxy.Pipeline, error) {
	var errs config.Errors
	p := make(proxy.Pipeline, 0, len(steps))
	for i := range steps {
		st := &steps[i]
		mod, ok := Lookup(st.Module)
		if !ok {
			errs = append(errs, config.Errorf(st.Pos, "unknown module %q (known: %s)", st.Module, moduleNames()))
			continue
		}
		h, err := mod.New(st, srv)
		if err != nil {
			var ce *config.Error
			if errors.As(err, &ce) {
				errs = append(errs, err)
			} else {
				errs = append(errs, config.Errorf(st.Pos, "%v", err))
			}
			continue
		}
		step := proxy.Step{Name: st.Module, Handler: h}
		if st.If != "" {
			c, err := If(st.If)
			if err != nil {
				errs = append(errs, config.Errorf(st.IfPos, "if: %v", err))
				continue
			}
			step.If = c
		}
		p = append(p, step)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return p, nil
}

// If compiles a condition for a step assembled in Go code.
func If(src string) (proxy.Condition, error) {
	c, err := cond.Compile(src)
	if err != nil {
		return nil, err
	}
	return condition{c}, nil
}

// condition adapts a compiled condition to the proxy's Condition.
type condition struct{ c *cond.Cond }

func (x condition) Eval(ctx *proxy.Context) bool { return x.c.Eval(ctx) }

func moduleNames() string {
	var names []string
	for _, m := range Modules() {
		names = append(names, m.Name)
	}
	return strings.Join(names, ", ")
}
