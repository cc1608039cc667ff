package main

import (
	"errors"
	"flag"
	"github.com/veloxsip/velox/config"
	"strings"

	"github.com/veloxsip/velox/module/digestauth"
	"github.com/veloxsip/velox/module/lookup"
	"github.com/veloxsip/velox/module/looseroute"
	"github.com/veloxsip/velox/module/recordroute"
	"github.com/veloxsip/velox/module/registrar"
	"github.com/veloxsip/velox/module/relay"
	"github.com/veloxsip/velox/proxy"
)

// cmdRegistrar runs the quick registrar: REGISTERs for the domains are
// saved, other requests for their users are relayed to the bindings (or
// redirected with --redirect).
func cmdRegistrar(args []string) error {
	fs := flag.NewFlagSet("registrar", flag.ContinueOnError)
	lf := addListenFlags(fs)
	var domains []string
	fs.Func("domain", "served domain (repeatable; default: every domain)", func(s string) error {
		domains = append(domains, strings.ToLower(s))
		return nil
	})
	redirect := fs.Bool("redirect", false, "answer requests for users with 302 instead of relaying them")
	withAuth := fs.Bool("auth", false, "require digest authentication (realm: the first --domain; users: --db)")
	db := fs.String("db", "velox.db", "database: subscribers for --auth (velox user add --db FILE …), bindings for --persistence")
	persist := fs.String("persistence", "memory", "bindings: memory, write-through or write-back (kept in --db across restarts)")
	noIdentity := fs.Bool("no-identity-check", false, "with --auth: let one credential register any user (trunks)")
	algs := fs.String("auth-algorithms", "SHA-256,MD5", "with --auth: digest algorithms offered, strongest first")
	minExp := fs.Int("min-expires", 60, "shortest registration accepted, seconds")
	maxExp := fs.Int("max-expires", 86400, "longest registration granted, seconds")
	level := fs.String("log", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ls, cc, err := lf.listeners()
	if err != nil {
		return err
	}
	log := newLogger(*level)
	srv := proxy.NewServer(nil, proxy.Options{Logger: log})
	ro := registrar.Options{Domains: domains, MinExpires: *minExp, MaxExpires: *maxExp, Persistence: *persist}
	if *persist != registrar.Memory {
		ro.DB = *db
	}
	reg, err := registrar.New(ro, srv)
	if err != nil {
		return err
	}
	lo := lookup.Options{Domains: domains, Redirect: *redirect}
	if *withAuth {
		lo.DB = *db // subscribers known: 404 for strangers, 480 for users with no binding
	}
	lk, err := lookup.New(lo, srv)
	if err != nil {
		return err
	}
	rl, err := relay.New(relay.Options{})
	if err != nil {
		return err
	}
	head, err := quickHead()
	if err != nil {
		return err
	}
	if *withAuth {
		if len(domains) == 0 {
			return errors.New("registrar: --auth needs --domain (the realm)")
		}
		a, err := digestauth.New(digestauth.Options{Realm: domains[0], DB: *db, NoIdentityCheck: *noIdentity,
			Algorithms: strings.Split(*algs, ",")}, srv)
		if err != nil {
			return err
		}
		head = append(head, proxy.Step{Name: "auth", Handler: a})
	}
	srv.SetPipeline(append(head,
		proxy.Step{Name: "registrar", Handler: reg},
		proxy.Step{Name: "record-route", Handler: recordroute.New(recordroute.Options{})},
		proxy.Step{Name: "loose-route", Handler: looseroute.New()},
		proxy.Step{Name: "lookup", Handler: lk},
		proxy.Step{Name: "relay", Handler: rl},
	))
	return serve(srv, ls, cc, config.Process{Scheduling: *lf.sched}, log, func() {})
}
