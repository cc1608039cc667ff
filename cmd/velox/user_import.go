package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/veloxsip/velox/store"
)

const userImportUsage = `Usage:
  velox user import [--db FILE] [--replace] [--no-password] [CSV-FILE | -]

Adds the subscribers of a CSV file (standard input without CSV-FILE or
with -), one per line: username,domain,password. Fields may be quoted
("a,b"); empty lines and lines starting with # are skipped, and so is a
first line "username,domain,password". Everything is written in one
transaction: on the first bad line or existing user (without --replace,
which updates the password) nothing is written. Creates FILE (default
velox.db) when it does not exist.
`

// runUserImport is "velox user import …".
func runUserImport(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("user import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, userImportUsage) }
	dbFile := fs.String("db", defaultDB, "database `file`")
	replace := fs.Bool("replace", false, "update the password of existing users instead of failing")
	noPassword := fs.Bool("no-password", false, "keep only the HA1s, not the passwords")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		fs.Usage()
		return fmt.Errorf("user import: want at most one file, got %d", len(pos))
	}
	in, name := stdin, "standard input"
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("user import: %w", err)
		}
		defer f.Close()
		in, name = f, pos[0]
	}
	db, err := store.Open(*dbFile)
	if err != nil {
		return err
	}
	defer db.Close()
	start := time.Now()
	var line int
	n, err := db.ImportUsers(context.Background(), csvUsers(in, &line), store.ImportOptions{Replace: *replace, NoPassword: *noPassword})
	if err != nil {
		if errors.Is(err, store.ErrExists) {
			err = fmt.Errorf("%w in %s (--replace updates existing users)", err, *dbFile)
		}
		return fmt.Errorf("user import: %s:%d: %w; nothing imported", name, line, err)
	}
	fmt.Fprintf(stdout, "%d users imported into %s in %v\n", n, *dbFile, time.Since(start).Round(time.Millisecond))
	return nil
}

// csvUsers yields the rows of a username,domain,password CSV and keeps
// *line at the line of the last row read.
func csvUsers(in io.Reader, line *int) func(yield func(store.UserRow, error) bool) {
	return func(yield func(store.UserRow, error) bool) {
		r := csv.NewReader(bufio.NewReaderSize(in, 1<<16))
		r.Comment = '#'
		r.FieldsPerRecord = 3
		r.ReuseRecord = true
		first := true
		for {
			rec, err := r.Read()
			if err == io.EOF {
				return
			}
			if err != nil {
				var pe *csv.ParseError
				if errors.As(err, &pe) {
					*line, err = pe.Line, pe.Err
				}
				yield(store.UserRow{}, err)
				return
			}
			*line, _ = r.FieldPos(0)
			if first {
				first = false
				if strings.EqualFold(rec[0], "username") && strings.EqualFold(rec[1], "domain") && strings.EqualFold(rec[2], "password") {
					continue
				}
			}
			row := store.UserRow{Username: rec[0], Domain: rec[1], Password: rec[2]}
			if row.Username == "" || row.Domain == "" || row.Password == "" {
				yield(store.UserRow{}, errors.New("empty username, domain or password"))
				return
			}
			if !yield(row, nil) {
				return
			}
		}
	}
}
