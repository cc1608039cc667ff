package main

import (
	"errors"
	"flag"

	"github.com/veloxsip/velox/config"
	"github.com/veloxsip/velox/module/forward"
	"github.com/veloxsip/velox/module/looseroute"
	"github.com/veloxsip/velox/module/maxforwards"
	"github.com/veloxsip/velox/module/recordroute"
	"github.com/veloxsip/velox/module/reply"
	"github.com/veloxsip/velox/module/sanity"
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
)

// cmdProxy runs the quick mode: a record-routing proxy assembled in Go,
// with no config file.
func cmdProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	listen := fs.String("listen", "udp:127.0.0.1:5060", "listening socket, proto:ip:port")
	to := fs.String("to", "", "destination host:port for requests (default: the Request-URI)")
	stateless := fs.Bool("stateless", false, "forward statelessly (RFC 3261 §16.11)")
	workers := fs.Int("workers", 0, "receiving workers (default: number of CPUs)")
	level := fs.String("log", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*stateless {
		return errors.New("proxy: the transaction-stateful relay is not built yet; pass --stateless")
	}
	proto, addr, err := parseListen(*listen)
	if err != nil {
		return err
	}
	log := newLogger(*level)
	srv := proxy.NewServer(nil, proxy.Options{Logger: log})
	p, err := quickPipeline(*to)
	if err != nil {
		return err
	}
	srv.SetPipeline(p)
	return serve(srv, []config.Listener{{Proto: proto, Addr: addr, Workers: *workers}}, log, func() {})
}

// quickPipeline is sanity → max-forwards → 200 to OPTIONS for us →
// record-route → loose-route → forward.
func quickPipeline(to string) (proxy.Pipeline, error) {
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
	fwd, err := forward.New(forward.Options{To: to})
	if err != nil {
		return nil, err
	}
	return proxy.Pipeline{
		{Name: "sanity", Handler: sanity.New()},
		{Name: "max-forwards", Handler: mf},
		{Name: "reply", If: optionsForUs, Handler: ok},
		{Name: "record-route", Handler: recordroute.New(recordroute.Options{})},
		{Name: "loose-route", Handler: looseroute.New()},
		{Name: "forward", Handler: fwd},
	}, nil
}
