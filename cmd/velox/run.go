package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/veloxsip/velox/config"
	_ "github.com/veloxsip/velox/module/all" // link every routing module
	"github.com/veloxsip/velox/pipeline"
	"github.com/veloxsip/velox/proxy"
	"github.com/veloxsip/velox/transport"
	"github.com/veloxsip/velox/txn"
)

func cmdRun(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	file := fs.String("c", "", "config file (default: the embedded config)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*file)
	if err != nil {
		return err
	}
	log := newLogger(cfg.Log.Level)
	srv := proxy.NewServer(nil, proxy.Options{Logger: log, Stateful: statefulOptions(cfg.Transactions)})
	if err := buildPipelines(cfg, srv); err != nil {
		return err
	}
	reload := func() {
		if *file == "" {
			return
		}
		ncfg, err := config.Load(*file)
		if err == nil {
			if err = buildPipelines(ncfg, srv); err == nil {
				log.Info("velox: pipelines reloaded", "file", *file, "request steps", len(ncfg.Request), "failure steps", len(ncfg.Failure))
				return
			}
		}
		log.Error("velox: reload failed; keeping the running pipeline", "err", err)
	}
	return serve(srv, cfg.Listeners, log, reload)
}

// buildPipelines builds the request and failure pipelines of cfg and
// installs them only when both are valid.
func buildPipelines(cfg *config.Config, srv *proxy.Server) error {
	req, err := pipeline.Build(cfg.Request, srv)
	if err != nil {
		return err
	}
	fail, err := pipeline.Build(cfg.Failure, srv)
	if err != nil {
		return err
	}
	srv.SetPipeline(req)
	srv.SetFailurePipeline(fail)
	return nil
}

func statefulOptions(t config.Transactions) proxy.StatefulOptions {
	return proxy.StatefulOptions{
		Timing:        txn.Timing{T1: t.T1, T2: t.T2, T4: t.T4},
		NoTrying:      t.NoTrying,
		FinalTimeout:  t.Timeout,
		InviteTimeout: t.InviteTimeout,
		Buckets:       t.Buckets,
		TimerWorkers:  t.TimerWorkers,
	}
}

func loadConfig(file string) (*config.Config, error) {
	if file == "" {
		return config.Default(), nil
	}
	return config.Load(file)
}

// serve binds the listeners, runs until SIGINT/SIGTERM and reloads on SIGHUP.
func serve(srv *proxy.Server, ls []config.Listener, log *slog.Logger, reload func()) error {
	var started []*transport.UDPListener
	defer func() {
		for _, l := range started {
			l.Close()
		}
	}()
	for _, lc := range ls {
		if lc.Proto != "udp" {
			return fmt.Errorf("%s: transport %q is not available yet", lc.Pos, lc.Proto)
		}
		l, err := transport.ListenUDP(transport.UDPConfig{
			Addr:       lc.Addr,
			Workers:    lc.Workers,
			RecvBuffer: lc.RecvBuffer,
			SendBuffer: lc.SendBuffer,
		}, srv.NewWorker)
		if err != nil {
			return fmt.Errorf("listen %s: %w", lc.Addr, err)
		}
		adv := lc.Advertise
		if adv != "" && lc.AdvertisePort != 0 && !strings.Contains(adv, ":") {
			adv = fmt.Sprintf("%s:%d", adv, lc.AdvertisePort)
		}
		srv.AddListener("udp", l.LocalAddr(), adv)
		srv.AddConn(l.LocalAddr(), l)
		started = append(started, l)
	}
	srv.Start()
	defer srv.Close()
	for _, l := range started {
		l.Start()
		log.Info("velox: listening", "proto", "udp", "addr", l.LocalAddr().String())
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for s := range sig {
		if s == syscall.SIGHUP {
			reload()
			continue
		}
		log.Info("velox: stopping", "signal", s.String())
		break
	}
	for _, l := range started {
		ts := l.Stats()
		log.Info("velox: listener stats", "addr", l.LocalAddr().String(), "received", ts.Received, "sent", ts.Sent,
			"batches", ts.Batches, "send_errors", ts.SendErrors, "per_worker", fmt.Sprint(ts.PerWorker))
	}
	st := srv.Stats()
	log.Info("velox: stopped", "requests", st.Requests, "responses", st.Responses, "forwarded", st.Forwarded,
		"replied", st.Replied, "malformed", st.Malformed, "dropped", st.Dropped,
		"transactions", st.Transactions, "retransmissions_absorbed", st.Retransmissions,
		"retransmitted", st.Retransmitted, "timeouts", st.Timeouts, "unreachable", st.Unreachable)
	return nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
	slog.SetDefault(log)
	return log
}

func cmdCheck(args []string) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	file := fs.String("c", "", "config file to check")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *file == "" {
		return errors.New("check: -c FILE is required")
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	if err := buildPipelines(cfg, proxy.NewServer(nil, proxy.Options{})); err != nil {
		return err
	}
	fmt.Printf("%s: OK (%d listeners, %d request steps)\n", *file, len(cfg.Listeners), len(cfg.Request))
	return nil
}

func cmdConfig([]string) error {
	_, err := os.Stdout.Write(config.DefaultYAML)
	return err
}

func cmdModules([]string) error {
	for _, m := range pipeline.Modules() {
		fmt.Printf("%-14s %s\n", m.Name, m.Doc)
	}
	return nil
}

// parseListen parses "udp:IP:PORT" (IPv6 as udp:[::1]:5060).
func parseListen(s string) (string, netip.AddrPort, error) {
	proto, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", netip.AddrPort{}, fmt.Errorf("listen address %q: want proto:ip:port, e.g. udp:127.0.0.1:5060", s)
	}
	ap, err := netip.ParseAddrPort(rest)
	if err != nil {
		return "", netip.AddrPort{}, fmt.Errorf("listen address %q: %v", s, err)
	}
	return strings.ToLower(proto), ap, nil
}
