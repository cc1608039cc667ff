package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	_ "modernc.org/sqlite" // Kamailio's subscriber table, written through database/sql
)

// benchDomain is the subscribers' domain and digest realm.
const benchDomain = "example.com"

// benchUser returns subscriber i's name and password.
func benchUser(i int) (user, password string) {
	return fmt.Sprintf("user%d", i), fmt.Sprintf("pw%d-%x", i, uint32(i)*2654435761)
}

// setupSubscribers writes the e.Users subscribers: a CSV imported into the
// velox database with "velox user import", the same users in Kamailio's
// subscriber table (a db_sqlite file), and the SIPp injection file that
// gives each call the next user.
func setupSubscribers(e Env, kinds map[string]bool) ([]string, error) {
	if e.Users <= 0 {
		return nil, fmt.Errorf("-users must be > 0")
	}
	var notes []string
	csvF, err := os.Create(e.usersCSV())
	if err != nil {
		return nil, err
	}
	infF, err := os.Create(e.usersInf())
	if err != nil {
		csvF.Close()
		return nil, err
	}
	cw, iw := bufio.NewWriter(csvF), bufio.NewWriter(infF)
	iw.WriteString("SEQUENTIAL\n")
	for i := range e.Users {
		u, pw := benchUser(i)
		fmt.Fprintf(cw, "%s,%s,%s\n", u, benchDomain, pw)
		fmt.Fprintf(iw, "%s;%s;%s\n", u, benchDomain, pw)
	}
	for _, err := range []error{cw.Flush(), iw.Flush(), csvF.Close(), infF.Close()} {
		if err != nil {
			return nil, err
		}
	}
	if kinds["velox"] {
		start := time.Now()
		out, err := exec.Command(e.Velox, "user", "import", "--db", e.veloxDB(), e.usersCSV()).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("velox user import: %v\n%s", err, out)
		}
		notes = append(notes, fmt.Sprintf("velox: %d subscribers imported with `velox user import` in %.2f s (%s)",
			e.Users, time.Since(start).Seconds(), strings.TrimSpace(string(out))))
	}
	if kinds["kamailio"] {
		start := time.Now()
		if err := kamailioSubscribers(e.kamailioDB(), e.Users); err != nil {
			return nil, fmt.Errorf("kamailio subscriber table: %w", err)
		}
		notes = append(notes, fmt.Sprintf("kamailio: %d subscribers written to its db_sqlite subscriber table in %.2f s",
			e.Users, time.Since(start).Seconds()))
	}
	return notes, nil
}

// kamailioSubscribers creates Kamailio's version and subscriber tables
// (schema of kamailio's db_sqlite standard-create.sql and
// auth_db-create.sql, subscriber table version 7) in a new SQLite file
// and fills them in one transaction.
func kamailioSubscribers(path string, n int) error {
	os.Remove(path)
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `
CREATE TABLE version (
    id INTEGER PRIMARY KEY NOT NULL,
    table_name VARCHAR(32) NOT NULL,
    table_version INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT version_table_name_idx UNIQUE (table_name)
);
INSERT INTO version (table_name, table_version) values ('version','1');
CREATE TABLE subscriber (
    id INTEGER PRIMARY KEY NOT NULL,
    username VARCHAR(64) DEFAULT '' NOT NULL,
    domain VARCHAR(64) DEFAULT '' NOT NULL,
    password VARCHAR(64) DEFAULT '' NOT NULL,
    ha1 VARCHAR(128) DEFAULT '' NOT NULL,
    ha1b VARCHAR(128) DEFAULT '' NOT NULL,
    CONSTRAINT subscriber_account_idx UNIQUE (username, domain)
);
CREATE INDEX subscriber_username_idx ON subscriber (username);
INSERT INTO version (table_name, table_version) values ('subscriber','7');`); err != nil {
		return err
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return err
	}
	defer st.Close()
	md := func(s string) string { h := md5.Sum([]byte(s)); return hex.EncodeToString(h[:]) }
	for i := range n {
		u, pw := benchUser(i)
		ha1 := md(u + ":" + benchDomain + ":" + pw)
		ha1b := md(u + "@" + benchDomain + ":" + benchDomain + ":" + pw)
		if _, err := st.ExecContext(ctx, u, benchDomain, pw, ha1, ha1b); err != nil {
			return err
		}
	}
	return tx.Commit()
}
