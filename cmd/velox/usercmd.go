package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/veloxsip/velox/store"
)

const userUsage = `Usage:
  velox user add    [--db FILE] [--no-password] USER@DOMAIN PASSWORD
  velox user passwd [--db FILE] [--no-password] USER@DOMAIN PASSWORD
  velox user del    [--db FILE] USER@DOMAIN
  velox user list   [--db FILE] [--domain DOMAIN]
  velox user import [--db FILE] [--replace] [--no-password] [CSV-FILE | -]

The HA1s (MD5, SHA-256, SHA-512-256) are computed with realm = DOMAIN.
--no-password keeps only the HA1s. PASSWORD "-" reads it from the first
line of the standard input; put -- before a PASSWORD that starts with -.
The default FILE is velox.db.
`

// defaultDB is the database file of the user commands without --db.
const defaultDB = "velox.db"

// cmdUser is "velox user …".
func cmdUser(args []string) error {
	return runUser(args, os.Stdin, os.Stdout, os.Stderr)
}

// runUser runs a user sub-command with the given standard streams.
func runUser(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, userUsage)
		return errors.New("user: missing sub-command")
	}
	sub, args := args[0], args[1:]
	if sub == "import" {
		return runUserImport(args, stdin, stdout, stderr) // user_import.go
	}
	fs := flag.NewFlagSet("user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, userUsage) }
	dbFile := fs.String("db", defaultDB, "database `file`")
	var noPassword *bool
	var domain *string
	var nargs int
	switch sub {
	case "add", "passwd":
		noPassword = fs.Bool("no-password", false, "keep only the HA1s, not the password")
		nargs = 2
	case "del", "delete":
		nargs = 1
	case "list":
		domain = fs.String("domain", "", "list only this `domain`")
	case "help", "-h", "--help":
		fmt.Fprint(stdout, userUsage)
		return nil
	default:
		fmt.Fprint(stderr, userUsage)
		return fmt.Errorf("user: unknown sub-command %q", sub)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != nargs {
		fs.Usage()
		return fmt.Errorf("user %s: want %d arguments, got %d", sub, nargs, len(pos))
	}
	var user, dom string
	if nargs > 0 {
		if user, dom, err = splitAOR(pos[0]); err != nil {
			return fmt.Errorf("user %s: %w", sub, err)
		}
	}
	var password string
	if nargs == 2 {
		if password, err = readPassword(pos[1], stdin); err != nil {
			return fmt.Errorf("user %s: %w", sub, err)
		}
	}
	if sub != "add" {
		// Only add creates the database file.
		if _, err := os.Stat(*dbFile); err != nil {
			return fmt.Errorf("user %s: no database %s: %w", sub, *dbFile, errors.Unwrap(err))
		}
	}
	db, err := store.Open(*dbFile)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	switch sub {
	case "add":
		err = db.AddUser(ctx, user, dom, password, !*noPassword)
		if errors.Is(err, store.ErrExists) {
			return fmt.Errorf("%w in %s", err, *dbFile)
		}
		if err == nil {
			fmt.Fprintf(stdout, "user %s@%s added to %s\n", user, strings.ToLower(dom), *dbFile)
		}
	case "passwd":
		err = db.SetPassword(ctx, user, dom, password, !*noPassword)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%w in %s", err, *dbFile)
		}
		if err == nil {
			fmt.Fprintf(stdout, "password of %s@%s changed in %s\n", user, strings.ToLower(dom), *dbFile)
		}
	case "del", "delete":
		var ok bool
		ok, err = db.DeleteUser(ctx, user, dom)
		if err == nil && !ok {
			return fmt.Errorf("user %s@%s not found in %s", user, strings.ToLower(dom), *dbFile)
		}
		if err == nil {
			fmt.Fprintf(stdout, "user %s@%s deleted from %s\n", user, strings.ToLower(dom), *dbFile)
		}
	case "list":
		var users []store.User
		if users, err = db.ListUsers(ctx, *domain); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tDOMAIN\tPASSWORD\tHA1\tCREATED")
		for _, u := range users {
			pw := "no"
			if u.Password != "" {
				pw = "stored"
			}
			algs := strings.Join(u.Algorithms(), ",")
			if algs == "" {
				algs = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Username, u.Domain, pw, algs, u.CreatedAt.UTC().Format("2006-01-02 15:04:05Z"))
		}
		return tw.Flush()
	}
	return err
}

// parseInterspersed parses flags placed before, between or after the
// positional arguments (flag stops at the first non-flag) and returns the
// positional ones. Everything after "--" is positional.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos, tail []string
	for i, a := range args {
		if a == "--" {
			args, tail = args[:i], args[i+1:]
			break
		}
	}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if args = fs.Args(); len(args) == 0 {
			return append(pos, tail...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// splitAOR splits "user@domain" at its last '@'.
func splitAOR(s string) (user, domain string, err error) {
	i := strings.LastIndexByte(s, '@')
	if i <= 0 || i == len(s)-1 {
		return "", "", fmt.Errorf("%q is not USER@DOMAIN", s)
	}
	return s[:i], s[i+1:], nil
}

// readPassword returns arg, or the first line of stdin when arg is "-".
func readPassword(arg string, stdin io.Reader) (string, error) {
	if arg != "-" {
		if arg == "" {
			return "", errors.New("empty password")
		}
		return arg, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from the standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("empty password on the standard input")
	}
	return line, nil
}
