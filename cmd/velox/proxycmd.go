package main

import (
	"errors"
	"flag"
	"github.com/veloxsip/velox/config"

	"github.com/veloxsip/velox/module/forward"
	"github.com/veloxsip/velox/module/looseroute"
	"github.com/veloxsip/velox/module/maxforwards"
	"github.com/veloxsip/velox/module/recordroute"
	"github.com/veloxsip/velox/module/relay"
	"github.com/veloxsip/velox/module/reply"
	"github.com/veloxsip/velox/module/sanity"
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
)

// cmdProxy runs the quick mode: a record-routing proxy assembled in Go,
// with no config file. It is transaction-stateful unless --stateless.
func cmdProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	lf := addListenFlags(fs)
	var to []string
	fs.Func("to", "destination host:port (repeat for failover or forking; default: the Request-URI)", func(s string) error {
		to = append(to, s)
		return nil
	})
	stateless := fs.Bool("stateless", false, "forward statelessly (RFC 3261 §16.11)")
	fork := fs.String("fork", "serial", "with several --to: serial (failover in order) or parallel")
	frTimeout := fs.Duration("fr-timeout", 0, "time a branch waits for any response (default 30s)")
	frInvTimeout := fs.Duration("fr-inv-timeout", 0, "time an INVITE branch rings before it is cancelled (default 120s)")
	level := fs.String("log", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *stateless && len(to) > 1 {
		return errors.New("proxy: --stateless takes one --to")
	}
	ls, cc, err := lf.listeners()
	if err != nil {
		return err
	}
	log := newLogger(*level)
	srv := proxy.NewServer(nil, proxy.Options{Logger: log})
	var last proxy.Handler
	if *stateless {
		dst := ""
		if len(to) == 1 {
			dst = to[0]
		}
		if last, err = forward.New(forward.Options{To: dst}); err != nil {
			return err
		}
	} else {
		last, err = relay.New(relay.Options{To: to, Fork: *fork, Timeout: *frTimeout, InviteTimeout: *frInvTimeout})
		if err != nil {
			return err
		}
	}
	p, err := quickPipeline(last)
	if err != nil {
		return err
	}
	srv.SetPipeline(p)
	return serve(srv, ls, cc, config.Process{Scheduling: *lf.sched}, log, func() {})
}

// quickPipeline is sanity → max-forwards → 200 to OPTIONS for us →
// record-route → loose-route → last (forward or relay).
func quickPipeline(last proxy.Handler) (proxy.Pipeline, error) {
	head, err := quickHead()
	if err != nil {
		return nil, err
	}
	return append(head,
		proxy.Step{Name: "record-route", Handler: recordroute.New(recordroute.Options{})},
		proxy.Step{Name: "loose-route", Handler: looseroute.New()},
		proxy.Step{Name: "relay", Handler: last},
	), nil
}

// quickHead is the start of every quick-mode pipeline: sanity,
// max-forwards, and 200 to keep-alive OPTIONS sent to the server itself.
func quickHead() (proxy.Pipeline, error) {
	mf, err := maxforwards.New(maxforwards.Options{})
	if err != nil {
		return nil, err
	}
	ok, err := reply.New(reply.Options{Code: 200})
	if err != nil {
		return nil, err
	}
	optionsForUs, err := pipeline.If(`method == "OPTIONS" && to_self && ruri.user == ""`)
	if err != nil {
		return nil, err
	}
	return proxy.Pipeline{
		{Name: "sanity", Handler: sanity.New()},
		{Name: "max-forwards", Handler: mf},
		{Name: "reply", If: optionsForUs, Handler: ok},
	}, nil
}
