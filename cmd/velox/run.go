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
	return serve(srv, cfg.Listeners, cfg.Connections, cfg.Process, log, reload)
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

// serve sets the process's scheduling policy, binds the listeners, runs
// until SIGINT/SIGTERM and, on SIGHUP, reloads the pipelines and the TLS
// certificates.
func serve(srv *proxy.Server, ls []config.Listener, cc config.Connections, pc config.Process, log *slog.Logger, reload func()) error {
	if err := setScheduling(pc.Scheduling); errors.Is(err, errBadPolicy) {
		return err
	} else if err != nil {
		log.Warn("velox: scheduling policy not set; running under the current one", "err", err)
	}
	var (
		udps    []*transport.UDPListener
		streams *transport.Streams
		sls     []*transport.StreamListener
	)
	defer func() {
		for _, l := range udps {
			l.Close()
		}
		if streams != nil {
			streams.Close()
		}
	}()
	for _, lc := range ls {
		proto, ok := transport.ParseProto(lc.Proto)
		if !ok {
			return fmt.Errorf("%s: unknown transport %q", lc.Pos, lc.Proto)
		}
		adv := lc.Advertise
		if adv != "" && lc.AdvertisePort != 0 && !strings.Contains(adv, ":") {
			adv = fmt.Sprintf("%s:%d", adv, lc.AdvertisePort)
		}
		if proto != transport.UDP {
			if streams == nil {
				streams = transport.NewStreams(transport.StreamsOptions{
					Workers:        cc.Workers,
					MaxConns:       cc.Max,
					IdleTimeout:    cc.IdleTimeout,
					MaxMessage:     cc.MaxMessage,
					ConnectTimeout: cc.ConnectTimeout,
					MaxQueue:       cc.MaxQueue,
				}, srv.NewStreamWorker)
			}
			sc := transport.StreamConfig{Proto: proto, Addr: lc.Addr, Origins: lc.Origins}
			if proto.Secure() {
				sc.TLS = &transport.TLSFiles{Cert: lc.TLS.Cert, Key: lc.TLS.Key, SNI: lc.TLS.SNI,
					ClientCA: lc.TLS.ClientCA, RequireClientCert: lc.TLS.RequireClientCert}
			}
			sl, err := streams.Listen(sc)
			if err != nil {
				return fmt.Errorf("listen %s:%s: %w", lc.Proto, lc.Addr, err)
			}
			srv.AddListener(proto, sl.LocalAddr(), adv)
			srv.AddConn(proto, sl.LocalAddr(), streamConn{streams, proto})
			sls = append(sls, sl)
			continue
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
		srv.AddListener(transport.UDP, l.LocalAddr(), adv)
		srv.AddConn(transport.UDP, l.LocalAddr(), l)
		udps = append(udps, l)
	}
	srv.Start()
	defer srv.Close()
	for _, l := range udps {
		l.Start()
		log.Info("velox: listening", "proto", "udp", "addr", l.LocalAddr().String())
	}
	if streams != nil {
		streams.Start()
		for _, l := range sls {
			log.Info("velox: listening", "proto", l.Proto().String(), "addr", l.LocalAddr().String())
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	for s := range sig {
		if s == syscall.SIGHUP {
			reload()
			for _, l := range sls {
				if l.Proto().Secure() {
					if err := l.ReloadTLS(); err != nil {
						log.Error("velox: TLS reload failed; keeping the old certificates", "addr", l.LocalAddr().String(), "err", err)
					} else {
						log.Info("velox: TLS certificates reloaded", "addr", l.LocalAddr().String())
					}
				}
			}
			continue
		}
		log.Info("velox: stopping", "signal", s.String())
		break
	}
	for _, l := range udps {
		ts := l.Stats()
		log.Info("velox: listener stats", "addr", l.LocalAddr().String(), "received", ts.Received, "sent", ts.Sent,
			"batches", ts.Batches, "send_errors", ts.SendErrors, "per_worker", fmt.Sprint(ts.PerWorker))
	}
	if streams != nil {
		log.Info("velox: connection stats", "stats", fmt.Sprintf("%+v", streams.Stats()))
	}
	st := srv.Stats()
	log.Info("velox: stopped", "requests", st.Requests, "responses", st.Responses, "forwarded", st.Forwarded,
		"replied", st.Replied, "malformed", st.Malformed, "dropped", st.Dropped,
		"transactions", st.Transactions, "retransmissions_absorbed", st.Retransmissions,
		"retransmitted", st.Retransmitted, "timeouts", st.Timeouts, "unreachable", st.Unreachable)
	return nil
}

// streamConn sends over one stream transport for the proxy (proxy.Conn).
type streamConn struct {
	s     *transport.Streams
	proto transport.Proto
}

func (c streamConn) WriteTo(b []byte, dst netip.AddrPort) error { return c.s.WriteTo(c.proto, b, dst) }

// Alias makes the connection from conn reachable as alias (RFC 5923).
func (c streamConn) Alias(conn, alias netip.AddrPort) { c.s.Alias(c.proto, conn, alias) }

// listenFlags are the listener flags of the quick modes.
type listenFlags struct {
	listens   []string
	cert, key string
	workers   *int
	sched     *string
}

func addListenFlags(fs *flag.FlagSet) *listenFlags {
	lf := &listenFlags{}
	fs.Func("listen", "listening socket proto:ip:port, proto one of udp, tcp, tls, ws, wss (repeatable; default udp:127.0.0.1:5060)", func(s string) error {
		lf.listens = append(lf.listens, s)
		return nil
	})
	fs.StringVar(&lf.cert, "tls-cert", "", "PEM certificate file for tls and wss listeners")
	fs.StringVar(&lf.key, "tls-key", "", "PEM private key file for tls and wss listeners")
	lf.workers = fs.Int("workers", 0, "UDP receiving workers per socket (default 1) and stream handler workers (default: number of CPUs)")
	lf.sched = fs.String("scheduling", schedBatch, "scheduling policy of the server's threads: batch (SCHED_BATCH) or normal")
	return lf
}

// listeners turns the flags into listener configs.
func (lf *listenFlags) listeners() ([]config.Listener, config.Connections, error) {
	if len(lf.listens) == 0 {
		lf.listens = []string{"udp:127.0.0.1:5060"}
	}
	var ls []config.Listener
	for _, s := range lf.listens {
		proto, addr, err := parseListen(s)
		if err != nil {
			return nil, config.Connections{}, err
		}
		l := config.Listener{Proto: proto, Addr: addr, Pos: config.Pos{File: "--listen " + s}}
		switch proto {
		case "udp":
			l.Workers = *lf.workers
		case "tls", "wss":
			if lf.cert == "" || lf.key == "" {
				return nil, config.Connections{}, fmt.Errorf("--listen %s needs --tls-cert and --tls-key", s)
			}
			l.TLS.Cert, l.TLS.Key = lf.cert, lf.key
		case "tcp", "ws":
		default:
			return nil, config.Connections{}, fmt.Errorf("--listen %s: unknown transport %q (want udp, tcp, tls, ws or wss)", s, proto)
		}
		ls = append(ls, l)
	}
	return ls, config.Connections{Workers: *lf.workers}, nil
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
