// Package pgtest gives tests a real PostgreSQL: a fresh database per test
// package (created from DATABASE_URL in TestMain, dropped afterwards) and a
// fresh schema per test inside it, so tests never see each other's events.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultURL is used when DATABASE_URL is unset: the local PostgreSQL of
// a development machine or CI.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

var (
	packageURL string
	schemas    atomic.Int64
)

// Main creates the package's database, runs the tests and drops it. Use it
// as TestMain: func TestMain(m *testing.M) { pgtest.Main(m) }.
func Main(m *testing.M) {
	admin := os.Getenv("DATABASE_URL")
	if admin == "" {
		admin = DefaultURL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	name, dbURL, err := createDatabase(ctx, admin)
	cancel()
	if err != nil {
		reason := strings.Join(strings.Fields(err.Error()), " ")
		fmt.Fprintf(os.Stderr, "pgtest: PostgreSQL is not reachable at %s (%s): start it (pg_ctlcluster 15 main start) or set DATABASE_URL to a server whose user may CREATE DATABASE\n", redact(admin), reason)
		os.Exit(1)
	}
	packageURL = dbURL
	code := m.Run()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	if err := dropDatabase(ctx, admin, name); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: drop database %s: %v\n", name, err)
	}
	cancel()
	os.Exit(code)
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]`)

func createDatabase(ctx context.Context, admin string) (name, dbURL string, err error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", "", err
	}
	defer conn.Close(ctx)
	pkg := "pkg"
	if exe, err := os.Executable(); err == nil {
		base := exe[strings.LastIndex(exe, "/")+1:]
		pkg = unsafeChars.ReplaceAllString(strings.ToLower(strings.TrimSuffix(base, ".test")), "_")
		if len(pkg) > 30 {
			pkg = pkg[:30]
		}
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	name = "strongroom_test_" + pkg + "_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", "", fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	return name, u.String(), nil
}

func dropDatabase(ctx context.Context, admin, name string) error {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	return err
}

// URL returns the package database's URL (Main must have run).
func URL(t testing.TB) string {
	t.Helper()
	if packageURL == "" {
		t.Fatal("pgtest: call pgtest.Main(m) from the package's TestMain")
	}
	return packageURL
}

// Schema creates a fresh schema for the test and returns a connection
// string whose search_path points to it; the schema is dropped at cleanup.
func Schema(t testing.TB) string {
	t.Helper()
	base := URL(t)
	name := fmt.Sprintf("t%d_%s", schemas.Add(1), unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"))
	if len(name) > 60 {
		name = name[:60]
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("pgtest: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create schema: %v", err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), base)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE")
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// Pool returns a pool on a fresh schema (see Schema), closed at cleanup.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(Schema(t))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "DATABASE_URL"
	}
	return u.Redacted()
}
